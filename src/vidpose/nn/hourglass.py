"""The stacked hourglass of Associative Embedding, laid out as pose-ae-train's ``PoseNet``.

Newell, Huang, Deng, "Associative Embedding: End-to-End Learning for Joint Detection and
Grouping" (NeurIPS 2017), on the stacked hourglass of Newell, Yang, Deng (ECCV 2016). The
modules and parameters carry the names of the official training code
(github.com/princeton-vl/pose-ae-train, ``models/posenet.py`` and ``models/layers.py``), so
its checkpoints load with :func:`load_pose_ae`:

* ``pre``: the stride-4 stem, conv 7x7/2, conv 3x3, max-pool 2, conv 3x3, conv 3x3;
* ``features[i]``: hourglass ``i`` (``features.i.0``: ``up1``, ``low1``, ``low2``,
  ``low3``, recursively ``depth`` levels deep) followed by two 3x3 convolutions;
* ``outs[i]``: a 1x1 convolution to the stack's maps, J heatmaps then J x tag_dim tags;
* ``merge_features[i]``, ``merge_preds[i]``: 1x1 convolutions that add stack ``i``'s
  features and maps back onto its input for stack ``i + 1``.

Each ``Conv`` is a biased convolution followed by a ReLU (none on the output and merge
layers). pose-ae-train builds the network with ``bn=False`` (its trained checkpoint has no
batch norm); ``batch_norm=True`` adds its ``Conv``'s optional ``bn`` after every convolution
with a ReLU, which trains from scratch in far fewer steps (the compact scale's choice).
Each hourglass level widens its lower branch by ``increase`` channels (pose-ae-train: 128
at every level).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from vidpose.nn.resnet import load_pretrained, read_state_dict

STEM_STRIDE = 4  # the stem's conv 7x7/2 and max-pool 2
# Prefixes pose-ae-train's checkpoints put before the PoseNet names: its training wrapper
# holds the network as ``model`` around a DataParallel ``module``.
CHECKPOINT_PREFIXES = ("module.", "model.")


class Conv(nn.Module):
    """pose-ae-train's ``Conv``: a biased convolution ("same" padding), an optional batch
    norm and an optional ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, relu: bool = True, bn: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                              padding=(kernel_size - 1) // 2, bias=True)
        self.bn = nn.BatchNorm2d(out_channels) if bn else None
        self.relu = nn.ReLU() if relu else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.relu(x) if self.relu is not None else x


