"""The top-down pose networks behind one interface, and padding to a network's stride.

A ``TopDownNet`` is split at the stride-32 map F: ``encode`` (crops -> F and skip
features) and ``decode`` (F, skips -> intermediate and final heatmaps at stride 4), so that
the pose temporal memory reads F between the two. SimpleBaseline: F is the ResNet's C5 and
the deconvolution head (``heads.py``) decodes it; CPN (``cpn.py``): F is GlobalNet's lateral
of C5, decoded by GlobalNet and RefineNet.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from vidpose.nn.cpn import CPN
from vidpose.nn.heads import DeconvHead
from vidpose.nn.resnet import BACKBONE_STRIDE, ResNet, resnet

TOP_DOWN_NETS = ("simple_baseline", "cpn")


def pad_to_stride(image: Tensor, stride: int = BACKBONE_STRIDE) -> Tensor:
    """(..., H, W) zero-padded at the right and bottom to multiples of ``stride`` (zero is
    the mean colour after normalisation). A map of stride s keeps pixel u at input pixel
    s * u, so ``crop_to_input`` undoes the padding."""
    pad_h, pad_w = -image.shape[-2] % stride, -image.shape[-1] % stride
    return F.pad(image, (0, pad_w, 0, pad_h)) if pad_h or pad_w else image


def crop_to_input(maps: Tensor, size: Sequence[int], stride: int) -> Tensor:
    """Stride-``stride`` maps of a padded input cut back to those of its (H, W) ``size``."""
    return maps[..., : size[0] // stride, : size[1] // stride]


class TopDownNet(Protocol):
    backbone: ResNet  # the trunk that ImageNet weights load into
    memory_channels: int  # F's channels

    def encode(self, image: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(B, 3, H, W), sides multiples of 32 -> F (B, memory_channels, H/32, W/32), skips."""

    def decode(self, top: Tensor, skips: list[Tensor]) -> tuple[list[Tensor], Tensor]:
        """F (or the memory's F~) and skips -> intermediate heatmaps (CPN's GlobalNet levels;
        none for SimpleBaseline) and the final (B, K, H/4, W/4) heatmaps."""


class SimpleBaselineNet(nn.Module):
    """SimpleBaseline's network: a ResNet and the deconvolution head; F is C5, no skips."""

    def __init__(self, backbone: ResNet, head: DeconvHead) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head
        self.memory_channels = backbone.out_channels

    def encode(self, image: Tensor) -> tuple[Tensor, list[Tensor]]:
        return self.backbone(image), []

    def decode(self, top: Tensor, skips: list[Tensor]) -> tuple[list[Tensor], Tensor]:
        return [], self.head(top)

    def forward(self, image: Tensor) -> Tensor:
        return self.head(self.backbone(image))


def top_down_net(family: str, depth: str, num_joints: int, deconv_filters: int = 256,
                 cpn_channels: int = 256) -> TopDownNet:
    """A ``TOP_DOWN_NETS`` network on a ResNet of ``depth`` (``resnet18`` ... ``resnet152``):
    SimpleBaseline with its 3 deconvolutions of ``deconv_filters``, or CPN with pyramid
    width ``cpn_channels``."""
    if family not in TOP_DOWN_NETS:
        raise ValueError(f"unknown network {family!r}; known: {', '.join(TOP_DOWN_NETS)}")
    if family == "cpn":
        return CPN(depth, num_joints, cpn_channels)
    trunk = resnet(depth)
    return SimpleBaselineNet(trunk, DeconvHead(trunk.out_channels, num_joints, 3, deconv_filters))
