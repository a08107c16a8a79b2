"""The appearance (person re-identification) tracking cue: colour histograms of the box.

The correspondence paper's Table 2 row "Re-ID" scores poses against tracks with a
pre-trained person re-identification CNN (Luo et al., "Bag of tricks and a strong baseline
for deep person re-identification", CVPRW 2019). No such network can be downloaded here, so
this cue is a hand-crafted appearance descriptor instead, not a learned one: the HSV colour
histograms of the upper and the lower half of the person's box (clothes of the torso and of
the legs), each L1-normalised. Like the re-id baseline it looks at appearance only, never at
where the person is, so it keeps identities through crossings and large jumps, and it mixes
persons up where their boxes overlap.

Similarity is histogram intersection, ``sum_b min(h1_b, h2_b)``, rather than 1 - Bhattacharyya
distance: on L1-normalised histograms it is exactly the fraction of the colour mass two boxes
share, linear in it and in [0, 1] like box IoU and OKS, so a tracker threshold reads the same
way for every cue (Bhattacharyya's square roots bend that scale); and it is a plain array
minimum, so the whole (N, M) matrix is one vectorised operation instead of one
``cv2.compareHist`` call per pair.

A track's descriptor is a running average over its poses, ``d <- momentum d + (1 - momentum)
d_new``, so one frame where another person covers the box does not replace it.
"""
from __future__ import annotations

import cv2
import numpy as np

from vidpose.pose import Pose
from vidpose.tracking.similarity import tracking_box

_RANGES = [0, 180, 0, 256, 0, 256]  # OpenCV's uint8 HSV: hue in [0, 180)


def _histogram(hsv: np.ndarray, bins: tuple[int, int, int]) -> np.ndarray:
    """L1-normalised joint HSV histogram of an (h, w, 3) patch; zeros when it is empty."""
    if hsv.size == 0:
        return np.zeros(int(np.prod(bins)))
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(bins), _RANGES).ravel().astype(np.float64)
    return hist / hist.sum()


def appearance_descriptors(hsv: np.ndarray, poses: list[Pose],
                           bins: tuple[int, int, int] = (8, 4, 4)) -> np.ndarray:
    """(N, 2 * prod(bins)) descriptors of ``poses`` in an HSV (OpenCV uint8) image.

    Each is the histograms of the upper and lower half of the pose's box (its box, else its
    keypoints' box) clipped to the image, each half weighing 1/2. An empty box, or one that
    lies outside the image, gets zeros, which are alike to nothing.
    """
    height, width = hsv.shape[:2]
    out = np.zeros((len(poses), 2 * int(np.prod(bins))))
    for i, pose in enumerate(poses):
        box = tracking_box(pose)
        if box[2] <= 0 or box[3] <= 0:
            continue
        # Clipped to the image; a box wholly outside gives an empty crop (never a negative,
        # wrapping index).
        x0, y0 = np.floor(np.clip(box[:2], 0, [width, height])).astype(int)
        x1, y1 = np.ceil(np.clip(box[:2] + box[2:], 0, [width, height])).astype(int)
        middle = (y0 + y1) // 2
        out[i] = 0.5 * np.concatenate([_histogram(hsv[y0:middle, x0:x1], bins),
                                       _histogram(hsv[middle:y1, x0:x1], bins)])
    return out


def histogram_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection of descriptors (N, D) and (M, D)."""
    return np.minimum(a[:, None, :], b[None, :, :]).sum(-1)


class ReIDCue:
    """Tracking cue: appearance similarity of the new poses to the tracks' running descriptors.

    ``bins``: HSV histogram bins (hue, saturation, value); ``momentum``: weight of a track's
    old descriptor when a new pose joins it.
    """

    def __init__(self, bins: tuple[int, int, int] = (8, 4, 4), momentum: float = 0.7) -> None:
        bins = tuple(int(b) for b in bins)
        if len(bins) != 3 or min(bins) < 1:
            raise ValueError(f"bins must be three positive counts (hue, saturation, value), got {bins}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.bins, self.momentum = bins, float(momentum)
        self._hsv: np.ndarray | None = None  # the current frame
        self._descriptors: dict[int, np.ndarray] = {}  # track id -> running descriptor

    def begin(self, image: np.ndarray | None) -> None:
        if image is None:
            raise ValueError("appearance tracking needs each frame's image "
                             "(GreedyTracker.update(poses, image))")
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
        self._hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)

    def similarity(self, poses: list[Pose], tracks: dict[int, Pose]) -> np.ndarray:
        # Tracks the tracker no longer offers are gone for good: forget their descriptors.
        self._descriptors = {tid: self._descriptors[tid] for tid in tracks}
        return histogram_intersection(appearance_descriptors(self._hsv, poses, self.bins),
                                      np.stack(list(self._descriptors.values())))

    def end(self, tracked: list[Pose]) -> None:
        """Fold the tracked poses' descriptors into their tracks' running averages."""
        for pose, new in zip(tracked, appearance_descriptors(self._hsv, tracked, self.bins)):
            old = self._descriptors.get(pose.track_id)
            self._descriptors[pose.track_id] = new if old is None else \
                self.momentum * old + (1 - self.momentum) * new
