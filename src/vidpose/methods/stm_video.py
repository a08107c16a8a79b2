"""STM-skeletons over whole videos: ``vidpose infer EXP --ckpt CKPT``.

Each video of the split is run online from its first labelled frame, whose ground-truth
maps start the memory (the paper's protocol: the tracker is initialised with one annotated
frame); every later frame is predicted from memory and written back per the write policy.
Every variant's maps are scored against the ground-truth maps of the labelled frames with
pixel precision/recall/F1 at 0.5 (Tables 1-2; the person segmentation left out, as in
validation). With keypoint maps (``skeletons``), their peaks are the keypoint detections:
they are written as PoseTrack18 prediction files, one detection per annotation
(STM-skeletons does not group joints into persons, so these files score per-joint AP; MOTA
needs grouping the method leaves out), and scored with the paper's keypoint
precision/recall/F1 (10 image pixels) and recall per frame index (Fig. 7).
"""
from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from rich.progress import track

from vidpose.data_modules.config import DataConfig
from vidpose.data_modules.datasets import read_image
from vidpose.data_modules.transforms import (
    apply_affine,
    invert_affine,
    letterbox,
    normalize,
    transform_keypoints,
)
from vidpose.formats.posetrack import write_posetrack_video
from vidpose.methods.stm import STMSkeletons
from vidpose.metrics.keypoint_prf import KeypointPRF
from vidpose.metrics.pixel_prf import PixelPRF
from vidpose.metrics.recall_over_time import RecallOverTime
from vidpose.pose import Frame, Pose, PoseDataset
from vidpose.targets import render_heatmaps, render_limb_maps, render_person_mask


def _frames(data: PoseDataset, frames: list[Frame], input_size: tuple[int, int]
            ) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
    """Each frame letterboxed and normalised, with its image -> input affine (read lazily)."""
    for frame in frames:
        boxed, affine = letterbox(read_image(data, frame)[None], input_size)
        yield normalize(boxed)[0], affine


def _ground_truth_maps(model: STMSkeletons, frame: Frame, affine: np.ndarray, cfg: DataConfig
                      ) -> torch.Tensor:
    """The variant's maps of a labelled frame, rendered from its ground truth."""
    keypoints = np.stack([p.keypoints for p in frame.poses])
    on_map = torch.from_numpy(transform_keypoints(keypoints, affine)).float()
    on_map[..., :2] /= cfg.heatmap_stride
    size = (cfg.input_size[0] // cfg.heatmap_stride, cfg.input_size[1] // cfg.heatmap_stride)
    limbs = model.schema.limbs
    return model.compose_maps(render_heatmaps(on_map, size, cfg.sigma),
                              render_limb_maps(on_map, limbs, size, cfg.limb_sigma),
                              render_person_mask(on_map, limbs, size, cfg.mask_width))


def _detections(peaks: np.ndarray, annotated: np.ndarray) -> list[Pose]:
    """(K, M, 3) image-pixel peaks -> one single-joint Pose per peak, track ids 0, 1, ...;
    slots the dataset never labels (PoseTrack18's ears) are left out."""
    poses = []
    for k, m in zip(*np.nonzero((peaks[..., 2] > 0) & annotated[:, None])):
        keypoints = np.zeros((len(annotated), 3))
        keypoints[k] = peaks[k, m]
        poses.append(Pose(keypoints, track_id=len(poses), score=float(peaks[k, m, 2])))
    return poses


def infer_split(model: STMSkeletons, data: PoseDataset, cfg: DataConfig, out: Path,
                progress: bool = True) -> dict[str, float]:
    """Run every video of ``data``; score the maps (``pixel_*``) and, for keypoint variants,
    the peaks; with keypoint maps, write ``out/<video>.json`` and ``out/recall_over_time.png``."""
    model.eval()
    input_size = (int(cfg.input_size[0]), int(cfg.input_size[1]))
    videos = data.videos()
    longest = max(len(frames) for frames in videos.values())
    pixel = PixelPRF(0.5)
    prf = KeypointPRF(model.schema.num_keypoints, model.cfg.match_px, model.schema.annotated_mask)
    over_time = RecallOverTime(longest, model.cfg.match_px)
    items = track(videos.items(), description="STM over videos", transient=True) if progress \
        else videos.items()
    sample = 0
    for name, frames in items:
        start = next((i for i, f in enumerate(frames) if f.is_labeled and f.poses), None)
        written = [dataclasses.replace(f, poses=[]) for f in frames]
        if start is not None:
            images = _frames(data, frames[start:], input_size)
            first_image, affine = next(images)  # one video, one image size, one affine
            to_image = invert_affine(affine)
            first = _ground_truth_maps(model, frames[start], affine, cfg)
            maps_stream = model.stream(itertools.chain([first_image], (im for im, _ in images)), first)
            for t, maps in enumerate(maps_stream):
                if t == 0:
                    continue  # the given frame
                frame = frames[start + t]
                labelled = frame.is_labeled and bool(frame.poses)
                ids = torch.tensor([sample], dtype=torch.int64)
                if labelled:
                    target = _ground_truth_maps(model, frame, affine, cfg)
                    pixel.update(model.pixel_maps(maps.cpu()[None]), model.pixel_maps(target[None]), ids)
                if model.has_keypoints:
                    peaks = model.keypoint_detections(maps[None].cpu())[0].numpy()
                    peaks[..., :2] = apply_affine(peaks[..., :2], to_image)
                    written[start + t].poses = _detections(peaks, model.schema.annotated_mask)
                    if labelled:
                        gt = torch.from_numpy(np.stack([p.keypoints for p in frame.poses]))[None]
                        peaks_t = torch.from_numpy(peaks)[None]
                        prf.update(peaks_t, gt, ids)
                        over_time.update(peaks_t, gt, torch.tensor([t]), ids)
                sample += int(labelled)
        if model.has_keypoints:
            write_posetrack_video(out / f"{name}.json", written, video=name, predictions=True)
    pixel_scores = pixel.compute()
    scores = {f"pixel_{key}": float(pixel_scores[key]) for key in ("precision", "recall", "f1")}
    if not model.has_keypoints:
        return scores
    result = prf.compute()
    over_time.plot(out / "recall_over_time.png", label=model.cfg.variant)
    scores.update({key: float(result[key]) for key in ("precision", "recall", "f1")})
    recall = over_time.compute()["recall"].reshape(-1).tolist()
    scores.update({f"recall_t{t}": r for t, r in enumerate(recall) if r == r})  # not NaN
    return scores
