"""``vidpose track --exp EXP --video V --out DIR``: one video (file or frame folder) to
PoseTrack18 results and an overlay, online with a top-down tracking experiment.

Boxes come from our detector (default), a COCO-results detection file, or the ground truth
of a PoseTrack18 annotation file of the video (``--annotations``, which also scores the
result with the suite's PoseTrack mAP and MOTA).
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported for the annotations only: `vidpose` starts without numpy
    from vidpose.keypoints import Schema
    from vidpose.pose import Frame, PoseDataset
    from vidpose.tracking.online import OnlineTopDown
    from vidpose.tracking.pipeline import CorrespondencePipeline
    from vidpose.tracking.video import VideoFrames


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "track", help="track the persons of one video (file or frame folder) online with a "
        "top-down experiment: PoseTrack18 results + overlay mp4")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value (e.g. model.capacity=4)")
    parser.add_argument("--exp", dest="experiment", required=True, help="the experiment name")
    parser.add_argument("--ckpt", default=None, help="checkpoint of the pose model (correspondence_"
                        "tracking experiments name their trained models in the config instead)")
    parser.add_argument("--video", required=True, help="video file or folder of frame images")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--boxes", choices=["detector", "detections", "gt"], default="detector",
                        help="person boxes: our detector (default), a detection file, or the "
                        "annotations' ground truth")
    parser.add_argument("--detector", default=None, help="detector checkpoint or run:<experiment> "
                        "(default: the experiment's data.detector)")
    parser.add_argument("--detections", default=None,
                        help="COCO-results boxes with the video's image ids")
    parser.add_argument("--annotations", default=None, help="the video's PoseTrack18 file: its "
                        "image ids, ground-truth boxes (--boxes gt) and a mAP/MOTA score of the "
                        "result")


def _annotated_frames(path: str, count: int) -> PoseDataset:
    """The PoseDataset of ``--annotations``, which must hold the video's ``count`` frames."""
    from vidpose.errors import InputError
    from vidpose.formats.posetrack import read_posetrack

    data = read_posetrack(path, Path(path).parent, check_images=False)
    if len(data.videos()) != 1 or len(data.frames) != count:
        raise InputError(f"the annotations must describe this one video: {len(data.frames)} "
                         f"images in {len(data.videos())} video(s) against {count} video frames",
                         file=path, field="images")
    return data


def _track(pipeline: OnlineTopDown | CorrespondencePipeline, frames: VideoFrames,
           truth: PoseDataset | None, overlay: Path, schema: Schema,
           progress: bool) -> tuple[list[Frame], float]:
    """The video's frames tracked by ``pipeline`` (with the annotations' image ids when
    ``truth`` is given), drawn into ``overlay``; and the seconds it took."""
    from rich.progress import track as progress_track

    from vidpose.tracking.video import write_overlay

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
                                      in zip(frames, tracked)), "overlay"), schema, frames.fps)
    else:
        write_overlay(overlay, shown(tracked_images(), "tracking"), schema, frames.fps)
    return tracked, time.perf_counter() - start


def handle(args: argparse.Namespace) -> None:
    from vidpose.config import compose
    from vidpose.errors import ConfigError
    from vidpose.evaluation.scoring import score_poses
    from vidpose.formats.jsonio import check_output, dump_json
    from vidpose.formats.posetrack import write_posetrack_video
    from vidpose.methods import Tracking, configured_boxes
    from vidpose.run import load_model
    from vidpose.run.prerequisites import resolve_run_reference
    from vidpose.tracking.video import image_id, open_video

    cfg = compose(args.experiment, args.overrides)
    check_output(args.out, folder=True)  # before the model is loaded and the video decoded
    if args.boxes == "gt" and not args.annotations:
        raise ConfigError("--boxes gt needs --annotations FILE (the video's PoseTrack18 file)")
    if args.boxes == "detections" and not args.detections:
        raise ConfigError("--boxes detections needs --detections FILE (COCO results boxes "
                          "whose image ids are the video's)")
    detector = args.detector and str(resolve_run_reference(args.detector, Path(cfg.runs_dir),
                                                           "--detector"))
    model = load_model(cfg, args.ckpt)
    if not isinstance(model, Tracking):
        raise ConfigError(f"vidpose track runs top-down tracking experiments (methods pose_memory "
                          f"and correspondence_tracking); {cfg.experiment.name!r} is a "
                          f"{cfg.experiment.method} experiment")
    frames = open_video(args.video)
    truth = _annotated_frames(args.annotations, len(frames)) if args.annotations else None
    ids = {f.image_id for f in truth.frames} if truth else \
        {image_id(frames.video_number, i) for i in range(len(frames))}
    # The command line's box source, read as the data config's would be in validation.
    data_cfg = dataclasses.replace(model.data_cfg, box_source=args.boxes, detections=args.detections,
                                   detector=detector or model.data_cfg.detector)
    pipeline = model.pipeline(configured_boxes(data_cfg, ids, data_cfg.val_split, model.device))
    out_dir = Path(args.out)
    overlay, results = out_dir / f"{frames.name}.mp4", out_dir / f"{frames.name}.json"
    tracked, seconds = _track(pipeline, frames, truth, overlay, model.schema,
                              cfg.trainer.progress_bar)
    write_posetrack_video(results, tracked, video=frames.name, predictions=True)
    tracks = len({p.track_id for f in tracked for p in f.poses})
    print(f"tracked {len(tracked)} frames in {seconds:.1f} s "
          f"({len(tracked) / max(seconds, 1e-9):.2f} frames/s): {tracks} tracks")
    print(f"wrote {results}\nwrote {overlay}")
    if truth is not None:
        scores = score_poses(truth, {i: f.poses for i, f in enumerate(tracked)})
        dump_json(out_dir / "scores.json", scores)
        for key, value in scores.items():
            if key.count("/") == 0:
                print(f"  {key:16s} {value:10.4f}")
