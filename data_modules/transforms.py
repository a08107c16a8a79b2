"""Image transforms: top-down crop warps, bottom-up letterbox + albumentations, normalisation.

Conventions: images are RGB uint8 ``(H, W, 3)`` until :func:`normalize`; keypoints are
``(..., K, 3)`` with x, y in pixels (pixel centres at integer coordinates, as cv2 warps) and a
visibility flag; an affine is a ``(2, 3)`` float64 matrix acting on ``[x, y, 1]``.

* Top-down (:class:`CropTransform`): one ``cv2.warpAffine`` from the person box's centre and
  size, with random scale, rotation and flip folded into the same matrix in training, and
  its exact inverse kept (``crop_to_image``) to map predictions back.
* Bottom-up (:class:`FrameTransform`): a letterbox warp to the input size, then albumentations
  geometric transforms (Affine, HorizontalFlip) with ``KeypointParams`` and photometric ones,
  applied through the ``images`` target so that every frame of a clip gets the same draw.
  The albumentations part's affine is recovered from three reference points carried along
  with the keypoints, so ``image_to_input`` is exact whatever albumentations drew.

Albumentations 2.0.8 moves keypoints on HorizontalFlip (x -> W - 1 - x) but has no mechanism
to swap keypoint labels, so the left/right slots are swapped here with ``Schema.flip_index``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import albumentations as A
import cv2
import numpy as np
import torch
from torch import Tensor

from vidpose.data_modules.config import AugmentConfig
from vidpose.keypoints import Schema

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def normalize(image: np.ndarray) -> Tensor:
    """RGB uint8 ``(..., H, W, 3)`` -> float32 ``(..., 3, H, W)`` with ImageNet mean/std."""
    scaled = (image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(scaled, -1, -3)))


def to_3x3(affine: np.ndarray) -> np.ndarray:
    return np.vstack([np.asarray(affine, dtype=np.float64), [0.0, 0.0, 1.0]])


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """The exact inverse of a (2, 3) affine."""
    return np.linalg.inv(to_3x3(affine))[:2]


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The affine that applies ``inner`` first, then ``outer``."""
    return (to_3x3(outer) @ to_3x3(inner))[:2]


