"""Top-down pose networks behind one interface, split at the stride-32 map F that the pose
temporal memory reads: ``encode`` (crops -> F, skips) and ``decode`` (F, skips ->
intermediate and final heatmaps). SimpleBaseline: F is C5, decoded by the deconvolution
head; CPN (``cpn.py``): F is GlobalNet's lateral of C5. And padding to a network's stride."""
from __future__ import annotations

from typing import Protocol, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from vidpose.nn.cpn import CPN
from vidpose.nn.heads import DeconvHead
from vidpose.nn.resnet import BACKBONE_STRIDE, ResNet, resnet

TOP_DOWN_NETS = ("simple_baseline", "cpn")


def pad_to_stride(image: Tensor, stride: int = BACKBONE_STRIDE) -> Tensor:
    """(..., H, W) zero-padded at the right and bottom to multiples of ``stride`` (zero is the
    mean colour after normalisation); pixel u of a map keeps its place, u times its stride."""
    pad_h, pad_w = -image.shape[-2] % stride, -image.shape[-1] % stride
    return F.pad(image, (0, pad_w, 0, pad_h)) if pad_h or pad_w else image


def crop_to_input(maps: Tensor, size: Sequence[int], stride: int) -> Tensor:
    """Stride-``stride`` maps of a padded input cut back to those of its (H, W) ``size``."""
    return maps[..., : size[0] // stride, : size[1] // stride]


class TopDownNet(Protocol):
    """(B, 3, H, W) crops, sides multiples of 32 -> F (B, memory_channels, H/32, W/32) and
    skips -> intermediate heatmaps (CPN's GlobalNet levels) and final (B, K, H/4, W/4) ones."""
    backbone: ResNet  # where ImageNet weights load
    memory_channels: int
    def encode(self, image: Tensor) -> tuple[Tensor, list[Tensor]]: ...
    def decode(self, top: Tensor, skips: list[Tensor]) -> tuple[list[Tensor], Tensor]: ...


class SimpleBaselineNet(nn.Module):
    """A ResNet and SimpleBaseline's deconvolution head: F is C5, no skips."""

    def __init__(self, backbone: ResNet, head: DeconvHead) -> None:
        super().__init__()
        self.backbone, self.head, self.memory_channels = backbone, head, backbone.out_channels

    def encode(self, image: Tensor) -> tuple[Tensor, list[Tensor]]:
        return self.backbone(image), []

    def decode(self, top: Tensor, skips: list[Tensor]) -> tuple[list[Tensor], Tensor]:
        return [], self.head(top)

    def forward(self, image: Tensor) -> Tensor:
        return self.head(self.backbone(image))


def top_down_net(family: str, depth: str, num_joints: int, deconv_filters: int = 256,
                 cpn_channels: int = 256) -> TopDownNet:
    """A ``TOP_DOWN_NETS`` network on a ResNet of ``depth`` (SimpleBaseline: 3 deconvolutions)."""
    if family == "simple_baseline":
        trunk = resnet(depth)
        head = DeconvHead(trunk.out_channels, num_joints, 3, deconv_filters)
        return SimpleBaselineNet(trunk, head)
    if family == "cpn":
        return CPN(depth, num_joints, cpn_channels)
    raise ValueError(f"unknown network {family!r}; known: {', '.join(TOP_DOWN_NETS)}")
