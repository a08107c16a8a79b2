"""Pictures and tables of each validation, where people look rather than read.

After every validation (global rank 0, not the sanity check) this callback reads back the
prediction files the method has just written under ``<run>/predictions/val/`` and the
validation split's ground truth (``trainer.datamodule.val_data``), so it needs nothing from
the methods beyond the files they already write:

- PoseTrack18 data: one ``<video>.json`` per video (top-down and tracking methods,
  ``evaluation/scoring.write_predictions``);
- COCO-style data: a COCO results file, ``keypoints.json`` (top-down) or
  ``val_<decoder>.json`` (bottom-up, its first decoder, the one its tables report).

It draws ``logger.media`` frames, spread evenly over the labelled frames that have
predictions (the same frames at every validation, so epochs compare), as ground truth |
prediction with track ids (``viz.ground_truth_beside_prediction``), saves them as
``<run>/media/val/epoch<E>_step<S>_<k>.jpg`` and logs them to W&B as ``val/media``. With a
W&B logger it also logs tables: per-joint AP (``val/per_joint_AP``) and per-video MOTA
(``val/per_video``) on PoseTrack data, by the suite's poseval evaluator; per-image AP
(``val/per_image_AP``) on COCO-style data, by pycocotools' COCOeval restricted to each image.
"""
from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import cv2
import lightning as L
import numpy as np
from lightning.pytorch.loggers import WandbLogger
from pycocotools.cocoeval import COCOeval

from vidpose.data_modules.datasets import evenly_spaced, read_image
from vidpose.errors import ConfigError
from vidpose.formats.cocostyle import coco_index
from vidpose.formats.results import read_coco_results
from vidpose.keypoints import POSETRACK18
from vidpose.metrics.coco_ap import ground_truth_dict
from vidpose.metrics.posetrack import evaluate_videos
from vidpose.metrics.posetrack_inputs import eval_video, read_eval_file
from vidpose.pose import Frame, Pose, PoseDataset
from vidpose.viz import ground_truth_beside_prediction

MEDIA_KEY = "val/media"


def posetrack_predictions(folder: Path, truth: PoseDataset) -> dict[int, list[Pose]]:
    """Predicted poses per image id from the ``<video>.json`` files of ``truth``'s videos
    (a video without a file has no predictions)."""
    out: dict[int, list[Pose]] = {}
    for video in truth.videos():
        path = folder / f"{video}.json"
        if path.is_file():
            for frame in read_eval_file(path):
                out[frame.image_id] = frame.poses
    return out


def coco_results_file(folder: Path, decoders: tuple[str, ...] | None) -> Path | None:
    """The COCO results file of the validation set: the top-down ``keypoints.json``, else
    the bottom-up ``val_<first decoder>.json``."""
    names = ["keypoints.json"] + [f"val_{decoder}.json" for decoder in decoders or ()]
    return next((folder / name for name in names if (folder / name).is_file()), None)


def per_image_ap(truth: PoseDataset, predicted: dict[int, list[Pose]],
                 image_ids: list[int]) -> dict[int, float]:
    """COCO keypoint AP (percent, over OKS 0.50:0.95) of each image alone; NaN for an image
    without a ground-truth person that counts."""
    ground_truth = ground_truth_dict(truth)
    records = [{"image_id": image_id, "category_id": ground_truth["categories"][0]["id"],
                "keypoints": pose.keypoints.ravel().tolist(), "score": float(pose.score)}
               for image_id in image_ids for pose in predicted.get(image_id, [])]
    out: dict[int, float] = {}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it goes
        gt = coco_index(ground_truth)
        dt = gt.loadRes(records) if records else None
        for image_id in image_ids:
            if dt is None:
                out[image_id] = 0.0 if gt.getAnnIds(imgIds=[image_id], iscrowd=False) else math.nan
                continue
            evaluator = COCOeval(gt, dt, iouType="keypoints")
            evaluator.params.kpt_oks_sigmas = np.asarray(truth.schema.sigmas, dtype=np.float64)
            evaluator.params.imgIds = [image_id]
            evaluator.evaluate()
            evaluator.accumulate()
            # summarize()'s AP: precision at every OKS threshold and recall, all areas, the
            # largest number of detections; -1 marks "no ground truth".
            precision = evaluator.eval["precision"][:, :, :, 0, -1]
            valid = precision[precision > -1]
            out[image_id] = 100.0 * float(valid.mean()) if valid.size else math.nan
    return out


