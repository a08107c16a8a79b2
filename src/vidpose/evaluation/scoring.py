"""Scoring and writing the predicted poses of a whole split, shared by the top-down methods.

PoseTrack mAP and MOTA (poseval's rules) on PoseTrack18-format data, COCO keypoint AP
(pycocotools) on COCO and OCHuman; prediction files that ``vidpose eval`` reads back to the
same numbers (one PoseTrack18 file per video, or one COCO results file).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from vidpose.formats.posetrack import write_posetrack_predictions
from vidpose.formats.results import write_coco_results
from vidpose.keypoints import POSETRACK18
from vidpose.metrics.coco_ap import CocoKeypointAP
from vidpose.metrics.posetrack import COLUMNS
from vidpose.metrics.posetrack_inputs import POSEVAL_JOINTS
from vidpose.metrics.posetrack_metric import PoseTrackMetrics
from vidpose.pose import Pose, PoseDataset

# Pose ids for the metrics are frame * PERSON_SLOTS + pose; no frame holds this many persons.
PERSON_SLOTS = 1 << 20


def score_poses(dataset: PoseDataset, poses: dict[int, list[Pose]],
                device: torch.device | str = "cpu") -> dict[str, float]:
    """PoseTrack mAP/MOTA (PoseTrack18 data) or COCO keypoint AP of ``poses``, keyed by the
    index of their frame in ``dataset.frames``.

    Names: ``mAP``, ``MOTA``, ``MOTP``, ``id_switches``, ``AP/<joint>``, ``AP/<group>``
    (poseval's columns: ``AP/wrists``, ``AP/ankles``, ...) or ``AP``, ``AP50``, ``AP75``,
    ``AR``. NaN (a joint never annotated in the split) is left out: a logger cannot
    compare it.
    """
    index = [(f, k) for f in sorted(poses) for k in range(len(poses[f]))]
    frame = torch.tensor([f for f, _ in index], dtype=torch.int64)
    ids = frame * PERSON_SLOTS + torch.tensor([k for _, k in index], dtype=torch.int64)
    keypoints = torch.from_numpy(np.stack([poses[f][k].keypoints for f, k in index])
                                 if index else np.zeros((0, dataset.schema.num_keypoints, 3)))
    if dataset.schema.name == POSETRACK18.name:
        track = torch.tensor([poses[f][k].track_id for f, k in index], dtype=torch.int64)
        metric = PoseTrackMetrics(dataset.frames).to(device)
        metric.update(frame.to(device), keypoints.to(device), track.to(device), ids.to(device))
        both = metric.compute()
        ap_result, mota_result = both["ap"], both["mot"]
        scores = {"mAP": ap_result["mAP"], "MOTA": mota_result["MOTA"],
                  "MOTP": mota_result["MOTP"], "id_switches": float(mota_result["id_switches"])}
        per_joint = dict(zip(POSEVAL_JOINTS, ap_result["per_joint"].tolist()))
        scores.update({f"AP/{name}": float(v) for name, v in per_joint.items()})
        scores.update(joint_group_ap(per_joint))
    else:
        image_ids = torch.tensor([dataset.frames[f].image_id for f, _ in index], dtype=torch.int64)
        confidence = torch.tensor([poses[f][k].score for f, k in index], dtype=torch.float64)
        coco = CocoKeypointAP(dataset).to(device)
        coco.update(image_ids.to(device), keypoints.to(device), confidence.to(device), ids.to(device))
        stats = coco.compute()
        scores = {name: stats[name] for name in ("AP", "AP50", "AP75", "AR")}
    return {k: float(v) for k, v in scores.items() if not np.isnan(v)}


# poseval's printed AP columns (its joint groups) under the names the papers' tables use
# (pose temporal memory, Table 3: "wrists", "ankles").
GROUP_NAMES = {"Head": "head", "Shou": "shoulders", "Elb": "elbows", "Wri": "wrists",
               "Hip": "hips", "Knee": "knees", "Ankl": "ankles"}


def joint_group_ap(per_joint: dict[str, float]) -> dict[str, float]:
    """``AP/wrists``, ``AP/ankles``, ...: the mean AP of each poseval column's joints, as
    poseval prints them (joints never annotated are left out; a group without any is)."""
    out = {}
    for title, joints in COLUMNS:
        values = [per_joint[j] for j in joints if not np.isnan(per_joint[j])]
        if values:
            out[f"AP/{GROUP_NAMES[title]}"] = float(np.mean(values))
    return out


def write_predictions(folder: str | Path, dataset: PoseDataset,
                      poses: dict[int, list[Pose]]) -> None:
    """One PoseTrack18 prediction file per video of ``dataset`` (every frame kept, so the
    evaluator pairs them with the ground truth), or a COCO results file."""
    frames = [dataclasses.replace(frame, poses=poses.get(i, []))
              for i, frame in enumerate(dataset.frames)]
    folder = Path(folder)
    # By name: a dataset that crossed a process boundary holds a copy of the schema.
    if dataset.schema.name == POSETRACK18.name:
        write_posetrack_predictions(folder, PoseDataset(frames, POSETRACK18, dataset.image_root,
                                                        dataset.source))
    else:
        write_coco_results(folder / "keypoints.json", frames)
