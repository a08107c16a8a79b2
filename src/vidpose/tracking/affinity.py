"""Keypoint correspondences between two video frames, in image pixels.

The correspondence network (``nn/correspondence.py``) works on frames letterboxed to its
input size and answers on its feature grid. This module hides both: a frame is prepared
once (letterbox, normalise, Siamese features kept for every pair it takes part in), and the
affinity maps of a frame's poses in another frame are read back in image pixels:

* ``Affinities.peaks()``: each joint's propagated position (the argmax of its map, the
  centre of the winning cell mapped to the image) and the affinity there (paper Sec. 5.1);
* ``Affinities.at(points)``: a track's affinity for joint j at another pose's joint-j
  location (paper Eq. 6).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from vidpose.data_modules.transforms import apply_affine, invert_affine, letterbox, normalize
from vidpose.pose import Pose


@dataclass
class PreparedFrame:
    """One frame as the correspondence network sees it."""

    image: Tensor  # (3, H, W) normalised letterboxed frame, on the network's device
    image_to_input: np.ndarray  # (2, 3)
    input_to_image: np.ndarray  # (2, 3)
    features: Tensor  # (1, C, h, w) Siamese features


@dataclass
class Affinities:
    """Affinity maps (P, K, h, w) in [0, 1] of P source poses' joints in a target frame."""

    maps: np.ndarray
    stride: float  # input pixels per map cell
    input_to_image: np.ndarray  # (2, 3) of the target frame

    def peaks(self) -> tuple[np.ndarray, np.ndarray]:
        """(P, K, 2) image positions of each map's maximum and (P, K) its affinity."""
        num_p, num_k, h, w = self.maps.shape
        flat = self.maps.reshape(num_p, num_k, h * w)
        best = flat.argmax(-1)
        values = np.take_along_axis(flat, best[..., None], -1)[..., 0]
        cells = np.stack([best % w, best // w], -1).astype(np.float64)
        inputs = (cells + 0.5) * self.stride - 0.5
        return apply_affine(inputs, self.input_to_image), values

    def at(self, points: np.ndarray) -> np.ndarray:
        """Affinity of source pose p's joint j at the joint-j location of each of N target
        poses: points (N, K, 2) image pixels -> (P, N, K)."""
        inputs = apply_affine(np.asarray(points, dtype=np.float64), invert_affine(self.input_to_image))
        num_k, h, w = self.maps.shape[1:]
        # The map cell each point falls in (clipped): cell (u, v) covers input pixels whose
        # centres lie within half a stride of ((u + 0.5) stride - 0.5, ...), the network's
        # cell-centre convention.
        u = np.clip(np.floor((inputs[..., 0] + 0.5) / self.stride), 0, w - 1).astype(np.int64)
        v = np.clip(np.floor((inputs[..., 1] + 0.5) / self.stride), 0, h - 1).astype(np.int64)
        return self.maps[:, np.arange(num_k)[None, :], v, u]


class Propagator:
    """Prepares frames and propagates poses between them with a correspondence network.

    ``net`` offers ``features(images)``, ``propagate(image1, image2, keypoints1, refined=,
    features1=, features2=)`` and ``stride`` (``nn/correspondence.CorrespondenceNet``).
    ``refined=False`` reads the Siamese maps (paper Table 7, "w/o refinement module").
    """

    def __init__(self, net: Any, input_size: Sequence[int], refined: bool = True) -> None:
        self.net = net.eval()  # batch norm with its running statistics from the first frame on
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.refined = refined

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters(), torch.empty(0)).device

    @torch.no_grad()
    def prepare(self, image: np.ndarray) -> PreparedFrame:
        boxed, image_to_input = letterbox(image[None], self.input_size)
        tensor = normalize(boxed[0]).to(self.device)
        features = self.net.features(tensor[None])
        return PreparedFrame(tensor, image_to_input, invert_affine(image_to_input), features)

    @torch.no_grad()
    def propagate(self, source: PreparedFrame, target: PreparedFrame,
                  poses: list[Pose]) -> Affinities:
        """The affinity maps of ``poses`` (in ``source``'s image pixels) in ``target``."""
        keypoints = np.stack([p.keypoints for p in poses]).astype(np.float64)
        inputs = keypoints.copy()
        inputs[..., :2] = apply_affine(keypoints[..., :2], source.image_to_input)
        # Only joints the pose has (score > 0) have a descriptor worth matching.
        inputs[..., 2] = (keypoints[..., 2] > 0).astype(np.float64)
        maps = self.net.propagate(source.image, target.image,
                                  torch.from_numpy(inputs).float().to(self.device),
                                  refined=self.refined, features1=source.features,
                                  features2=target.features)
        return Affinities(maps.float().cpu().numpy(), float(self.net.stride), target.input_to_image)
