"""Generate a preset and write it in the real layouts, through the formats writers.

``OUT/posetrack18`` (one JSON per video, sparse labelling), ``OUT/coco`` and ``OUT/ochuman``
(COCO keypoints files, RLE person masks), each with ``detections/{split}.json`` from the
simulated detector, then ``OUT/manifest.json`` last: its presence means the set is complete.
Every video and image draws from its own random stream keyed by (seed, layout, split,
index), so the same seed writes byte-identical annotation files.
"""
from __future__ import annotations

import shutil
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vidpose.errors import InputError
from vidpose.formats import dump_json, write_coco, write_detections, write_posetrack_video
from vidpose.keypoints import BODY19, COCO17, POSETRACK18, Schema, convert
from vidpose.pose import Frame, Pose, PoseDataset
from vidpose.synth.annotate import encode_mask, mask_box
from vidpose.synth.detector import DetectorConfig, detect
from vidpose.synth.presets import Preset, get_preset
from vidpose.synth.scene import SceneConfig, sample_scene
from vidpose.synth.shoot import Shot, film

# The synthetic world's version: bump it whenever the same seed would write different files
# (it is in manifest.json, and the CI workflow keys its cache of the tiny set on it).
VERSION = 1
LAYOUTS = ("posetrack18", "coco", "ochuman")
# Sub-stream tag of the detector's randomness (film() uses 1-3 for backdrop, frames, grain).
_DETECTOR_STREAM = 4
_MARKER = ".vidpose-synth"  # marks a folder synthesize wrote, so it may replace it
# Id blocks keep video and image ids unique across layouts and splits (evaluation and
# results files key on image ids): up to 50 000 videos and 100 000 images per split.
_VIDEOS_PER_SPLIT = 50_000
_IMAGES_PER_SPLIT, _IMAGES_PER_LAYOUT = 100_000, 1_000_000


def _prepare(folder: Path) -> None:
    """Empty ``folder`` for writing; refuse to touch one that synthesize did not write."""
    if folder.exists():
        if not (folder / _MARKER).is_file() and any(folder.iterdir()):
            raise InputError("folder exists and was not written by the synthetic generator; "
                             "refusing to overwrite it (choose another output folder)",
                             file=str(folder))
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / _MARKER).write_text("written by vidpose.synth; replaced on regeneration\n")


def _write_jpeg(path: Path, shot: Shot) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), shot.image, [cv2.IMWRITE_JPEG_QUALITY, shot.jpeg_quality]):
        raise OSError(f"could not write image {path}")


def _in_schema(poses: list[Pose], schema: Schema, image_id: int) -> list[Pose]:
    """BODY19 poses re-ordered into ``schema``; persons left with no labelled slot are skipped."""
    out = []
    for k, pose in enumerate(poses):
        keypoints = convert(pose.keypoints, BODY19, schema)
        if (keypoints[:, 2] > 0).any():
            out.append(replace(pose, keypoints=keypoints, ann_id=image_id * 100 + k))
    return out


def _crowd_pose(region: np.ndarray, width: int, height: int, image_id: int) -> Pose:
    """A COCO ``iscrowd`` annotation covering an ignore region (COCO's way of saying 'ignore')."""
    mask = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(region).astype(np.int32)], 1)
    keypoints = np.zeros((COCO17.num_keypoints, 3))
    return Pose(keypoints, box=mask_box(mask.astype(bool)), iscrowd=True, area=float(mask.sum()),
                segmentation=encode_mask(mask.astype(bool)), ann_id=image_id * 100 + 99)


def _detections(shot: Shot, size: tuple[int, int], cfg: DetectorConfig,
                stream: tuple[int, ...]) -> list[Pose]:
    """The simulated detector's boxes on one frame, as box-only Poses."""
    boxes = np.array([p.box for p in shot.labels.poses]).reshape(-1, 4)
    found, scores = detect(np.random.default_rng(stream), boxes, shot.labels.visible_fraction,
                           size, cfg)
    return [Pose(np.zeros((COCO17.num_keypoints, 3)), box=b, score=float(s)) for b, s in zip(found, scores)]


