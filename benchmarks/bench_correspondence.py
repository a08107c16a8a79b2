"""Correspondence tracking: frames per second against persons per frame, per tracker.

One synthetic 8-frame video per person count (2, 4, 8, 16 persons walking across the frame,
ground-truth boxes) is tracked by the same two-stage estimator with three association cues:
OKS, optical flow (OpenCV Farneback) + OKS, and keypoint correspondences (Eq. 6, refined
maps; with recovery of missed detections as a fourth row). The networks are untrained
(timing does not depend on the weights). Figures, in one run: each tracker's frames per
second over the OKS tracker's at the same person count (each the fastest of 3 passes: the
cost of the cue), and the OKS tracker's frames per second at each count over its own at 2
persons (the estimator's cost growing with persons).

The networks are the compact experiments' (width 0.5, 128x96 crops, 192x256 correspondence
input): per-person costs are what the ratios are about. ``quick`` runs 2 and 4 persons only.
"""
from __future__ import annotations

import numpy as np
import torch

from vidpose.bench import best_time
from vidpose.keypoints import POSETRACK18
from vidpose.methods.correspondence import KeypointCorrespondence
from vidpose.methods.two_stage_pose import TwoStagePose
from vidpose.pose import Frame, Pose
from vidpose.tracking.boxes import GroundTruthBoxes
from vidpose.tracking.pipeline import CorrespondencePipeline, PipelineConfig, track_video

PERSONS = (2, 4, 8, 16)
FRAMES = 8
HEIGHT, WIDTH = 240, 320
TRACKERS = {"oks": {"tracker": "oks"}, "flow": {"tracker": "flow"},
            "correspondence": {"tracker": "correspondence"},
            "correspondence+recovery": {"tracker": "correspondence", "recovery": True}}


def _video(persons: int, seed: int = 0) -> list[tuple[Frame, np.ndarray]]:
    """Textured frames with ``persons`` boxes walking right, 4 px per frame."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    starts = np.stack([rng.uniform(0, WIDTH - 40, persons), rng.uniform(0, HEIGHT - 90, persons)], -1)
    out = []
    for t in range(FRAMES):
        image = background.copy()
        poses = []
        for x, y in starts + [4.0 * t, 0.0]:
            x = float(np.clip(x, 0, WIDTH - 40))
            image[int(y):int(y) + 80, int(x):int(x) + 30] = rng.integers(0, 255, 3, dtype=np.uint8)
            keypoints = np.zeros((POSETRACK18.num_keypoints, 3))
            keypoints[:, :2] = [x + 15, y + 40]
            keypoints[:, 2] = 1
            poses.append(Pose(keypoints, box=np.array([x, y, 30.0, 80.0])))
        out.append((Frame(t, f"{t}.jpg", WIDTH, HEIGHT, poses, video="bench", frame_index=t), image))
    return out


def _models() -> tuple[TwoStagePose, KeypointCorrespondence]:
    torch.manual_seed(0)
    width = 0.5
    estimator = TwoStagePose({"width": width, "deconv_filters": 64, "flip_test": True},
                             {"dataset": "posetrack18", "synth_preset": None, "input_size": [128, 96]})
    correspondence = KeypointCorrespondence({"stage": "refinement", "width": width},
                                            {"dataset": "coco", "synth_preset": None,
                                             "input_size": [192, 256]}, schema="posetrack18")
    return estimator.eval(), correspondence.eval()


def _fps(estimator, net, settings: dict, video, repeats: int) -> float:
    """Frames per second of the fastest of ``repeats`` passes over the video."""
    pipeline = CorrespondencePipeline(estimator, GroundTruthBoxes(), PipelineConfig(**settings),
                                      net, (192, 256))
    return FRAMES / best_time(lambda: list(track_video(pipeline, video)), repeats)


def run(quick: bool = False) -> dict[str, float]:
    estimator, correspondence = _models()
    net = correspondence.net
    counts = PERSONS[:2] if quick else PERSONS
    results: dict[str, float] = {}
    others = [name for name in TRACKERS if name != "oks"]
    print(f"{'persons':>8} {'OKS fps':>8} " + " ".join(f"{name + ' x':>24}" for name in others)
          + f" {'OKS fps ÷ 2 persons':>20}")
    base = None
    for persons in counts:
        video = _video(persons)
        fps = {name: _fps(estimator, net, settings, video, 1 if quick else 3)
               for name, settings in TRACKERS.items()}
        base = base or fps["oks"]
        line = f"{persons:>8} {fps['oks']:>8.2f} "
        for name in others:
            ratio = fps[name] / fps["oks"]
            results[f"{name}_over_oks_{persons}p"] = ratio
            line += f"{ratio:>24.2f} "
        results[f"oks_{persons}p_over_2p"] = fps["oks"] / base
        print(line + f"{fps['oks'] / base:>20.2f}", flush=True)
    return results