def apply_affine(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Map ``(..., 2)`` points through a (2, 3) affine."""
    affine = np.asarray(affine, dtype=np.float64)
    return np.asarray(points, dtype=np.float64) @ affine[:, :2].T + affine[:, 2]


def transform_keypoints(keypoints: np.ndarray, affine: np.ndarray, flip_index: np.ndarray | None
                        = None) -> np.ndarray:
    """Map ``(..., K, 3)`` keypoints through ``affine``; swap slots by ``flip_index`` if given.

    Absent keypoints (v == 0) stay (0, 0, 0), so that nothing downstream mistakes a moved
    origin for a joint.
    """
    out = np.asarray(keypoints, dtype=np.float64).copy()
    out[..., :2] = apply_affine(out[..., :2], affine)
    if flip_index is not None:
        out = out[..., flip_index, :]
    out[out[..., 2] <= 0] = 0.0
    return out

def box_to_center_size(box: np.ndarray, aspect: float, padding: float) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """Centre (x, y) and size (w, h) of an x, y, w, h box, widened to ``aspect`` = w / h and
    padded by ``padding`` (SimpleBaseline: 1.25), so the crop keeps the person's proportions."""
    x, y, w, h = (float(v) for v in box)
    center = np.array([x + 0.5 * w, y + 0.5 * h])
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    return center, np.array([w, h]) * padding


def crop_affine(center: np.ndarray, size: np.ndarray, output_size: Sequence[int],
                rotation: float = 0.0, flip: bool = False) -> np.ndarray:
    """Image -> crop affine: the box ``size`` around ``center`` fills ``output_size`` (h, w).

    The box is rotated by ``rotation`` degrees (counter-clockwise on screen) about its centre,
    and mirrored about the crop's vertical centre line when ``flip``.
    """
    out_h, out_w = int(output_size[0]), int(output_size[1])
    scale = out_w / float(size[0])
    theta = np.deg2rad(rotation)
    cos, sin = np.cos(theta), np.sin(theta)
    # y points down, so a counter-clockwise turn on screen is this matrix.
    linear = scale * np.array([[cos, sin], [-sin, cos]])
    if flip:
        linear = np.diag([-1.0, 1.0]) @ linear
    crop_center = np.array([(out_w - 1) / 2.0, (out_h - 1) / 2.0])
    return np.hstack([linear, (crop_center - linear @ center)[:, None]])


@dataclass
class CropSample:
    image: np.ndarray  # (H, W, 3) uint8 crop
    keypoints: np.ndarray  # (K, 3) crop pixel coords, left/right swapped when flipped
    image_to_crop: np.ndarray  # (2, 3)
    crop_to_image: np.ndarray  # (2, 3), the exact inverse
    flipped: bool


class CropTransform:
    """Warp a person box to an ``input_size`` crop, with SimpleBaseline's random scale,
    rotation and flip in training (``augment`` given) and the photometric pipeline after it."""

    def __init__(self, input_size: Sequence[int], schema: Schema, padding: float,
                 augment: AugmentConfig | None = None) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.aspect = self.input_size[1] / self.input_size[0]
        self.schema = schema
        self.padding = padding
        self.augment = augment
        self.photometric = photometric_pipeline(augment) if augment is not None else None

    def draw(self) -> tuple[float, float, bool]:
        """Random (scale factor, rotation degrees, flip) from torch's RNG, which DataLoader
        seeds per worker."""
        aug = self.augment
        if aug is None:
            return 1.0, 0.0, False
        u = torch.rand(4).tolist()
        scale = 1.0 + aug.scale * (2.0 * u[0] - 1.0)
        rotation = aug.rotation * (2.0 * u[1] - 1.0) if u[2] < aug.rotation_prob else 0.0
        return scale, rotation, u[3] < aug.flip

    def __call__(self, image: np.ndarray, box: np.ndarray, keypoints: np.ndarray, *,
                 params: tuple[float, float, bool] | None = None) -> CropSample:
        """Crop ``box``; ``params`` (scale, rotation, flip) reuses one :meth:`draw` (e.g. for
        every frame of a clip), None draws afresh."""
        center, size = box_to_center_size(box, self.aspect, self.padding)
        scale, rotation, flip = self.draw() if params is None else params
        image_to_crop = crop_affine(center, size * scale, self.input_size, rotation, flip)
        crop = cv2.warpAffine(image, image_to_crop, (self.input_size[1], self.input_size[0]),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=(0, 0, 0))
        if self.photometric is not None:
            crop = self.photometric(image=crop)["image"]
        flip_index = self.schema.flip_index if flip else None
        return CropSample(crop, transform_keypoints(keypoints, image_to_crop, flip_index),
                          image_to_crop, invert_affine(image_to_crop), flip)


def photometric_pipeline(augment: AugmentConfig) -> A.Compose:
    """Colour jitter, Gaussian blur and pixel noise; geometry untouched."""
    steps: list[A.BasicTransform] = []
    if augment.color:
        steps.append(A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03, p=0.8))
    if augment.blur > 0:
        steps.append(A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.5), p=augment.blur))
    if augment.noise > 0:
        steps.append(A.GaussNoise(std_range=(0.01, 0.05), p=augment.noise))
    return A.Compose(steps)

