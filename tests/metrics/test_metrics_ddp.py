"""KeypointPRF, PixelPRF and RecallOverTime: 2 CPU processes (gloo) give what 1 process gives,
with the repeated sample DistributedSampler pads a rank with."""
from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vidpose.metrics.keypoint_prf import KeypointPRF
from vidpose.metrics.pixel_prf import PixelPRF
from vidpose.metrics.recall_over_time import RecallOverTime

SAMPLES, JOINTS, MAX_FRAMES = 5, 3, 4
# DistributedSampler (no shuffle) over 5 samples on 2 ranks pads to 6 with sample 0:
# rank 0 takes 0, 2, 4 and rank 1 takes 1, 3, 0.
RANK_INDICES = [[0, 2, 4], [1, 3, 0]]


def _samples() -> dict[str, torch.Tensor]:
    """5 frames: GT keypoints, peaks scattered around them (some within 10 px, some not),
    maps, frame indices and ids."""
    generator = torch.Generator().manual_seed(1)
    gt = torch.rand(SAMPLES, 4, JOINTS, 3, generator=generator, dtype=torch.float64) * 100
    gt[..., 2] = (torch.rand(SAMPLES, 4, JOINTS, generator=generator) > 0.25).double()
    jitter = torch.randn(SAMPLES, 4, JOINTS, 2, generator=generator, dtype=torch.float64) * 8
    score = torch.ones(SAMPLES, 4, JOINTS, 1, dtype=torch.float64)
    peaks = torch.cat([gt[..., :2] + jitter, score], -1)
    peaks = peaks.transpose(1, 2).contiguous()   # (B, J, M, 3)
    peaks[:, :, 3, 2] = 0.0                       # one padding slot per map
    maps = torch.rand(SAMPLES, 2, 12, 12, generator=generator)
    target = torch.rand(SAMPLES, 2, 12, 12, generator=generator)
    frame_index = torch.tensor([0, 1, 2, 0, 1])
    return {"peaks": peaks, "gt": gt, "maps": maps, "target": target,
            "frame_index": frame_index, "ids": torch.arange(10, 10 + SAMPLES)}


def _evaluate(samples: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    """All three metrics updated on ``samples``, their results as flat lists of floats."""
    keypoint, pixel, over_time = KeypointPRF(JOINTS), PixelPRF(), RecallOverTime(MAX_FRAMES)
    keypoint.update(samples["peaks"], samples["gt"], samples["ids"])
    pixel.update(samples["maps"], samples["target"], samples["ids"])
    over_time.update(samples["peaks"], samples["gt"], samples["frame_index"], samples["ids"])
    results = {}
    for name, metric in (("keypoint", keypoint), ("pixel", pixel), ("over_time", over_time)):
        for key, value in metric.compute().items():
            value = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
            results[f"{name}/{key}"] = value.tolist()
    return results


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        indices = torch.tensor(RANK_INDICES[rank])
        shard = {key: value[indices] for key, value in _samples().items()}
        torch.save(_evaluate(shard), f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _same(a: list[float], b: list[float]) -> bool:
    return all((math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, rel=1e-12)
               for x, y in zip(a, b, strict=True))


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    expected = _evaluate(_samples())
    assert 0.0 < expected["keypoint/precision"][0] < 100.0
    assert 0.0 < expected["keypoint/recall"][0] < 100.0
    assert 0.0 < expected["pixel/f1"][0] < 100.0
    assert math.isnan(expected["over_time/recall"][3])
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert result.keys() == expected.keys()
        for key, values in expected.items():
            assert _same(result[key], values), (rank, key, result[key], values)
    # Counting the padded repeat of sample 0 twice would have changed the results.
    padded = _evaluate({key: value[[0, 2, 4, 1, 3, 0]] if key != "ids" else torch.arange(6)
                        for key, value in _samples().items()})
    assert not _same(padded["keypoint/per_joint_recall"], expected["keypoint/per_joint_recall"])
    assert not _same(padded["pixel/per_channel_precision"], expected["pixel/per_channel_precision"])
    assert not _same(padded["over_time/recall"], expected["over_time/recall"])
