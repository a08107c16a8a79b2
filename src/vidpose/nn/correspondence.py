"""Keypoint correspondence network: Siamese matching and affinity refinement.

Rafi et al., "Self-supervised Keypoint Correspondences for Multi-Person Pose Estimation and
Tracking in Videos" (ECCV 2020), Sec. 4 (equations as restored in papers/README.md):

* Siamese matching (Sec. 4.1): one batch-normalised GoogLeNet, layers 1-17, applied to both
  images; features pixel-wise L2-normalised; keypoint j's local descriptor d_j is the
  ``patch`` x ``patch`` square of image 1's features around its cell; Eq. 1: the affinity
  map A_j = d_j (*) F2, the correlation of d_j with image 2's features; Eq. 2: a softmax of
  A_j over all positions of F2.
* Refinement (Sec. 4.2): GoogLeNet layers 3-17 on image 1, image 2 and ONE person's K
  Siamese affinity maps, all at stride 4, then a 1x1 convolution to K refined maps.
* Eq. 3: ground truth G_j(x) = exp(-||x - x'_j||^2 / sigma^2) around the warped keypoint
  x'_j, all zero when it left image 2 (truncation); Eq. 4-5: binary cross-entropy between G
  and the Siamese maps, and between G and the refined maps (:func:`vidpose.losses.siamese_loss`,
  :func:`vidpose.losses.refinement_loss`).

Cell convention (descriptors, targets, refinement resampling and the tracker alike): map
cell (u, v) at ``stride`` s covers the s x s input pixels whose centre is input pixel
((u + 0.5) s - 0.5, (v + 0.5) s - 0.5), pixel centres at integer coordinates, the way
average pooling and half-pixel resizing place them. Inputs are expected with sides that
are multiples of 16, the network's stride.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidpose.nn.inception_bn import GoogLeNetBN
from vidpose.targets import render_heatmaps

# The refinement module starts at GoogLeNet layer 3, whose input is at stride 4.
REFINEMENT_INPUT_STRIDE = 4
# Quantile levels an AffinityCalibration keeps: every percentile.
CALIBRATION_LEVELS = np.linspace(0.0, 1.0, 101)


def input_to_cell(points: Tensor, stride: float) -> Tensor:
    """Input pixel coordinates (..., 2) -> continuous map coordinates (cell centres integer)."""
    return (points + 0.5) / stride - 0.5


def nearest_cell(points: Tensor, stride: float, size: Sequence[int]) -> Tensor:
    """The (u, v) cell (..., 2) long that holds each input point, clamped to an (h, w) map."""
    cells = torch.floor((points + 0.5) / stride).long()
    high = torch.tensor([int(size[1]) - 1, int(size[0]) - 1], device=points.device)
    return torch.minimum(cells.clamp_min(0), high)


def affinity_targets(correspondences: Tensor, size: Sequence[int], stride: float,
                     sigma: float) -> Tensor:
    """Eq. 3 on the (h, w) map grid: (B, P, K, 3) input px -> (B, P, K, h, w).

    ``correspondences[..., j, :]`` is where image 1's keypoint j lies in image 2 (x, y and a
    flag, 0 for absent or truncated: an all-zero map). ``sigma`` is in map cells.
    ``targets.render_heatmaps`` draws exp(-d^2 / (2 s^2)), so s = sigma / sqrt(2) gives
    Eq. 3's exp(-d^2 / sigma^2) exactly.
    """
    cells = correspondences.clone()
    cells[..., :2] = input_to_cell(correspondences[..., :2], stride)
    return render_heatmaps(cells, size, sigma / math.sqrt(2.0), per_person=True)


def values_at(maps: Tensor, cells: Tensor) -> Tensor:
    """(..., h, w) maps read at (..., 2) long (u, v) cells -> (...)."""
    index = (cells[..., 1] * maps.shape[-1] + cells[..., 0])[..., None]
    return maps.flatten(-2).gather(-1, index)[..., 0]


def _cdf(quantiles: np.ndarray, value: float) -> float:
    """The share of a distribution below ``value``, read off its CALIBRATION_LEVELS quantiles
    (linear between them; ties, common where maps saturate, are stepped over)."""
    i = int(np.searchsorted(quantiles, value, side="right"))
    if i == 0:
        return 0.0
    if i == len(quantiles):
        return 1.0
    low, high = quantiles[i - 1], quantiles[i]  # low <= value < high
    step = CALIBRATION_LEVELS[i] - CALIBRATION_LEVELS[i - 1]
    return float(CALIBRATION_LEVELS[i - 1] + step * (value - low) / (high - low))


@dataclass(frozen=True)
class AffinityCalibration:
    """How the Siamese softmax maps' values relate to the refined sigmoid maps' values.

    A softmax spreads one unit of mass over the whole map, so a Siamese map's value at a
    correct match is far below a refined map's (a sigmoid per position). Thresholds stated
    for refined maps (Eq. 6's affinity threshold, the least track similarity) mean something
    else on Siamese maps; this maps them by matching quantiles, so that a threshold passes
    the same share of correct matches on both map types (paper Table 7, "w/o refinement").

    Measured by the refinement stage's validation on held-out self-supervised pairs, over the
    keypoints present in both images: ``joint_*`` are the quantiles (at CALIBRATION_LEVELS)
    of each map's value at the cell holding its warped keypoint (what Eq. 6 reads for the
    right person), ``person_*`` those of each person's mean of them (Eq. 6's similarity of a
    pose to its own track, without the affinity threshold).
    """

    joint_siamese: tuple[float, ...]
    joint_refined: tuple[float, ...]
    person_siamese: tuple[float, ...]
    person_refined: tuple[float, ...]

    @classmethod
    def measure(cls, joint_siamese: Tensor, joint_refined: Tensor, person_siamese: Tensor,
                person_refined: Tensor) -> "AffinityCalibration":
        levels = torch.from_numpy(CALIBRATION_LEVELS)
        quantiles = [tuple(torch.quantile(v.detach().double().cpu().flatten(), levels).tolist())
                     for v in (joint_siamese, joint_refined, person_siamese, person_refined)]
        return cls(*quantiles)

    def siamese_threshold(self, refined_threshold: float, level: str = "joint") -> float:
        """The Siamese-map threshold passing the share of correct matches that
        ``refined_threshold`` passes on refined maps: ``level`` joint (an affinity threshold)
        or person (a similarity threshold)."""
        if level not in ("joint", "person"):
            raise ValueError(f"level must be joint or person, got {level!r}")
        refined = np.asarray(getattr(self, f"{level}_refined"))
        siamese = np.asarray(getattr(self, f"{level}_siamese"))
        return float(np.interp(_cdf(refined, refined_threshold), CALIBRATION_LEVELS, siamese))

    def to_dict(self) -> dict[str, list[float]]:
        return {name: list(getattr(self, name)) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, values: dict[str, Sequence[float]]) -> "AffinityCalibration":
        return cls(**{name: tuple(float(v) for v in values[name])
                      for name in cls.__dataclass_fields__})


class SiameseMatching(nn.Module):
    """One GoogLeNet (layers 1-17) for both images, descriptors and affinity maps (Eq. 1-2)."""

    def __init__(self, width: float = 1.0, patch: int = 3) -> None:
        super().__init__()
        if patch < 1 or patch % 2 == 0:
            raise ValueError(f"patch must be an odd number of cells >= 1, got {patch}")
        self.backbone = GoogLeNetBN(1, 17, width=width)
        self.patch = patch
        self.stride = self.backbone.stride

    def features(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) normalised images -> (B, C, H/16, W/16), unit length per position."""
        return F.normalize(self.backbone(images), dim=1)

    def descriptors(self, features: Tensor, keypoints: Tensor) -> Tensor:
        """The ``patch`` x ``patch`` feature squares around each keypoint's cell.

        features (B, C, h, w); keypoints (B, P, K, >=2) input px -> (B, P, K, C, patch,
        patch), zero where the square leaves the map. A keypoint off the map takes the
        nearest cell (absent keypoints have arbitrary coordinates; callers ignore them).
        """
        r = self.patch // 2
        cells = nearest_cell(keypoints[..., :2], self.stride, features.shape[-2:])
        padded = F.pad(features, (r, r, r, r)).permute(0, 2, 3, 1)  # (B, h + 2r, w + 2r, C)
        offsets = torch.arange(self.patch, device=features.device)
        # Cell c sits at c + r in the padded map, so its square spans c .. c + 2r there.
        ys = cells[..., 1, None, None] + offsets[:, None]  # (B, P, K, patch, 1)
        xs = cells[..., 0, None, None] + offsets[None, :]  # (B, P, K, 1, patch)
        batch = torch.arange(len(features), device=features.device).view(-1, 1, 1, 1, 1)
        return padded[batch, ys, xs].permute(0, 1, 2, 5, 3, 4)

    def correlation(self, features1: Tensor, keypoints: Tensor, features2: Tensor) -> Tensor:
        """Eq. 1: each descriptor of image 1 correlated with image 2's features.

        One grouped convolution (a group per pair) for all keypoints: (B, P, K, h, w),
        zero-padded so the maps have F2's size.
        """
        d = self.descriptors(features1, keypoints)
        batch, persons, joints, channels = d.shape[:4]
        height, width = features2.shape[-2:]
        if persons * joints == 0:
            return features2.new_zeros((batch, persons, joints, height, width))
        out = F.conv2d(features2.reshape(1, batch * channels, height, width),
                       d.reshape(batch * persons * joints, channels, self.patch, self.patch),
                       padding=self.patch // 2, groups=batch)
        return out.reshape(batch, persons, joints, height, width)

    def affinity(self, features1: Tensor, keypoints: Tensor, features2: Tensor) -> Tensor:
        """Eq. 2: the correlation maps softmax-normalised over all positions of F2."""
        a = self.correlation(features1, keypoints, features2)
        return a.flatten(-2).softmax(-1).reshape(a.shape)


class AffinityRefinement(nn.Module):
    """GoogLeNet layers 3-17 on (image 1, image 2, one person's K affinity maps) at stride 4,
    then a 1x1 convolution to K refined maps at the Siamese maps' resolution.

    The output is logits; the refined affinity is their sigmoid. The paper does not say
    which squashing it uses; a sigmoid lets every map be all-zero for truncated keypoints,
    which Eq. 3's targets ask for and the Siamese softmax cannot give.

    The module predicts a correction to the Siamese maps' logits (its 1x1 head starts at
    zero), so an untrained refinement returns the Siamese maps unchanged and training only
    has to learn what to change: measured at compact scale, a plain refinement trained for
    12 steps fell from the Siamese module's 82% to 0.7% of keypoints within one cell.
    """

    def __init__(self, num_keypoints: int, width: float = 1.0) -> None:
        super().__init__()
        self.backbone = GoogLeNetBN(3, 17, in_channels=3 + 3 + num_keypoints, width=width)
        self.head = nn.Conv2d(self.backbone.out_channels, num_keypoints, kernel_size=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, image1: Tensor, image2: Tensor, affinity: Tensor,
                pair_index: Tensor) -> Tensor:
        """Refine N persons' maps: images (B, 3, H, W), affinity (N, K, h, w), pair_index
        (N,) the pair each person belongs to -> logits (N, K, h, w).

        Images are average-pooled to stride 4 and the maps up-sampled there bilinearly with
        half-pixel centres, both under the module's cell convention.
        """
        images = F.avg_pool2d(torch.cat([image1, image2], 1), REFINEMENT_INPUT_STRIDE)
        maps = F.interpolate(affinity, size=images.shape[-2:], mode="bilinear",
                             align_corners=False)
        correction = self.head(self.backbone(torch.cat([images[pair_index], maps], 1)))
        if correction.shape[-2:] != affinity.shape[-2:]:
            raise ValueError(f"refined maps {tuple(correction.shape[-2:])} differ from the affinity "
                             f"maps {tuple(affinity.shape[-2:])}: image sides must be "
                             f"multiples of 16")
        return torch.logit(affinity.clamp(1e-6, 1 - 1e-6)) + correction


class CorrespondenceNet(nn.Module):
    """Siamese matching plus (optionally) the refinement module.

    ``stride`` is the input pixels per map cell (16). The tracker calls :meth:`features`
    once per frame and :meth:`propagate` per pair of frames.
    """

    def __init__(self, num_keypoints: int, width: float = 1.0, patch: int = 3,
                 refinement: bool = False) -> None:
        super().__init__()
        self.siamese = SiameseMatching(width, patch)
        self.refinement = AffinityRefinement(num_keypoints, width) if refinement else None
        self.stride = self.siamese.stride
        self.siamese_frozen = False
        # Set by the refinement stage's validation and kept in its checkpoints; the tracker
        # reads it to run on the Siamese maps with thresholds stated for refined ones.
        self.calibration: AffinityCalibration | None = None

    def freeze_siamese(self) -> None:
        """Module-wise training's second step: the Siamese module gets no gradients and its
        batch norm keeps its statistics (eval mode, whatever mode the net is put in)."""
        self.siamese.requires_grad_(False)
        self.siamese_frozen = True
        self.siamese.eval()

    def train(self, mode: bool = True) -> "CorrespondenceNet":
        super().train(mode)
        if self.siamese_frozen:
            self.siamese.eval()
        return self

    def features(self, images: Tensor) -> Tensor:
        """Siamese features of (B, 3, H, W) normalised images: (B, C, h, w)."""
        return self.siamese.features(images)

    def forward(self, image1: Tensor, image2: Tensor, keypoints1: Tensor) -> Tensor:
        """Siamese affinity maps (B, P, K, h, w) of image 1's (B, P, K, >=2) keypoints in
        image 2."""
        return self.siamese.affinity(self.features(image1), keypoints1, self.features(image2))

    @torch.no_grad()
    def propagate(self, image1: Tensor, image2: Tensor, keypoints1: Tensor, refined: bool = True,
                  features1: Tensor | None = None, features2: Tensor | None = None) -> Tensor:
        """Where ONE pair's persons went: affinity maps (P, K, h, w) in [0, 1].

        images (3, H, W) normalised; keypoints1 (P, K, 3) input px of image 1, third value
        > 0 for the keypoints to propagate (the others get all-zero maps). The refined
        (sigmoid) maps, or the Siamese softmax maps when ``refined`` is False or the net has
        no refinement module. ``features1``/``features2`` (1, C, h, w), from
        :meth:`features`, skip recomputing a frame's features. Switches the net to eval
        mode. Cell (u, v) of a map is input pixel ((u + 0.5) stride - 0.5, (v + 0.5)
        stride - 0.5).
        """
        self.eval()
        f1 = self.features(image1[None]) if features1 is None else features1
        f2 = self.features(image2[None]) if features2 is None else features2
        keypoints1 = torch.as_tensor(keypoints1, dtype=f1.dtype, device=f1.device)
        maps = self.siamese.affinity(f1, keypoints1[None], f2)[0]
        if refined and self.refinement is not None and len(maps):
            pair_index = torch.zeros(len(maps), dtype=torch.long, device=maps.device)
            maps = torch.sigmoid(self.refinement(image1[None], image2[None], maps, pair_index))
        return maps * (keypoints1[..., 2] > 0).to(maps.dtype)[..., None, None]