def letterbox(images: np.ndarray, input_size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize ``(T, H, W, 3)`` frames to fit ``input_size`` (h, w) keeping the aspect ratio,
    centred on black padding. Returns the frames and the image -> input affine.

    cv2.resize with INTER_AREA averages when shrinking (no aliasing) and maps pixel centres
    as ``x' = (x + 0.5) s - 0.5``, which the returned affine states exactly.
    """
    out_h, out_w = int(input_size[0]), int(input_size[1])
    height, width = images.shape[1:3]
    ratio = min(out_h / height, out_w / width)
    new_w = max(1, min(out_w, round(width * ratio)))
    new_h = max(1, min(out_h, round(height * ratio)))
    sx, sy = new_w / width, new_h / height
    pad_x, pad_y = (out_w - new_w) // 2, (out_h - new_h) // 2
    interpolation = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
    out = np.zeros((len(images), out_h, out_w, 3), dtype=np.uint8)
    for t, image in enumerate(images):  # one resize per frame of a clip
        out[t, pad_y:pad_y + new_h, pad_x:pad_x + new_w] = cv2.resize(
            image, (new_w, new_h), interpolation=interpolation)
    affine = np.array([[sx, 0.0, 0.5 * sx - 0.5 + pad_x], [0.0, sy, 0.5 * sy - 0.5 + pad_y]])
    return out, affine


@dataclass
class FrameSample:
    images: np.ndarray  # (T, h, w, 3) uint8
    keypoints: np.ndarray  # (T, P, K, 3) input pixel coords, left/right swapped when flipped
    image_to_input: np.ndarray  # (2, 3), the same for every frame of a clip
    flipped: bool


class FrameTransform:
    """Whole frames (or a clip's frames, all alike) to ``input_size``: letterbox, then in
    training albumentations Affine/HorizontalFlip with keypoints and the photometric steps."""

    def __init__(self, input_size: Sequence[int], schema: Schema,
                 augment: AugmentConfig | None = None) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.schema = schema
        self.augment = augment
        self.pipeline = self._pipeline(augment) if augment is not None else None
        h, w = self.input_size
        # Three non-collinear points spanning the input: their images fix the affine.
        self.reference = np.array([[0.0, 0.0], [w - 1.0, 0.0], [0.0, h - 1.0]])

    @staticmethod
    def _pipeline(augment: AugmentConfig) -> A.Compose:
        geometric: list[A.BasicTransform] = [
            A.Affine(scale=(1.0 - augment.scale, 1.0 + augment.scale), keep_ratio=True,
                     rotate=(-augment.rotation, augment.rotation),
                     translate_percent=(-augment.translate, augment.translate),
                     border_mode=cv2.BORDER_CONSTANT, fill=0, p=1.0),
            A.HorizontalFlip(p=augment.flip),
        ]
        photometric = list(photometric_pipeline(augment).transforms)
        return A.Compose(geometric + photometric,
                         keypoint_params=A.KeypointParams(format="xy", remove_invisible=False))

    def seed(self, seed: int) -> None:
        """Re-seed albumentations' generator (it is copied, not re-seeded, into workers)."""
        if self.pipeline is not None:
            self.pipeline.set_random_seed(seed)

    def __call__(self, images: np.ndarray, keypoints: np.ndarray) -> FrameSample:
        """images ``(T, H, W, 3)`` RGB uint8; keypoints ``(T, P, K, 3)`` image coords."""
        boxed, image_to_input = letterbox(images, self.input_size)
        if self.pipeline is None:
            return FrameSample(boxed, transform_keypoints(keypoints, image_to_input),
                               image_to_input, False)
        points = apply_affine(keypoints[..., :2], image_to_input).reshape(-1, 2)
        result = self.pipeline(images=boxed, keypoints=np.vstack([points, self.reference]))
        moved = np.asarray(result["keypoints"], dtype=np.float32)[-3:]
        augment_affine = cv2.getAffineTransform(self.reference.astype(np.float32), moved)
        image_to_input = compose_affine(augment_affine.astype(np.float64), image_to_input)
        # A mirror is the only way this affine's determinant turns negative.
        flipped = bool(np.linalg.det(augment_affine[:, :2]) < 0)
        flip_index = self.schema.flip_index if flipped else None
        return FrameSample(np.asarray(result["images"]),
                           transform_keypoints(keypoints, image_to_input, flip_index),
                           image_to_input, flipped)
