"""A simulated person detector: ground-truth boxes made imperfect at configured rates.

Top-down methods and trackers are fed detections, not ground truth; these have the errors
a real detector makes: misses (more often for occluded persons), jittered boxes, duplicate
boxes on one person, false positives on the background, and confidence scores that fall
with how much of the person is visible.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidpose.errors import ConfigError


@dataclass(frozen=True)
class DetectorConfig:
    """Error rates of the simulated detector."""

    miss_rate: float = 0.05  # chance of missing a fully visible person
    occlusion_miss: float = 0.35  # extra miss chance for a fully hidden person (linear in hidden share)
    jitter: float = 0.05  # box noise: std of position and log-size, fraction of the box size
    duplicate_rate: float = 0.05  # chance of a second, looser box on a detected person
    false_positives: float = 0.3  # mean false boxes per image (Poisson)
    score_noise: float = 0.06  # std of the score around its visibility-driven mean

    def __post_init__(self) -> None:
        for name in ("miss_rate", "occlusion_miss", "duplicate_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"detector.{name}: expected a probability in [0, 1]; "
                                  f"got {getattr(self, name)}")
        if self.miss_rate + self.occlusion_miss > 1.0:
            raise ConfigError("detector: miss_rate + occlusion_miss must be <= 1")
        if min(self.jitter, self.false_positives, self.score_noise) < 0:
            raise ConfigError("detector: jitter, false_positives and score_noise must be >= 0")


def _jitter(rng: np.random.Generator, boxes: np.ndarray, amount: float) -> np.ndarray:
    noise = rng.normal(0.0, amount, size=boxes.shape)
    out = boxes.copy()
    out[:, :2] += noise[:, :2] * boxes[:, 2:]
    out[:, 2:] *= np.exp(noise[:, 2:])
    return out


def _clip(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    x0 = np.clip(boxes[:, 0], 0, width - 1)
    y0 = np.clip(boxes[:, 1], 0, height - 1)
    x1 = np.clip(boxes[:, 0] + boxes[:, 2], x0 + 1, width)
    y1 = np.clip(boxes[:, 1] + boxes[:, 3], y0 + 1, height)
    return np.stack([x0, y0, x1 - x0, y1 - y0], -1)


def detect(rng: np.random.Generator, boxes: np.ndarray, visible_fraction: np.ndarray,
           image_size: tuple[int, int], cfg: DetectorConfig) -> tuple[np.ndarray, np.ndarray]:
    """Detections ``(M, 4)`` x, y, w, h and scores ``(M,)``, best first, for one image.

    boxes: (N, 4) ground-truth boxes; visible_fraction: (N,) share of each person seen.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    visible = np.clip(np.asarray(visible_fraction, dtype=np.float64).reshape(-1), 0.0, 1.0)
    width, height = image_size
    p_miss = cfg.miss_rate + cfg.occlusion_miss * (1.0 - visible)
    hit = rng.uniform(size=len(boxes)) >= p_miss
    found, seen = boxes[hit], visible[hit]
    true_boxes = _jitter(rng, found, cfg.jitter)
    true_scores = 0.35 + 0.6 * seen + rng.normal(0.0, cfg.score_noise, size=len(seen))
    twin = rng.uniform(size=len(found)) < cfg.duplicate_rate
    twin_boxes = _jitter(rng, found[twin], 2.5 * cfg.jitter)
    twin_scores = true_scores[twin] * rng.uniform(0.3, 0.8, size=int(twin.sum()))
    n_false = int(rng.poisson(cfg.false_positives))
    box_h = rng.uniform(0.15, 0.6, size=n_false) * height
    box_w = box_h * rng.uniform(0.3, 0.6, size=n_false)
    false_boxes = np.stack([rng.uniform(0, 1, size=n_false) * (width - box_w),
                            rng.uniform(0, 1, size=n_false) * (height - box_h), box_w, box_h], -1)
    false_scores = rng.uniform(0.05, 0.5, size=n_false)
    out_boxes = _clip(np.concatenate([true_boxes, twin_boxes, false_boxes]), width, height)
    scores = np.clip(np.concatenate([true_scores, twin_scores, false_scores]), 0.01, 0.99)
    order = np.argsort(-scores, kind="stable")
    return np.round(out_boxes[order], 2), np.round(scores[order], 4)
