"""The top-down heatmap codec: crop-pixel keypoints <-> one Gaussian heatmap per joint.

The data modules' targets (``encode``) and the methods' predictions (``decode``) come from
the same ``data:`` keys, so the two cannot drift apart (as mmpose's ``MSRAHeatmap``).
Bottom-up and STM maps (several persons per map, limbs) keep ``targets.render_heatmaps``
and their own decoders (``grouping.py``, ``stm_video.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vidpose.decode import REFINEMENTS, decode_heatmaps, heatmap_to_crop
from vidpose.targets import render_heatmaps

SUBPIXEL = REFINEMENTS  # quarter (the SimpleBaseline code) | taylor (DARK's Newton step)


@dataclass(frozen=True)
class HeatmapCodec:
    """One Gaussian heatmap per joint at ``stride``; build it with ``from_data``."""

    input_size: tuple[int, int]  # (h, w) of the crop
    stride: int
    sigma: float  # Gaussian spread in heatmap pixels
    subpixel: str = "quarter"

    @classmethod
    def from_data(cls, data: Any) -> HeatmapCodec:
        """The codec of a (validated) ``DataConfig``."""
        return cls((int(data.input_size[0]), int(data.input_size[1])), int(data.heatmap_stride),
                   float(data.sigma), data.subpixel)

    @property
    def heatmap_size(self) -> tuple[int, int]:
        return self.input_size[0] // self.stride, self.input_size[1] // self.stride

    def encode(self, keypoints: Tensor | np.ndarray,
               annotated: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(..., K, 3)`` crop-pixel keypoints -> heatmaps float32 ``(..., K, h, w)`` and
        weights float32 ``(..., K)``: 1 for a labelled joint inside the crop (and
        ``annotated`` (K,) in the schema); only weighted joints are drawn."""
        keypoints = torch.as_tensor(keypoints).float()
        h, w = self.input_size
        x, y = keypoints[..., 0], keypoints[..., 1]
        inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
        weights = ((keypoints[..., 2] > 0) & inside).float()
        if annotated is not None:
            weights = weights * annotated
        on_map = torch.cat([keypoints[..., :2] / self.stride, weights[..., None]], -1)
        return render_heatmaps(on_map[..., None, :, :], self.heatmap_size, self.sigma), weights

    def decode(self, heatmaps: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, K, h, w)`` heatmaps -> sub-pixel peaks ``(B, K, 2)`` in crop pixels (heatmap
        pixel ``u`` is crop pixel ``u * stride``) and scores ``(B, K)``, each map's maximum."""
        coords, scores = decode_heatmaps(heatmaps.float(), self.subpixel)
        return heatmap_to_crop(coords, self.stride), scores