def _number(value: float) -> float | None:
    """A table cell: W&B tables take None for a missing value, not NaN."""
    return None if math.isnan(value) else round(float(value), 3)


class ValidationMedia(L.Callback):
    """Logs ``frames`` ground truth | prediction pictures and the per-joint / per-video /
    per-image tables after each validation (see the module docstring)."""

    def __init__(self, frames: int) -> None:
        if frames < 0:
            raise ConfigError(f"logger.media: expected a number of frames >= 0 (0 = off), got {frames}")
        self.frames = frames

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After the module's epoch end, which wrote the files; before that they are old.
        if self.frames == 0 or trainer.sanity_checking or not trainer.is_global_zero:
            return
        truth = getattr(getattr(trainer, "datamodule", None), "val_data", None)
        if not isinstance(truth, PoseDataset):
            return  # a method validated on something else than poses (detections, maps)
        folder = Path(trainer.default_root_dir) / "predictions" / "val"
        posetrack = truth.schema.name == POSETRACK18.name
        if posetrack:
            if not any((folder / f"{video}.json").is_file() for video in truth.videos()):
                return  # no pose files (e.g. a detector's boxes only)
            predicted = posetrack_predictions(folder, truth)
        else:
            path = coco_results_file(folder, getattr(pl_module, "DECODERS", None))
            if path is None:
                return
            predicted = read_coco_results(path)  # empty when nothing was found: still shown
        wandb = next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)
        pictures = self.draw(trainer, truth, predicted)
        if wandb is not None:
            self.log_wandb(wandb, trainer, truth, predicted, pictures, posetrack)

    def draw(self, trainer: L.Trainer, truth: PoseDataset,
             predicted: dict[int, list[Pose]]) -> list[tuple[Path, str, int]]:
        """Save the pictures; returns (path, caption, image id) of each."""
        labelled = [f for f in truth.frames if f.is_labeled and any(not p.iscrowd for p in f.poses)]
        # Frames the validation reached (a limited one predicts on part of the split).
        seen = [f for f in labelled if predicted.get(f.image_id)] or labelled
        chosen: list[Frame] = [seen[i] for i in evenly_spaced(len(seen), self.frames)]
        out = Path(trainer.default_root_dir) / "media" / "val"
        out.mkdir(parents=True, exist_ok=True)
        saved = []
        for k, frame in enumerate(chosen):
            caption = "/".join(Path(frame.file_name).parts[-2:])
            picture = ground_truth_beside_prediction(
                read_image(truth, frame), frame, predicted.get(frame.image_id, []), truth.schema,
                caption=caption)
            path = out / f"epoch{trainer.current_epoch}_step{trainer.global_step}_{k}.jpg"
            if not cv2.imwrite(str(path), picture):
                raise OSError(f"cannot write {path}")
            saved.append((path, caption, frame.image_id))
        return saved

    def log_wandb(self, logger: WandbLogger, trainer: L.Trainer, truth: PoseDataset,
                  predicted: dict[int, list[Pose]], pictures: list[tuple[Path, str, int]],
                  posetrack: bool) -> None:
        step = trainer.global_step
        if pictures:
            logger.log_image(MEDIA_KEY, [str(path) for path, _, _ in pictures],
                             step=step, caption=[caption for _, caption, _ in pictures])
        if posetrack:
            # poseval's figures of the predictions, each video also alone (per_video)
            result = evaluate_videos([eval_video(name, fs, [predicted.get(f.image_id, []) for f in fs])
                                      for name, fs in sorted(truth.videos().items())], per_video=True)
            logger.log_table("val/per_joint_AP", columns=["joint", "AP"],
                             data=[[name, _number(ap)] for name, ap in
                                   zip(result.joint_names, result.ap)], step=step)
            logger.log_table("val/per_video", columns=["video", "frames", "mAP", "MOTA", "id_switches"],
                             data=[[name, r.num_frames, _number(r.map), _number(r.total_mota),
                                    r.id_switches] for name, r in result.per_video.items()],
                             step=step)
        else:
            frames = {f.image_id: f for f in truth.frames}
            # The images with predictions, and the pictured ones (which may have none).
            pictured = {image_id for _, _, image_id in pictures}
            image_ids = [i for i in frames if i in predicted or i in pictured]
            ap = per_image_ap(truth, predicted, image_ids)
            logger.log_table("val/per_image_AP", columns=["image_id", "file_name", "persons", "AP"],
                             data=[[i, frames[i].file_name,
                                    sum(not p.iscrowd for p in frames[i].poses), _number(ap[i])]
                                   for i in image_ids], step=step)
