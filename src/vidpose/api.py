"""The Python API: a trained checkpoint as a predictor of poses in image pixels.

    import vidpose
    predictor = vidpose.load("runs/simple_baseline/<time>/checkpoints/last.ckpt")
    poses = predictor.predict(image)                  # RGB uint8 (H, W, 3) -> list[Pose]
    tracked = predictor.track(frames, boxes=boxes)    # memory models: poses with track ids

``load`` reads the experiment from the run's ``config.yaml`` beside ``checkpoints/`` and
rebuilds the method from the checkpoint; it generates no data. Top-down methods
(simple_baseline, two_stage_pose, pose_memory) estimate one pose per person box: boxes
``(M, 4)`` x, y, w, h in image pixels, and ``boxes=None`` means the whole image is one box (a
single-person image; give a detector's boxes for several persons). They run through the
same online pipeline as ``vidpose track`` (crop, flip test per config, decoding, OKS-NMS).
Bottom-up methods (assoc_embedding, rnn_decoder) take the image alone: letterboxed to the
input size as in validation, decoded by the method's first decoder (AE grouping; the RNN
decoder), mapped back to image pixels.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from vidpose.errors import ConfigError, InputError
from vidpose.methods import Tracking
from vidpose.pose import Frame, Pose

TOP_DOWN = ("simple_baseline", "two_stage_pose", "pose_memory")
BOTTOM_UP = ("assoc_embedding", "rnn_decoder")
BoxesLike = Optional[Sequence[Sequence[float]] | np.ndarray]


def _run_config(checkpoint: Path) -> DictConfig:
    """The resolved config of the run that wrote ``checkpoint`` (its ``config.yaml``)."""
    from vidpose.config import validated
    from vidpose.run.folders import run_of

    path = run_of(checkpoint, "checkpoint") / "config.yaml"
    return validated(OmegaConf.load(path), str(path))


def _image(image: Any) -> np.ndarray:
    """An RGB uint8 (H, W, 3) array, or a path to an image file read as one."""
    if isinstance(image, (str, os.PathLike)):
        from PIL import Image

        if not Path(image).is_file():
            raise InputError("image file not found", file=str(image), field="image")
        with Image.open(image) as opened:
            return np.asarray(opened.convert("RGB"))
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise InputError(f"expected an RGB uint8 image (H, W, 3); got {array.dtype} "
                         f"{tuple(array.shape)}", field="image")
    return array


def _boxes(boxes: BoxesLike, image: np.ndarray) -> np.ndarray:
    if boxes is None:  # the whole image as one person's box
        return np.array([[0.0, 0.0, float(image.shape[1]), float(image.shape[0])]])
    array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if len(boxes) else np.zeros((0, 4))
    if np.any(array[:, 2:] <= 0) or not np.all(np.isfinite(array)):
        raise InputError("expected boxes as x, y, w, h with positive width and height",
                         field="boxes")
    return array


class _GivenBoxes:
    """The pipeline's box source for boxes the caller names (score 1 each), frame by frame."""

    def __init__(self) -> None:
        self.boxes = np.zeros((0, 4))

    def __call__(self, frame: Frame, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.boxes, np.ones(len(self.boxes))


class Predictor:
    """A trained model of one experiment: ``predict`` one image, ``track`` one video."""

    def __init__(self, model: Any, cfg: DictConfig) -> None:
        self.model = model.eval()
        self.cfg = cfg
        self.method = str(cfg.experiment.method)
        self.schema = model.schema if hasattr(model, "schema") else None
        self._boxes = _GivenBoxes()
        self._pipeline = None
        if self.method in TOP_DOWN:
            if isinstance(model, Tracking):  # pose_memory: its own tracking settings
                self._pipeline = model.pipeline(self._boxes)
            else:
                from vidpose.data_modules.datasets import as_data_config
                from vidpose.tracking.online import OnlineTopDown, TrackingConfig

                padding = float(as_data_config(model.hparams["data"]).box_padding)
                tracking = TrackingConfig(box_padding=padding, tracker="greedy_iou",
                                          oks_nms_thr=float(model.cfg.oks_nms_thr),
                                          joint_threshold=float(model.cfg.joint_threshold))
                self._pipeline = OnlineTopDown(model, self._boxes, tracking)

    def predict(self, image: Any, boxes: BoxesLike = None) -> list[Pose]:
        """The poses in one RGB image (array or file path), keypoints (K, 3) as x, y, score
        in image pixels, ``Pose.score`` the person's score.

        Top-down models: one pose per box ``(M, 4)`` x, y, w, h (``None``: the whole image
        as one box), OKS-NMS'd; bottom-up models: every person found, ``boxes`` must be None.
        """
        image = _image(image)
        if self.method in BOTTOM_UP:
            if boxes is not None:
                raise ConfigError(f"{self.method} is bottom-up: it finds the persons itself; "
                                  "call predict(image) without boxes")
            return self._bottom_up(image)
        self._boxes.boxes = _boxes(boxes, image)
        self._pipeline.reset()
        frame = Frame(image_id=0, file_name="", width=image.shape[1], height=image.shape[0])
        poses = self._pipeline(frame, image)
        for pose in poses:
            pose.track_id = -1  # one image: no tracks
        return poses

    @torch.no_grad()
    def _bottom_up(self, image: np.ndarray) -> list[Pose]:
        from vidpose.data_modules.datasets import as_data_config
        from vidpose.data_modules.transforms import letterbox, normalize
        from vidpose.methods.bottom_up import to_image_pixels

        size = as_data_config(self.model.hparams["data"]).input_size
        boxed, image_to_input = letterbox(image[None], size)
        batch = {"image": normalize(boxed).to(self.model.device, self.model.dtype)}
        poses = self.model.predict_poses(batch)[type(self.model).DECODERS[0]][0]
        return to_image_pixels(poses, image_to_input)

    def track(self, frames: Iterable[Any] | str | os.PathLike,
              boxes: Optional[Iterable[BoxesLike]] = None) -> list[list[Pose]]:
        """Each frame's poses with track ids, online as ``vidpose track`` runs (pose_memory:
        the person memories carry over frames). ``frames``: RGB images, or a video file or
        frame folder; ``boxes``: each frame's person boxes (None: the experiment's
        ``data.detector``, our person detector)."""
        if not isinstance(self.model, Tracking):
            raise ConfigError(f"track runs the tracking methods (pose_memory); "
                              f"{self.cfg.experiment.name!r} is a {self.method} experiment: "
                              "call predict on each frame")
        if isinstance(frames, (str, os.PathLike)):
            from vidpose.tracking.video import open_video

            frames = (image for _, image in open_video(frames))
        if boxes is None:
            from vidpose.methods import configured_boxes

            detector = dataclasses.replace(self.model.data_cfg, box_source="detector")
            source = configured_boxes(detector, set(), self.model.data_cfg.val_split, self.model.device)
            pipeline, per_frame = self.model.pipeline(source), None
        else:
            pipeline, per_frame = self._pipeline, iter(boxes)
        pipeline.reset()
        out = []
        for index, image in enumerate(frames):
            image = _image(image)
            if per_frame is not None:
                try:
                    self._boxes.boxes = _boxes(next(per_frame), image)
                except StopIteration:
                    raise InputError(f"boxes for {index} frames, but frame {index} follows",
                                     field="boxes") from None
            frame = Frame(image_id=index, file_name="", width=image.shape[1],
                          height=image.shape[0], video="video", frame_index=index)
            out.append(pipeline(frame, image))
        return out


def load(checkpoint: str | os.PathLike, device: str = "cpu") -> Predictor:
    """The predictor of a checkpoint ``runs/<experiment>/<time>/checkpoints/<name>.ckpt``."""
    from vidpose.callbacks.checkpoint import read_checkpoint
    from vidpose.methods import get_method

    path = Path(checkpoint)
    read_checkpoint(path, field="checkpoint")  # one line for a missing or damaged file
    cfg = _run_config(path)
    method = str(cfg.experiment.method)
    if method not in TOP_DOWN + BOTTOM_UP:
        raise ConfigError(f"vidpose.load predicts with the pose methods {list(TOP_DOWN + BOTTOM_UP)}; "
                          f"{cfg.experiment.name!r} is a {method} experiment")
    model = get_method(method).model_cls.load_from_checkpoint(str(path), map_location=device)
    return Predictor(model, cfg)
