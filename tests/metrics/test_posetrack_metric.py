"""PoseTrackAP / PoseTrackMOTA: the file evaluator's numbers, repeats counted once, DDP = 1 process."""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vidpose.formats.posetrack import read_posetrack, write_posetrack_video
from vidpose.metrics.posetrack import evaluate_posetrack
from vidpose.metrics.posetrack_metric import PoseTrackAP, PoseTrackMetrics, PoseTrackMOTA
from vidpose.pose import Pose, PoseDataset


def _predictions(dataset: PoseDataset, seed: int = 0) -> tuple[list, torch.Tensor, torch.Tensor,
                                                                 torch.Tensor, torch.Tensor]:
    """Noisy copies of the GT poses with random scores, some dropped, ids renamed every 2 frames."""
    rng = np.random.default_rng(seed)
    frames, rows = [], []
    for index, frame in enumerate(dataset.frames):
        poses = []
        for k, pose in enumerate(frame.poses):
            if rng.random() < 0.1:
                continue
            keypoints = pose.keypoints.copy()
            keypoints[:, :2] += rng.normal(0, 1, (len(keypoints), 2))
            keypoints[:, 2] = np.where(pose.keypoints[:, 2] > 0, rng.uniform(0.05, 1, len(keypoints)), 0)
            track = pose.track_id if frame.frame_index % 4 < 2 else pose.track_id * 7 + 1
            poses.append(Pose(keypoints, track_id=track))
            rows.append((index, k, keypoints, track))
        frames.append(dataclasses.replace(frame, poses=poses))
    frame_index = torch.tensor([r[0] for r in rows])
    ids = frame_index * 1000 + torch.tensor([r[1] for r in rows])
    keypoints = torch.from_numpy(np.stack([r[2] for r in rows]))
    tracks = torch.tensor([r[3] for r in rows])
    return frames, frame_index, keypoints, tracks, ids


@pytest.fixture(scope="module")
def ground_truth(tiny_synth) -> PoseDataset:
    return read_posetrack(tiny_synth / "posetrack18" / "annotations" / "val", check_images=False)


def test_metrics_equal_the_file_evaluation(ground_truth, tmp_path):
    frames, frame_index, keypoints, tracks, ids = _predictions(ground_truth)
    for video, gt_frames in ground_truth.videos().items():
        write_posetrack_video(tmp_path / "gt" / f"{video}.json", gt_frames, video=video)
    predicted = PoseDataset(frames, ground_truth.schema, ground_truth.image_root)
    for video, pred_frames in predicted.videos().items():
        write_posetrack_video(tmp_path / "pred" / f"{video}.json", pred_frames, video=video,
                              predictions=True)
    expected = evaluate_posetrack(tmp_path / "gt", tmp_path / "pred", video_order="sorted")
    ap, mota = PoseTrackAP(ground_truth.frames), PoseTrackMOTA(ground_truth.frames)
    for metric in (ap, mota):
        metric.update(frame_index, keypoints, tracks, ids)
    ap_result, mota_result = ap.compute(), mota.compute()
    assert 20.0 < expected.map < 100.0 and expected.id_switches > 0
    assert ap_result["mAP"] == pytest.approx(expected.map, abs=1e-9)
    np.testing.assert_allclose(ap_result["per_joint"].numpy(), expected.ap[:-1], atol=1e-9)
    assert mota_result["MOTA"] == pytest.approx(expected.mota[-1], abs=1e-9)
    assert mota_result["id_switches"] == expected.id_switches
    both = PoseTrackMetrics(ground_truth.frames)
    both.update(frame_index, keypoints, tracks, ids)
    result = both.compute()  # one evaluation for both
    assert result["ap"]["mAP"] == ap_result["mAP"] and result["mot"]["MOTA"] == mota_result["MOTA"]


def test_repeated_poses_count_once(ground_truth):
    _, frame_index, keypoints, tracks, ids = _predictions(ground_truth)
    once, twice = PoseTrackAP(ground_truth.frames), PoseTrackAP(ground_truth.frames)
    once.update(frame_index, keypoints, tracks, ids)
    twice.update(frame_index, keypoints, tracks, ids)
    twice.update(frame_index[:5], keypoints[:5], tracks[:5], ids[:5])
    assert twice.compute()["mAP"] == once.compute()["mAP"]
    # As distinct poses (other ids and tracks), the copies are extra false positives.
    distinct = PoseTrackAP(ground_truth.frames)
    distinct.update(frame_index, keypoints, tracks, ids)
    distinct.update(frame_index[:5], keypoints[:5], tracks[:5] + 10 ** 6, ids[:5] + 10 ** 9)
    assert distinct.compute()["mAP"] < once.compute()["mAP"]


def test_no_predictions_score_zero(ground_truth):
    metric = PoseTrackMOTA(ground_truth.frames)
    result = metric.compute()
    assert result["recall"] == 0.0 and result["MOTA"] <= 0.0


def test_update_checks_shapes(ground_truth):
    metric = PoseTrackAP(ground_truth.frames)
    with pytest.raises(ValueError, match="keypoints"):
        metric.update(torch.zeros(2, dtype=torch.long), torch.zeros(2, 15, 3), torch.zeros(2),
                      torch.zeros(2, dtype=torch.long))


def _rank(rank: int, world: int, store: str, gt_root: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    dataset = read_posetrack(gt_root, check_images=False)
    _, frame_index, keypoints, tracks, ids = _predictions(dataset)
    # Interleaved shares plus one pose both ranks hold (as DistributedSampler padding does).
    share = torch.arange(len(ids)) % world == rank
    share[0] = True
    ap, mota = PoseTrackAP(dataset.frames), PoseTrackMOTA(dataset.frames)
    for metric in (ap, mota):
        metric.update(frame_index[share], keypoints[share], tracks[share], ids[share])
    result = {"mAP": ap.compute()["mAP"], "MOTA": mota.compute()["MOTA"]}
    if rank == 0:
        with open(out, "w") as handle:
            json.dump(result, handle)
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_give_the_single_process_result(ground_truth, tiny_synth, tmp_path):
    _, frame_index, keypoints, tracks, ids = _predictions(ground_truth)
    ap, mota = PoseTrackAP(ground_truth.frames), PoseTrackMOTA(ground_truth.frames)
    for metric in (ap, mota):
        metric.update(frame_index, keypoints, tracks, ids)
    single = {"mAP": ap.compute()["mAP"], "MOTA": mota.compute()["MOTA"]}
    out = tmp_path / "ddp.json"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_rank, args=(2, str(tmp_path / "store"), str(tiny_synth / "posetrack18" / "annotations" / "val"),
                          str(out)), nprocs=2, join=True)
    assert json.loads(out.read_text()) == single
