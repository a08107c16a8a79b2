"""Camera degradations applied to a rendered frame: motion blur, lens softness, sensor noise.

(JPEG compression, the last degradation, happens when the frame is written.)
"""
from __future__ import annotations

import cv2
import numpy as np


def motion_blur(image: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """Average the image along the ``motion`` vector (pixels moved during the exposure)."""
    length = float(np.hypot(*motion))
    if length < 1.0:
        return image
    size = int(np.ceil(length)) | 1  # odd, so the kernel has a centre
    kernel = np.zeros((size, size), dtype=np.float32)
    half = (size - 1) / 2
    direction = motion / length
    ends = [(half - direction * length / 2), (half + direction * length / 2)]
    p0, p1 = (tuple(int(round(c * 16)) for c in e) for e in ends)
    cv2.line(kernel, p0, p1, 1.0, 1, cv2.LINE_AA, 4)
    return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def sensor_grain(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Unit Gaussian noise a little larger than a frame; each frame reads it at a random offset.

    Drawing fresh normal samples for every pixel of every frame is the slowest step of
    the renderer; shifting one field gives noise that changes from frame to frame at the
    cost of a crop.
    """
    return rng.standard_normal((height + 32, width + 32, 3), dtype=np.float32)


def degrade(image: np.ndarray, rng: np.random.Generator, camera_motion: np.ndarray, *,
            blur_chance: float, max_noise: float, grain: np.ndarray) -> np.ndarray:
    """A frame as a cheap camera would deliver it.

    The background's image motion always smears a little (the shutter is open for half the
    frame time); with ``blur_chance`` a jerk of the camera smears more. ``grain`` comes
    from ``sensor_grain``.
    """
    motion = 0.5 * np.asarray(camera_motion, dtype=np.float64)
    if rng.uniform() < blur_chance:
        angle = rng.uniform(0, np.pi)
        motion = motion + rng.uniform(2.0, 6.0) * np.array([np.cos(angle), np.sin(angle)])
    out = motion_blur(image, motion)
    out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 0.8))
    sigma = rng.uniform(0.0, max_noise)
    if sigma > 0:
        height, width = out.shape[:2]
        dy = int(rng.integers(0, grain.shape[0] - height + 1))
        dx = int(rng.integers(0, grain.shape[1] - width + 1))
        out = cv2.add(out, grain[dy:dy + height, dx:dx + width] * np.float32(sigma), dtype=cv2.CV_8U)
    return out
