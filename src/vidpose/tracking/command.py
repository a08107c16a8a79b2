"""``vidpose track``: one video (file or frame folder) to PoseTrack18 results and an overlay.

Boxes come from our detector (default), a COCO-results detection file, or the ground truth
of a PoseTrack18 annotation file of the video (``--annotations``, which also scores the
result with the suite's PoseTrack mAP and MOTA).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig
from rich.progress import track as progress_track

from vidpose.errors import ConfigError, InputError
from vidpose.formats.jsonio import check_output, dump_json
from vidpose.formats.posetrack import read_posetrack, write_posetrack_video
from vidpose.pose import Frame, PoseDataset
from vidpose.tracking.boxes import (BoxSource, DetectionFileBoxes, DetectorBoxes, GroundTruthBoxes,
                                   load_detector)
from vidpose.tracking.video import image_id, open_video, write_overlay

BOX_CHOICES = ("detector", "detections", "gt")


@dataclasses.dataclass(frozen=True)
class TrackResult:
    results: Path  # the PoseTrack18 results file
    overlay: Path  # the mp4 with track colours
    frames: int
    tracks: int
    seconds: float
    scores: dict[str, float]  # mAP, MOTA, ... when annotations were given


def _annotated_frames(path: str, count: int) -> PoseDataset:
    data = read_posetrack(path, Path(path).parent, check_images=False)
    if len(data.videos()) != 1 or len(data.frames) != count:
        raise InputError(f"the annotations must describe this one video: {len(data.frames)} "
                         f"images in {len(data.videos())} video(s) against {count} video frames",
                         file=path, field="images")
    return data


def _box_source(model, boxes: str, detections: Optional[str], detector: Optional[str],
                image_ids: set[int]) -> BoxSource:
    min_score = float(model.data_cfg.min_box_score)
    if boxes == "gt":
        return GroundTruthBoxes()
    if boxes == "detections":
        if not detections:
            raise ConfigError("--boxes detections needs --detections FILE (COCO results boxes "
                              "whose image ids are the video's)")
        return DetectionFileBoxes(detections, min_score, frame_ids=image_ids)
    return DetectorBoxes(load_detector(detector or model.data_cfg.detector, model.device), min_score)


def track_command(cfg: DictConfig, ckpt: str, video: str, out: str, *, boxes: str = "detector",
                  detections: Optional[str] = None, detector: Optional[str] = None,
                  annotations: Optional[str] = None, progress: bool = True) -> TrackResult:
    """Track ``video`` with experiment ``cfg``'s model from ``ckpt``; write into ``out``."""
    check_output(out, folder=True)  # before the model is loaded and the video decoded
    from vidpose.methods.scoring import score_poses
    from vidpose.run import load_model, resolve_init_from

    if boxes not in BOX_CHOICES:
        raise ConfigError(f"--boxes: {boxes!r} is not one of {list(BOX_CHOICES)}")
    if boxes == "gt" and not annotations:
        raise ConfigError("--boxes gt needs --annotations FILE (the video's PoseTrack18 file)")
    if detector and detector.startswith("run:"):
        detector = str(resolve_init_from(detector, Path(cfg.runs_dir)))
    model = load_model(cfg, ckpt)
    if not hasattr(model, "pipeline"):
        raise ConfigError(f"vidpose track runs top-down tracking experiments (methods pose_memory "
                          f"and correspondence_tracking); {cfg.experiment.name!r} is a "
                          f"{cfg.experiment.method} experiment")
    frames = open_video(video)
    truth = _annotated_frames(annotations, len(frames)) if annotations else None
    ids = {f.image_id for f in truth.frames} if truth else \
        {image_id(frames.video_number, i) for i in range(len(frames))}
    pipeline = model.pipeline(_box_source(model, boxes, detections, detector, ids))

    tracked: list[Frame] = []

    def tracked_images():
        """Each decoded frame is tracked and handed on to the overlay: one decoding pass."""
        for position, (frame, image) in enumerate(frames):
            # The annotation file's frames carry its image ids, names and ground truth.
            frame = truth.frames[position] if truth else frame
            tracked.append(dataclasses.replace(frame, poses=pipeline(frame, image)))
            yield image, tracked[-1].poses

    def shown(steps, description):
        return progress_track(steps, total=len(frames), description=description,
                              transient=True) if progress else steps

    out_dir = Path(out)
    overlay = out_dir / f"{frames.name}.mp4"
    # Both pipelines start the video afresh; the memory pipeline's CoDA switch counts the
    # boxes it is given, not the annotations' persons.
    pipeline.reset()
    start = time.perf_counter()
    if getattr(pipeline.cfg, "merge", False):
        # Track merging relabels tracks after the last frame: the overlay needs the final
        # ids, so the video is decoded a second time for it.
        for _ in shown(tracked_images(), "tracking"):
            pass
        tracked = pipeline.finish(tracked)
        write_overlay(overlay, shown(((image, frame.poses) for (_, image), frame
                                      in zip(frames, tracked)), "overlay"),
                      model.schema, frames.fps)
    else:
        write_overlay(overlay, shown(tracked_images(), "tracking"), model.schema, frames.fps)
    seconds = time.perf_counter() - start
    results = out_dir / f"{frames.name}.json"
    write_posetrack_video(results, tracked, video=frames.name, predictions=True)
    scores: dict[str, float] = {}
    if truth is not None:
        scores = score_poses(truth, {i: f.poses for i, f in enumerate(tracked)})
        dump_json(out_dir / "scores.json", scores)
    tracks = len({p.track_id for f in tracked for p in f.poses})
    return TrackResult(results, overlay, len(tracked), tracks, seconds, scores)

