"""PCKh: hand-computed values, what counts, de-duplication, and 2 processes equal to 1."""
from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vidpose.metrics.pckh import PCKh


def _one(pred_xy, gt_xy, head_size):
    """One person whose joint 0 is labelled and joint 1 not (it must not count)."""
    pred = torch.tensor([[pred_xy, (0.0, 0.0)]], dtype=torch.float64)
    gt = torch.tensor([[[*gt_xy, 2.0], [50.0, 50.0, 0.0]]], dtype=torch.float64)
    return pred, gt, torch.tensor([head_size]), torch.tensor([0])


@pytest.mark.parametrize("pred_xy, correct", [((13.0, 24.0), True),     # 3-4-5: exactly 0.5 x 10
                                              ((13.0, 24.01), False),   # just beyond
                                              ((10.0, 20.0), True)])
def test_one_person_one_joint(pred_xy, correct):
    metric = PCKh(threshold=0.5, num_joints=2)
    metric.update(*_one(pred_xy, (10.0, 20.0), 10.0))
    result = metric.compute()
    assert result["total"] == (100.0 if correct else 0.0)
    assert result["per_joint"][0] == (100.0 if correct else 0.0)
    assert math.isnan(result["per_joint"][1])


def test_only_labelled_joints_of_persons_with_a_head_count():
    gt = torch.tensor([
        [[0, 0, 2], [10, 0, 1], [20, 0, 0]],    # joint 2 unlabelled
        [[0, 0, 2], [10, 0, 2], [20, 0, 2]],
        [[0, 0, 2], [10, 0, 2], [20, 0, 2]],    # no head box: ignored
    ], dtype=torch.float64)
    offsets = torch.tensor([[1.0, 9.0, 0.0], [6.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    pred = gt[..., :2].clone()
    pred[..., 0] += offsets
    head = torch.tensor([10.0, 10.0, 0.0])
    metric = PCKh(0.5, num_joints=3)
    metric.update(pred, gt, head, torch.arange(3))
    result = metric.compute()
    # Counted: p0 j0 (1 px, ok), p0 j1 (9 px, miss), p1 j0 (6 px, miss), p1 j1 (ok), p1 j2 (ok).
    assert result["total"] == pytest.approx(300 / 5)
    assert result["per_joint"].tolist() == pytest.approx([50.0, 50.0, 100.0])


def test_unannotated_slots_are_excluded_and_nan():
    gt = torch.tensor([[[0, 0, 2], [5, 5, 2]]], dtype=torch.float64)
    pred = gt[..., :2] + torch.tensor([[0.0, 0.0], [100.0, 0.0]], dtype=torch.float64)
    metric = PCKh(num_joints=2, annotated_mask=[True, False])
    metric.update(pred, gt, torch.tensor([4.0]), torch.tensor([7]))
    result = metric.compute()
    assert result["total"] == 100.0
    assert result["per_joint"][0] == 100.0 and math.isnan(result["per_joint"][1])


def test_ground_truth_as_prediction_gives_100_and_nothing_gives_nan():
    metric = PCKh(num_joints=17)
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(metric.compute()["total"])
    gt = torch.rand(4, 17, 3, dtype=torch.float64) * 100
    gt[..., 2] = 2
    metric.update(gt, gt, torch.full((4,), 20.0), torch.arange(4))
    assert metric.compute()["total"] == 100.0


def test_bad_shapes_are_refused():
    metric = PCKh(num_joints=17)
    with pytest.raises(ValueError, match="17"):
        metric.update(torch.zeros(2, 15, 2), torch.zeros(2, 15, 3), torch.ones(2), torch.arange(2))
    with pytest.raises(ValueError, match="int64"):
        metric.update(torch.zeros(2, 17, 2), torch.zeros(2, 17, 3), torch.ones(2),
                      torch.arange(2, dtype=torch.int32))
    with pytest.raises(ValueError, match="annotated_mask"):
        PCKh(num_joints=17, annotated_mask=[True] * 15)


def _samples(n: int = 5, joints: int = 4):
    """n persons with a mix of correct and wrong joints (head size 10 -> 5 px)."""
    generator = torch.Generator().manual_seed(0)
    gt = torch.rand(n, joints, 3, generator=generator, dtype=torch.float64) * 50
    gt[..., 2] = (torch.arange(n * joints).reshape(n, joints) % 3 > 0).double()
    error = torch.rand(n, joints, generator=generator, dtype=torch.float64) * 10
    pred = gt[..., :2] + torch.stack([error, torch.zeros_like(error)], -1)
    return pred, gt, torch.full((n,), 10.0), torch.arange(100, 100 + n)


def _shard(samples, indices):
    return tuple(t[indices] for t in samples)


# DistributedSampler (no shuffle) over 5 samples on 2 ranks pads to 6 with sample 0:
# rank 0 takes 0, 2, 4 and rank 1 takes 1, 3, 0.
RANK_INDICES = [[0, 2, 4], [1, 3, 0]]


def test_repeated_samples_do_not_change_the_result():
    samples = _samples()
    single = PCKh(num_joints=4)
    single.update(*samples)
    expected = single.compute()
    assert 0.0 < expected["total"] < 100.0
    ranks = [PCKh(num_joints=4) for _ in RANK_INDICES]
    for metric, indices in zip(ranks, RANK_INDICES):
        metric.update(*_shard(samples, torch.tensor(indices)))
    ranks[0].merge_state(ranks[1])  # what the 'cat' sync does across processes
    merged = ranks[0].compute()
    assert merged["total"] == expected["total"]
    assert torch.equal(merged["per_joint"], expected["per_joint"])
    # The data are such that counting the repeated sample 0 twice would change the result.
    pred, gt, head, _ = _shard(samples, torch.tensor([0, 2, 4, 1, 3, 0]))
    valid = gt[..., 2] > 0
    hits = ((pred - gt[..., :2]).norm(dim=-1) <= 0.5 * head[:, None]) & valid
    assert 100.0 * hits.sum().item() / valid.sum().item() != pytest.approx(expected["total"])


def _ddp_worker(rank: int, init_file: str, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        metric = PCKh(num_joints=4)
        metric.update(*_shard(_samples(), torch.tensor(RANK_INDICES[rank])))
        result = metric.compute()
        results[rank] = (result["total"], result["per_joint"].tolist())
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    single = PCKh(num_joints=4)
    single.update(*_samples())
    expected = single.compute()
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_ddp_worker, args=(str(tmp_path / "init"), results), nprocs=2)
        gathered = dict(results)
    for rank in (0, 1):
        total, per_joint = gathered[rank]
        assert total == expected["total"]
        assert per_joint == pytest.approx(expected["per_joint"].tolist(), abs=0, nan_ok=True)