def _write_videos(root: Path, preset: Preset, seed: int, step: Callable[..., None]) -> dict:
    counts = {}
    for split_index, (split, spec) in enumerate(preset.posetrack18.items()):
        detections: dict[int, list[Pose]] = {}
        labeled = spec.labeled()
        n_ann = 0
        for v in range(spec.videos):
            stream = (seed, 0, split_index, v)
            scene = sample_scene(np.random.default_rng(stream), preset.video_scene, spec.frames, stream)
            number = 1 + split_index * _VIDEOS_PER_SPLIT + v
            # As in PoseTrack18: image id = 1, the 6-digit video number, the 4-digit frame.
            video = f"{number:06d}_synth_{split}"
            frames = []
            for t, shot in enumerate(film(scene)):
                image_id = 10_000_000_000 + number * 10_000 + t
                file_name = f"images/{split}/{video}/{t:06d}.jpg"
                _write_jpeg(root / file_name, shot)
                poses = _in_schema(shot.labels.poses, POSETRACK18, image_id) if labeled[t] else []
                n_ann += len(poses)
                frames.append(Frame(image_id, file_name, preset.video_scene.width,
                                    preset.video_scene.height, poses, video=video, frame_index=t,
                                    is_labeled=bool(labeled[t]),
                                    ignore_regions=shot.ignore_regions if labeled[t] else []))
                detections[image_id] = _detections(shot, scene.camera.image_size,
                                                   preset.detector, (*stream, _DETECTOR_STREAM, t))
                step(description=f"posetrack18/{split}")
            write_posetrack_video(root / "annotations" / split / f"{video}.json", frames, video=video)
        write_detections(root / "detections" / f"{split}.json", detections)
        counts[split] = {"videos": spec.videos, "images": spec.videos * spec.frames,
                         "labeled_images": spec.videos * int(labeled.sum()), "annotations": n_ann,
                         "detections": sum(map(len, detections.values()))}
    return counts


def _write_images(root: Path, layout: str, splits: dict[str, int], scene_cfg: SceneConfig,
                  preset: Preset, seed: int, step: Callable[..., None]) -> dict:
    counts = {}
    layout_index = LAYOUTS.index(layout)
    for split_index, (split, count) in enumerate(splits.items()):
        frames, detections = [], {}
        for i in range(count):
            stream = (seed, layout_index, split_index, i)
            scene = sample_scene(np.random.default_rng(stream), scene_cfg, 1, stream)
            shot = next(iter(film(scene)))
            image_id = 1 + layout_index * _IMAGES_PER_LAYOUT + split_index * _IMAGES_PER_SPLIT + i
            file_name = f"{image_id:012d}.jpg"
            _write_jpeg(root / split / file_name, shot)
            poses = _in_schema(shot.labels.poses, COCO17, image_id)
            poses += [_crowd_pose(r, scene_cfg.width, scene_cfg.height, image_id)
                      for r in shot.ignore_regions]
            frames.append(Frame(image_id, file_name, scene_cfg.width, scene_cfg.height, poses))
            detections[image_id] = _detections(shot, scene.camera.image_size,
                                               preset.detector, (*stream, _DETECTOR_STREAM))
            step(description=f"{layout}/{split}")
        write_coco(root / "annotations" / f"person_keypoints_{split}.json",
                   PoseDataset(frames, COCO17, str(root / split)),
                   description=f"vidpose synthetic {layout} ({preset.name}), split {split}")
        write_detections(root / "detections" / f"{split}.json", detections)
        counts[split] = {"images": count,
                         "annotations": sum(1 for f in frames for p in f.poses if not p.iscrowd),
                         "crowd_regions": sum(1 for f in frames for p in f.poses if p.iscrowd),
                         "detections": sum(map(len, detections.values()))}
    return counts


def synthesize(out: str | Path, preset: str = "default", seed: int = 0, *,
               progress: bool = True) -> dict:
    """Write the synthetic data set ``preset`` under ``out``; returns the manifest.

    ``out/posetrack18``, ``out/coco`` and ``out/ochuman`` are replaced when synthesize wrote
    them before, and never touched otherwise (an ``InputError`` says so).
    """
    spec = get_preset(preset)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)
    roots = {layout: out / layout for layout in LAYOUTS}
    for root in roots.values():
        _prepare(root)
    frames = (sum(s.videos * s.frames for s in spec.posetrack18.values()) + sum(spec.coco.values())
              + sum(spec.ochuman.values()))
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), disable=not progress, transient=False)
    # step(description=...): one more frame rendered
    step = partial(bar.update, bar.add_task("synthesising", total=frames), advance=1)
    with bar:
        counts = {
            "posetrack18": _write_videos(roots["posetrack18"], spec, seed, step),
            "coco": _write_images(roots["coco"], "coco", spec.coco, spec.image_scene, spec, seed, step),
            "ochuman": _write_images(roots["ochuman"], "ochuman", spec.ochuman, spec.crowded_scene,
                                     spec, seed, step),
        }
    manifest = {"preset": spec.name, "seed": int(seed), "version": VERSION, "counts": counts}
    dump_json(out / "manifest.json", manifest)
    return manifest