class Merge(nn.Module):
    """pose-ae-train's ``Merge``: a 1x1 convolution without ReLU (parameters ``conv.conv.*``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = Conv(in_channels, out_channels, 1, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Hourglass(nn.Module):
    """One hourglass of ``depth`` levels: a full-resolution branch ``up1`` plus a branch that
    pools, recurses one level down (``channels + increase`` wide) and upsamples back."""

    def __init__(self, depth: int, channels: int, increase: int = 0, bn: bool = False) -> None:
        super().__init__()
        inner = channels + increase
        self.up1 = Conv(channels, channels, 3, bn=bn)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.low1 = Conv(channels, inner, 3, bn=bn)
        self.low2 = (Hourglass(depth - 1, inner, increase, bn) if depth > 1
                     else Conv(inner, inner, 3, bn=bn))
        self.low3 = Conv(inner, channels, 3, bn=bn)
        self.up2 = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: Tensor) -> Tensor:
        return self.up1(x) + self.up2(self.low3(self.low2(self.low1(self.pool1(x)))))


def check_input_size(height: int, width: int, depth: int) -> None:
    """``ValueError`` unless the stride-4 maps of a ``height`` x ``width`` input halve
    ``depth`` times without remainder (each hourglass level pools by 2 and upsamples back)."""
    multiple = STEM_STRIDE * 2 ** depth
    if height % multiple or width % multiple:
        raise ValueError(f"input {height} x {width}: an hourglass of depth {depth} needs both "
                         f"sides to be multiples of {multiple} (maps of "
                         f"{height / STEM_STRIDE:g} x {width / STEM_STRIDE:g} must be "
                         f"divisible by 2**{depth})")


class StackedHourglass(nn.Module):
    """``num_stacks`` hourglasses with intermediate supervision, AE's heatmaps and tags.

    ``forward(image (B, 3, H, W))`` returns, per stack, maps (B, out_channels, H/4, W/4):
    channels ``[0, J)`` are the joint heatmaps (no activation), ``[J, J + J*tag_dim)`` the
    tags, joint-major (joint k's tag dimension d at ``J + k*tag_dim + d``), then
    ``extra_outputs`` unsupervised maps (pose-ae-train's output has 68 = 17 + 17 + 34
    channels; the official checkpoint needs ``extra_outputs=34``).
    """

    def __init__(self, num_stacks: int = 4, channels: int = 256, num_joints: int = 17,
                 depth: int = 4, increase: int = 0, tag_dim: int = 1,
                 extra_outputs: int = 0, batch_norm: bool = False) -> None:
        super().__init__()
        self.num_stacks, self.depth = num_stacks, depth
        self.num_joints, self.tag_dim = num_joints, tag_dim
        self.out_channels = num_joints * (1 + tag_dim) + extra_outputs
        bn = batch_norm
        self.pre = nn.Sequential(
            Conv(3, 64, 7, 2, bn=bn),
            Conv(64, 128, bn=bn),
            nn.MaxPool2d(2, 2),
            Conv(128, 128, bn=bn),
            Conv(128, channels, bn=bn),
        )
        self.features = nn.ModuleList([
            nn.Sequential(Hourglass(depth, channels, increase, bn),
                          Conv(channels, channels, 3, bn=bn), Conv(channels, channels, 3, bn=bn))
            for _ in range(num_stacks)])
        self.outs = nn.ModuleList([Conv(channels, self.out_channels, 1, relu=False)
                                   for _ in range(num_stacks)])
        # Ours, not pose-ae-train's (it keeps PyTorch's default): the output layers start
        # with tiny weights, as SimpleBaseline's head does (nn/heads.py), so the first maps
        # are near zero. From the default start the first heatmap loss is 40x the all-zero
        # answer's, and training first spends its steps undoing that (src/vidpose/overfit.py,
        # the AE proof). A loaded checkpoint replaces these weights. Drawn from a forked
        # generator: what is built after the network (the RNN decoder over it) gets the
        # same draws as with the default start.
        with torch.random.fork_rng(devices=[]):
            for out in self.outs:
                nn.init.normal_(out.conv.weight, std=0.001)
                nn.init.zeros_(out.conv.bias)
        self.merge_features = nn.ModuleList([Merge(channels, channels)
                                             for _ in range(num_stacks - 1)])
        self.merge_preds = nn.ModuleList([Merge(self.out_channels, channels)
                                          for _ in range(num_stacks - 1)])

    def forward(self, image: Tensor) -> list[Tensor]:
        check_input_size(image.shape[-2], image.shape[-1], self.depth)
        x = self.pre(image)
        outputs = []
        for i in range(self.num_stacks):
            feature = self.features[i](x)
            outputs.append(self.outs[i](feature))
            if i < self.num_stacks - 1:
                x = x + self.merge_preds[i](outputs[-1]) + self.merge_features[i](feature)
        return outputs


def split_maps(output: Tensor, num_joints: int, tag_dim: int) -> tuple[Tensor, Tensor]:
    """One stack's maps (B, C, h, w) -> heatmaps (B, J, h, w) and tags (B, J, h, w, D), the
    channel layout of :class:`StackedHourglass`."""
    batch, _, height, width = output.shape
    tags = output[:, num_joints: num_joints * (1 + tag_dim)]
    return (output[:, :num_joints],
            tags.reshape(batch, num_joints, tag_dim, height, width).permute(0, 1, 3, 4, 2))


def strip_prefixes(state: dict[str, Tensor], names: set[str]) -> dict[str, Tensor]:
    """``state`` with pose-ae-train's wrapper prefixes removed from each key until the key is
    one of ``names`` or carries no known prefix."""
    stripped = {}
    for key, value in state.items():
        while key not in names and key.startswith(CHECKPOINT_PREFIXES):
            key = key.split(".", 1)[1]
        stripped[key] = value
    return stripped


def load_pose_ae(model: StackedHourglass, path: str | Path) -> list[str]:
    """Load an official pose-ae-train checkpoint (``{"state_dict": ..., "optimizer": ...}``
    or a bare state dict) into ``model``; returns the keys left out (see
    :func:`vidpose.nn.resnet.load_pretrained`). A file that is not such a checkpoint, or
    whose tensors do not fit, is an ``InputError`` naming it."""
    state = read_state_dict(Path(path), "pose-ae-train", entry="state_dict")
    state = strip_prefixes(state, set(model.state_dict()))
    return load_pretrained(model, path, "stacked hourglass",
                           "the official checkpoint needs channels 256, increase 128, "
                           "extra_outputs 34 and as many stacks and joints as it has",
                           state=state)
