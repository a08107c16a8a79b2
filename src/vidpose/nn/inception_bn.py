"""Batch-normalised GoogLeNet (Inception v1) cut between two of its layers, torchvision names.

Szegedy et al., "Going Deeper with Convolutions" (CVPR 2015), with a BatchNorm after every
convolution as in torchvision's ``googlenet`` (``BasicConv2d`` = conv, bn (eps 1e-3), ReLU;
the "5x5" branch uses a 3x3 kernel there, and so here). Parameter names are torchvision's
(``conv1.conv.weight``, ``inception4e.branch2.1.bn.running_mean``, ...), so its ImageNet
state dict loads with :func:`load_imagenet`.

Layer numbers count the layers with parameters, as GoogLeNet's "22 layers deep" does:
1 ``conv1`` (7x7, stride 2), 2 ``conv2`` (1x1), 3 ``conv3`` (3x3), then two per inception
block: 3a = 4-5, 3b = 6-7, 4a = 8-9, 4b = 10-11, 4c = 12-13, 4d = 14-15, 4e = 16-17.
"Layers 1 to 17" (the keypoint correspondence paper's Siamese branches and first pose
stage) run from the image to inception 4e at stride 16 with 832 channels. "Layers 3 to 17"
(its refinement module and second pose stage) start at ``conv3``, whose input is at stride
4 (after ``conv1``, ``maxpool1`` and ``conv2``), so a stage that starts there takes stride-4
maps; its first convolution is widened to ``in_channels``.

``width`` scales every convolution's channels (compact CPU scale); only width 1 matches
the ImageNet file.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from vidpose.nn.resnet import load_pretrained

# Inception blocks (torchvision's numbers): ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj.
_BLOCKS: dict[str, tuple[int, int, int, int, int, int]] = {
    "inception3a": (64, 96, 128, 16, 32, 32),
    "inception3b": (128, 128, 192, 32, 96, 64),
    "inception4a": (192, 96, 208, 16, 48, 64),
    "inception4b": (160, 112, 224, 24, 64, 64),
    "inception4c": (128, 128, 256, 24, 64, 64),
    "inception4d": (112, 144, 288, 32, 64, 64),
    "inception4e": (256, 160, 320, 32, 128, 128),
}
# The last parameter layer of each named module, in order.
_LAST_LAYER = {"conv1": 1, "conv2": 2, "conv3": 3, "inception3a": 5, "inception3b": 7,
               "inception4a": 9, "inception4b": 11, "inception4c": 13, "inception4d": 15,
               "inception4e": 17}
# Max-pools (stride 2) that follow a module.
_POOL_AFTER = {"conv1": "maxpool1", "conv3": "maxpool2", "inception3b": "maxpool3"}
STARTS = (1, 3)  # the image, or conv3's stride-4 input
ENDS = tuple(sorted(_LAST_LAYER.values()))


class BasicConv2d(nn.Module):
    """Convolution without bias, BatchNorm (eps 1e-3), ReLU: torchvision's GoogLeNet unit."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Four parallel branches concatenated: 1x1; 1x1 -> 3x3; 1x1 -> 3x3; 3x3 max-pool -> 1x1."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int,
                 ch5x5: int, pool_proj: int) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, kernel_size=1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


def _scaled(channels: int, width: float) -> int:
    return max(8, int(round(channels * width)))


class GoogLeNetBN(nn.Module):
    """GoogLeNet layers ``first`` .. ``last`` (see the module docstring for the numbering).

    ``first=1``: (B, 3, H, W) image -> features; ``first=3``: (B, in_channels, H/4, W/4) maps
    -> features. ``stride`` is the output's stride relative to the image, ``out_channels``
    its channels; a ``first=3`` stage's input is at stride 4 of that image.
    """

    def __init__(self, first: int = 1, last: int = 17, in_channels: int = 3,
                 width: float = 1.0) -> None:
        super().__init__()
        if first not in STARTS:
            raise ValueError(f"first layer must be one of {STARTS}, got {first}")
        if last not in ENDS or last < max(first, 3):
            raise ValueError(f"last layer must be one of {[e for e in ENDS if e >= 3]}, got {last}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        self.first, self.last = first, last
        self.order: list[str] = []
        channels, stride = in_channels, 1 if first == 1 else 4
        for name, layer in _LAST_LAYER.items():
            if layer < first or layer > last:
                continue
            if name == "conv1":
                module: nn.Module = BasicConv2d(channels, _scaled(64, width), kernel_size=7,
                                                stride=2, padding=3)
                stride *= 2
            elif name == "conv2":
                module = BasicConv2d(channels, _scaled(64, width), kernel_size=1)
            elif name == "conv3":
                module = BasicConv2d(channels, _scaled(192, width), kernel_size=3, padding=1)
            else:
                module = Inception(channels, *(_scaled(c, width) for c in _BLOCKS[name]))
            setattr(self, name, module)
            self.order.append(name)
            channels = module.out_channels if isinstance(module, Inception) else module.conv.out_channels
            pool = _POOL_AFTER.get(name)
            if pool and layer < last:
                setattr(self, pool, nn.MaxPool2d(3, stride=2, ceil_mode=True))
                self.order.append(pool)
                stride *= 2
        self.out_channels = channels
        self.stride = stride

    def forward(self, x: Tensor, taps: tuple[str, ...] = ()) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """The features; with ``taps`` (module names) also those modules' outputs, e.g.
        ``("conv2",)`` for the stride-4 maps a layers-3-17 stage can take."""
        tapped: dict[str, Tensor] = {}
        for name in self.order:
            x = getattr(self, name)(x)
            if name in taps:
                tapped[name] = x
        if taps:
            unknown = set(taps) - set(tapped)
            if unknown:
                raise ValueError(f"no module {sorted(unknown)} in layers {self.first}-{self.last}")
            return x, tapped
        return x


def load_imagenet(model: GoogLeNetBN, path: str | Path) -> list[str]:
    """Torchvision's GoogLeNet ImageNet state dict (local file) into ``model``, as
    :func:`load_pretrained` (a widened first convolution keeps its own initialisation)."""
    widened = (f"{model.order[0]}.conv.weight",) if model.first == 3 else ()
    return load_pretrained(model, path, "GoogLeNet", "only width 1 matches the ImageNet GoogLeNet",
                           keep_own=widened)
