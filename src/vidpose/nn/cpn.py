"""CPN: the Cascaded Pyramid Network for top-down pose estimation.

Chen et al., "Cascaded Pyramid Network for Multi-Person Pose Estimation" (CVPR 2018). A
ResNet gives the stage outputs C2..C5 (strides 4, 8, 16, 32). **GlobalNet** is a feature
pyramid over them: 1x1 laterals to ``channels``, a top-down pathway (upsample x2 + 1x1
conv, added to the next lateral) and one heatmap predictor per level, upsampled to stride 4.
**RefineNet** sends each pyramid level through its own number of bottleneck blocks (more
for the coarser levels), upsamples all to stride 4, concatenates them and predicts the final
heatmaps with one more bottleneck and a 3x3 convolution; it is trained with online hard
keypoint mining (:func:`vidpose.losses.cpn_loss`).

The network is split at the C5 lateral (``encode`` / ``decode``) so that the pose temporal
memory can store and read the ``(channels, H/32, W/32)`` map between the two: (256, 12, 9)
for 384 x 288 crops, the shape that paper stores. Input sides must be multiples of 32 (the
caller pads), so that every upsampled level lands exactly on the next one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidpose.nn.resnet import BACKBONE_STRIDE, ResNet, resnet

PYRAMID_LEVELS = 4  # C2, C3, C4, C5


def _conv_bn(in_channels: int, out_channels: int, kernel: int, relu: bool = True) -> nn.Sequential:
    """Convolution (no bias: BatchNorm follows), BatchNorm, optional ReLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _resize(x: Tensor, size: torch.Size | tuple[int, int]) -> Tensor:
    """Bilinear resize. ``align_corners=False`` shifts a level by a constant sub-pixel offset,
    which the convolutions after it learn away; ``True`` would stretch it by a size-dependent
    factor instead."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class RefineBottleneck(nn.Module):
    """CPN's bottleneck: 1x1 to half width, 3x3, 1x1 to ``out_channels``, plus a shortcut
    (a 1x1 projection where the widths differ)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.residual = nn.Sequential(_conv_bn(in_channels, mid, 1), _conv_bn(mid, mid, 3),
                                      _conv_bn(mid, out_channels, 1, relu=False))
        self.shortcut = (nn.Identity() if in_channels == out_channels
                         else _conv_bn(in_channels, out_channels, 1, relu=False))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.residual(x) + self.shortcut(x))


class GlobalNet(nn.Module):
    """Feature pyramid over C2..C5 with a heatmap predictor per level; lists coarsest first."""

    def __init__(self, stage_channels: list[int], channels: int, num_joints: int) -> None:
        super().__init__()
        coarsest_first = stage_channels[::-1]
        self.laterals = nn.ModuleList(_conv_bn(c, channels, 1) for c in coarsest_first)
        self.upsamples = nn.ModuleList(_conv_bn(channels, channels, 1, relu=False)
                                       for _ in coarsest_first[1:])
        self.predictors = nn.ModuleList(
            nn.Sequential(_conv_bn(channels, channels, 1),
                          nn.Conv2d(channels, num_joints, 3, padding=1))
            for _ in coarsest_first)

    def forward(self, top: Tensor, skips: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """``top`` (the C5 lateral, ``laterals[0]`` applied) and ``skips`` [C2, C3, C4] ->
        (pyramid features, heatmaps at the stride of C2), both coarsest first."""
        pyramid = [top]
        for skip, lateral, upsample in zip(skips[::-1], self.laterals[1:], self.upsamples):
            pyramid.append(lateral(skip) + upsample(_resize(pyramid[-1], skip.shape[-2:])))
        size = skips[0].shape[-2:]
        heatmaps = [_resize(predict(level), size)
                    for predict, level in zip(self.predictors, pyramid)]
        return pyramid, heatmaps


class RefineNet(nn.Module):
    """Per-level bottleneck stacks, upsampled and concatenated, then the final heatmaps."""

    def __init__(self, channels: int, num_joints: int, refine_blocks: tuple[int, ...]) -> None:
        super().__init__()
        self.cascades = nn.ModuleList(
            nn.Sequential(*(RefineBottleneck(channels, channels) for _ in range(blocks)))
            for blocks in refine_blocks)
        self.final = nn.Sequential(RefineBottleneck(len(refine_blocks) * channels, channels),
                                   nn.Conv2d(channels, num_joints, 3, padding=1))

    def forward(self, pyramid: list[Tensor]) -> Tensor:
        """Pyramid features, coarsest first -> heatmaps at the finest level's size."""
        size = pyramid[-1].shape[-2:]
        levels = [_resize(cascade(level), size) for cascade, level in zip(self.cascades, pyramid)]
        return self.final(torch.cat(levels, dim=1))


class CPN(nn.Module):
    """ResNet + GlobalNet + RefineNet: (B, 3, H, W) crops -> (B, K, H/4, W/4) heatmaps.

    ``refine_blocks`` is the number of RefineNet bottlenecks per pyramid level, coarsest
    first (the paper's 3, 2, 1, 0).
    """

    def __init__(self, backbone: str, num_joints: int, channels: int = 256,
                 refine_blocks: tuple[int, ...] = (3, 2, 1, 0)) -> None:
        super().__init__()
        if len(refine_blocks) != PYRAMID_LEVELS:
            raise ValueError("refine_blocks needs one count per pyramid level (C5, C4, C3, C2), "
                             f"got {tuple(refine_blocks)}")
        self.backbone: ResNet = resnet(backbone)
        self.memory_channels = channels
        # Each stage doubles the width: C2..C5 have out_channels / 8, / 4, / 2, / 1.
        stage_channels = [self.backbone.out_channels >> (PYRAMID_LEVELS - 1 - i)
                          for i in range(PYRAMID_LEVELS)]
        self.global_net = GlobalNet(stage_channels, channels, num_joints)
        self.refine_net = RefineNet(channels, num_joints, tuple(refine_blocks))
        # Tiny heatmap convolutions (SimpleBaseline's initialisation): the first heatmaps are
        # near zero, so training starts from the all-background loss instead of first
        # unlearning random maps.
        for predictor in [*(p[-1] for p in self.global_net.predictors), self.refine_net.final[-1]]:
            nn.init.normal_(predictor.weight, std=0.001)
            nn.init.zeros_(predictor.bias)

    def encode(self, image: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(B, 3, H, W), sides multiples of 32 -> (top, skips): the C5 lateral
        (B, channels, H/32, W/32), the map the pose memory stores, and [C2, C3, C4]."""
        height, width = image.shape[-2:]
        if height % BACKBONE_STRIDE or width % BACKBONE_STRIDE:
            raise ValueError(f"CPN input sides must be multiples of {BACKBONE_STRIDE} "
                             f"(pad the crop), got {height} x {width}")
        *skips, c5 = self.backbone.stages(image)
        return self.global_net.laterals[0](c5), skips

    def decode(self, top: Tensor, skips: list[Tensor]) -> tuple[list[Tensor], Tensor]:
        """(top, skips) -> (GlobalNet heatmaps per level, coarsest first; RefineNet heatmaps),
        all (B, K, H/4, W/4)."""
        pyramid, global_heatmaps = self.global_net(top, skips)
        return global_heatmaps, self.refine_net(pyramid)

    def forward(self, image: Tensor) -> Tensor:
        """The final (RefineNet) heatmaps."""
        return self.decode(*self.encode(image))[1]
