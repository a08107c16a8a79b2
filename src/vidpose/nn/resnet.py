"""ResNet-18/34/50/101/152 feature extractors with torchvision's parameter names.

He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016), in torchvision's
"v1.5" form (the stride of a Bottleneck sits on its 3x3 convolution). Every parameter and
buffer carries torchvision's name (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0``, ...), so an ImageNet state dict saved from torchvision loads with
:func:`load_imagenet`. The classifier (``avgpool``, ``fc``) is left out: the forward returns
the stride-32 feature map, and a parameter that never receives a gradient would break DDP.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from vidpose.errors import InputError

BACKBONE_STRIDE = 32  # of the last stage's map


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or projection) shortcut: ResNet-18/34."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, with a shortcut: ResNet-50/101/152."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(in_planes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """The ResNet trunk (stem + four stages); ``forward`` gives (B, out_channels, H/32, W/32)."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int]) -> None:
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.out_channels = 512 * block.expansion
        # torchvision's initialisation, so a model trained from scratch starts the same way.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int,
                    stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.in_planes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.in_planes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.in_planes, planes, stride, downsample)]
        self.in_planes = planes * block.expansion
        layers += [block(self.in_planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(x)[-1]

    def stages(self, x: Tensor) -> list[Tensor]:
        """[C2, C3, C4, C5]: each stage's output (strides 4, 8, 16, 32), for pyramid heads."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        features = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            features.append(x)
        return features


ARCHITECTURES: dict[str, tuple[type[BasicBlock] | type[Bottleneck], list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
}


def resnet(name: str) -> ResNet:
    """A randomly initialised ResNet trunk by torchvision name (``resnet18`` ... ``resnet152``)."""
    try:
        block, layers = ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(ARCHITECTURES)}") from None
    return ResNet(block, layers)


def read_state_dict(path: Path, what: str, entry: str | None = None) -> dict[str, Tensor]:
    """The state dict saved in ``path``; ``InputError`` naming the file when there is none.

    ``entry``: a training checkpoint (a dict holding the state dict under this key, beside
    optimizer state and counters) is read as that state dict; a bare state dict still reads.
    """
    if not path.is_file():
        raise InputError(f"{what} weights file not found", file=str(path), field="pretrained")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and weights_only errors alike
        raise InputError(f"cannot read as a torch state dict: {err}", file=str(path),
                         field="pretrained") from None
    if entry is not None and isinstance(state, dict) and isinstance(state.get(entry), dict):
        state = state[entry]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise InputError("expected a state dict (parameter name -> tensor)", file=str(path),
                         field="pretrained")
    return state


def load_pretrained(model: nn.Module, path: str | Path, family: str, hint: str,
                    keep_own: tuple[str, ...] = (),
                    state: dict[str, Tensor] | None = None) -> list[str]:
    """Load the tensors of a local state dict whose names ``model`` has.

    Keys named in ``keep_own`` keep the model's own tensor when their shapes differ (a
    widened first convolution). Returns the keys left out: those of the file the model has no
    place for and those of the model the file did not fill. A missing or unreadable file, a
    file with no key of ``model``, or any other tensor of the wrong shape is an
    ``InputError`` naming the file (``hint`` says what to check). ``state``: the file's state
    dict already read (and renamed) by an importer; ``path`` then only names it in errors.
    """
    path = Path(path)
    if state is None:
        state = read_state_dict(path, "ImageNet")
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own}
    if not usable:
        raise InputError(f"no key matches a {family} parameter (first keys: {list(state)[:3]})",
                         file=str(path), field="pretrained")
    for key, value in list(usable.items()):
        if value.shape == own[key].shape:
            continue
        if key in keep_own:
            del usable[key]
            continue
        raise InputError(f"shape {tuple(value.shape)} does not fit {tuple(own[key].shape)}; "
                         f"{hint}", file=str(path), record=key, field="pretrained")
    model.load_state_dict(usable, strict=False)
    return sorted({k for k in state if k not in usable} | {k for k in own if k not in usable})


def load_imagenet(model: ResNet, path: str | Path) -> list[str]:
    """A torchvision ResNet ImageNet state dict (local file) into ``model``, as
    :func:`load_pretrained` (``fc.*`` and the trunk's keys the file lacks are returned)."""
    return load_pretrained(model, path, "ResNet", "is this the same ResNet depth?")
