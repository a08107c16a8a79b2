"""Space-Time Memory networks (STM) and STM-skeletons, with importers for pretrained weights.

Oh, Lee, Xu, Kim, "Video Object Segmentation using Space-Time Memory Networks" (ICCV 2019),
as adapted by Dufour et al., "Space-Time Memory networks for multi-person skeleton body part
detection": the memory encoder takes an RGB frame with its maps (one person-segmentation map
for plain STM; plus N_K keypoint and N_E limb maps for STM-skeletons), the query encoder the
RGB frame alone. Both are ResNet trunks cut after ``layer3`` (STM's res4, stride 16). 3x3
convolutions project res4 to keys and values; the space-time memory read attends from every
query position to all T*h*w memory positions; a decoder with refinement blocks over the
query's res3 and res2 features predicts ``num_maps`` logit maps at stride 4.

Images come in normalised with ImageNet mean/std (``data_modules.transforms.normalize``);
official STM does that inside its encoders, so its ``mean``/``std`` buffers are not imported.
Batch norm is frozen by default, as in both papers.

Key layout: the encoders keep torchvision's names (``conv1``, ``bn1``, ``layer1..3``), the
key/value projections are ``memory_kv``/``query_kv`` (``key``, ``value``) and the decoder
keeps the official names (``convFM``, ``ResMM``, ``RF3``/``RF2`` with ``convFS``, ``ResFS``,
``ResMM``, and ``pred2``) so that :func:`load_official_stm` is a renaming.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidpose.errors import InputError
from vidpose.nn.resnet import read_state_dict, resnet


def num_maps_for(variant: str, num_keypoints: int, num_limbs: int) -> int:
    """Map channels of a paper variant: the memory encoder's extra inputs and the outputs.

    ``skeleton_map`` (plain STM, Table 1): 1, a single map of all persons' skeletons.
    ``skeletons`` (STM-skeletons, Table 3): 1 + N_K + N_E, the person-segmentation map, one
    map per keypoint and one per limb (edge), each over all persons.
    ``edges`` (Table 2): 1 + N_E, the segmentation map and the limb maps.
    """
    counts = {"skeleton_map": 1, "skeletons": 1 + num_keypoints + num_limbs,
              "edges": 1 + num_limbs}
    if variant not in counts:
        raise ValueError(f"unknown STM variant {variant!r}; known: {', '.join(counts)}")
    return counts[variant]


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine terms: an affine map, whatever the mode.

    Everything is a buffer under ``nn.BatchNorm2d``'s names (``weight``, ``bias``,
    ``running_mean``, ``running_var``, ``num_batches_tracked``), so state dicts load both
    ways between frozen and trainable models; nothing here is a parameter, so an optimizer
    never sees it and DDP finds no unused parameter.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    @classmethod
    def from_batch_norm(cls, bn: nn.BatchNorm2d) -> "FrozenBatchNorm2d":
        """A frozen copy of ``bn``'s current statistics and affine terms."""
        frozen = cls(bn.num_features, bn.eps)
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                getattr(frozen, name).copy_(getattr(bn, name))
        return frozen

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        return x * scale[:, None, None] + shift[:, None, None]

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` inside ``module`` (in place) by a frozen copy."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, FrozenBatchNorm2d.from_batch_norm(child))
        else:
            freeze_batch_norm(child)
    return module


class Encoder(nn.Module):
    """A ResNet trunk cut after ``layer3``: image -> (res4 /16, res3 /8, res2 /4).

    ``in_channels`` > 3 widens the first convolution for the memory encoder's maps
    (initialised as the trunk's: He normal, fan out).
    """

    def __init__(self, backbone: str, in_channels: int = 3) -> None:
        super().__init__()
        trunk = resnet(backbone)
        self.conv1 = trunk.conv1
        if in_channels != 3:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.bn1, self.relu, self.maxpool = trunk.bn1, trunk.relu, trunk.maxpool
        self.layer1, self.layer2, self.layer3 = trunk.layer1, trunk.layer2, trunk.layer3
        expansion = trunk.layer1[0].expansion
        self.channels = {"res2": 64 * expansion, "res3": 128 * expansion, "res4": 256 * expansion}

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        r2 = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        r3 = self.layer2(r2)
        return self.layer3(r3), r3, r2


class KeyValue(nn.Module):
    """3x3 convolutions embedding res4 into a key (for addressing) and a value (for reading)."""

    def __init__(self, in_channels: int, key_dim: int, value_dim: int) -> None:
        super().__init__()
        self.key = nn.Conv2d(in_channels, key_dim, kernel_size=3, padding=1)
        self.value = nn.Conv2d(in_channels, value_dim, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.key(x), self.value(x)


class ResBlock(nn.Module):
    """STM's pre-activation residual block: x + conv(relu(conv(relu(x)))), same channels."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class Refine(nn.Module):
    """STM's refinement block: skip features (convFS, ResFS) plus the upsampled coarser
    decoder state, merged by ResMM."""

    def __init__(self, skip_channels: int, dim: int) -> None:
        super().__init__()
        self.convFS = nn.Conv2d(skip_channels, dim, kernel_size=3, padding=1)
        self.ResFS = ResBlock(dim)
        self.ResMM = ResBlock(dim)

    def forward(self, skip: Tensor, coarse: Tensor) -> Tensor:
        s = self.ResFS(self.convFS(skip))
        # To the skip's size rather than x2: the same for sizes divisible by 16, and it also
        # fits the rounded-up sizes of other inputs.
        up = F.interpolate(coarse, size=s.shape[-2:], mode="bilinear", align_corners=False)
        return self.ResMM(s + up)


class Decoder(nn.Module):
    """Memory read (stride 16) -> RF3 with res3 (stride 8) -> RF2 with res2 (stride 4) -> maps."""

    def __init__(self, read_channels: int, res3_channels: int, res2_channels: int, dim: int,
                 num_maps: int) -> None:
        super().__init__()
        self.convFM = nn.Conv2d(read_channels, dim, kernel_size=3, padding=1)
        self.ResMM = ResBlock(dim)
        self.RF3 = Refine(res3_channels, dim)
        self.RF2 = Refine(res2_channels, dim)
        self.pred2 = nn.Conv2d(dim, num_maps, kernel_size=3, padding=1)

    def forward(self, read: Tensor, r3: Tensor, r2: Tensor) -> Tensor:
        m4 = self.ResMM(self.convFM(read))
        m2 = self.RF2(r2, self.RF3(r3, m4))
        return self.pred2(F.relu(m2))


def read_weights(mem_keys: Tensor, q_key: Tensor) -> Tensor:
    """Soft addressing of the memory: (B, Ck, T, h, w), (B, Ck, h', w') -> (B, T*h*w, h'*w').

    Column j is the softmax over all memory positions of the key dot products with query
    position j, scaled by 1/sqrt(Ck) as in STM: each column sums to 1.
    """
    if mem_keys.shape[1] != q_key.shape[1]:
        raise ValueError(f"memory keys have {mem_keys.shape[1]} channels, query key "
                         f"{q_key.shape[1]}")
    affinity = mem_keys.flatten(2).transpose(1, 2) @ q_key.flatten(2)
    return F.softmax(affinity / math.sqrt(q_key.shape[1]), dim=1)


class STM(nn.Module):
    """STM / STM-skeletons: memorize (image, maps) frames, then segment query frames.

    ``num_maps`` is the number of map channels, in and out (:func:`num_maps_for`).
    ``backbone``: resnet18/34 (res4 256 channels) or resnet50/101/152 (1024).
    """

    def __init__(self, num_maps: int, backbone: str = "resnet50", key_dim: int = 128,
                 value_dim: int = 512, decoder_dim: int = 256, freeze_bn: bool = True) -> None:
        super().__init__()
        if num_maps < 1:
            raise ValueError(f"num_maps must be at least 1, got {num_maps}")
        self.num_maps = num_maps
        self.memory_encoder = Encoder(backbone, in_channels=3 + num_maps)
        self.query_encoder = Encoder(backbone)
        channels = self.query_encoder.channels
        self.memory_kv = KeyValue(channels["res4"], key_dim, value_dim)
        self.query_kv = KeyValue(channels["res4"], key_dim, value_dim)
        self.decoder = Decoder(2 * value_dim, channels["res3"], channels["res2"], decoder_dim,
                               num_maps)
        if freeze_bn:
            freeze_batch_norm(self)

    def memorize(self, image: Tensor, maps: Tensor) -> tuple[Tensor, Tensor]:
        """Key (B, Ck, H/16, W/16) and value (B, Cv, H/16, W/16) of a memory frame.

        ``maps`` (B, num_maps, h, w) may have any resolution (the data gives stride 4): they
        are resized bilinearly to the image before the widened first convolution.
        """
        if maps.shape[1] != self.num_maps:
            raise ValueError(f"expected {self.num_maps} map channels, got {maps.shape[1]}")
        if maps.shape[-2:] != image.shape[-2:]:
            maps = F.interpolate(maps, size=image.shape[-2:], mode="bilinear", align_corners=False)
        r4, _, _ = self.memory_encoder(torch.cat([image, maps.to(image.dtype)], dim=1))
        return self.memory_kv(r4)

    @staticmethod
    def read(mem_keys: Tensor, mem_values: Tensor, q_key: Tensor, q_value: Tensor) -> Tensor:
        """Space-time memory read: (B, Ck|Cv, T, h, w) memory, (B, Ck|Cv, h, w) query ->
        (B, 2 Cv, h, w), the values read by :func:`read_weights` then the query value."""
        weights = read_weights(mem_keys, q_key)
        read = (mem_values.flatten(2) @ weights).view_as(q_value)
        return torch.cat([read, q_value], dim=1)

    def segment(self, image: Tensor, mem_keys: Tensor, mem_values: Tensor) -> Tensor:
        """Logits (B, num_maps, H/4, W/4) of the query ``image`` given the memory (stacked
        keys and values of T memorized frames, on dim 2); apply a sigmoid for maps."""
        r4, r3, r2 = self.query_encoder(image)
        q_key, q_value = self.query_kv(r4)
        return self.decoder(self.read(mem_keys, mem_values, q_key, q_value), r3, r2)

    def forward(self, image: Tensor, mem_keys: Tensor, mem_values: Tensor) -> Tensor:
        return self.segment(image, mem_keys, mem_values)


def _load_checked(model: STM, values: dict[str, Tensor], sources: dict[str, str],
                  path: Path) -> None:
    """Copy ``values`` (our names) into ``model`` after checking every shape."""
    own = model.state_dict()
    for key, value in values.items():
        if value.shape != own[key].shape:
            raise InputError(f"shape {tuple(value.shape)} does not fit {key} "
                             f"{tuple(own[key].shape)}; same backbone and dimensions?",
                             file=str(path), record=sources[key], field="pretrained")
    model.load_state_dict(values, strict=False)


def _widened_conv1(model: STM, rgb: Tensor, first_map: Tensor | None, path: Path,
                   source: str) -> Tensor:
    """The memory encoder's first kernel from RGB (and first-map) kernels; other maps zero.

    Zeros keep the pretrained behaviour at the start while gradients still reach them.
    """
    kernel = model.memory_encoder.conv1.weight.detach().new_zeros(
        model.memory_encoder.conv1.weight.shape)
    for name, part, channels in ((source, rgb, slice(0, 3)),
                                 (_OFFICIAL_MASK, first_map, slice(3, 4))):
        if part is None:
            continue
        if part.shape != kernel[:, channels].shape:
            raise InputError(f"shape {tuple(part.shape)} does not fit "
                             f"{tuple(kernel[:, channels].shape)}; same backbone?",
                             file=str(path), record=name, field="pretrained")
        kernel[:, channels] = part
    return kernel


# Official STM prefixes -> ours. Encoder_M.conv1 / conv1_m are widened, not renamed.
_OFFICIAL_PREFIXES = {
    "Encoder_M.bn1.": "memory_encoder.bn1.", "Encoder_M.res2.": "memory_encoder.layer1.",
    "Encoder_M.res3.": "memory_encoder.layer2.", "Encoder_M.res4.": "memory_encoder.layer3.",
    "Encoder_Q.conv1.": "query_encoder.conv1.", "Encoder_Q.bn1.": "query_encoder.bn1.",
    "Encoder_Q.res2.": "query_encoder.layer1.", "Encoder_Q.res3.": "query_encoder.layer2.",
    "Encoder_Q.res4.": "query_encoder.layer3.",
    "KV_M_r4.Key.": "memory_kv.key.", "KV_M_r4.Value.": "memory_kv.value.",
    "KV_Q_r4.Key.": "query_kv.key.", "KV_Q_r4.Value.": "query_kv.value.",
    "Decoder.convFM.": "decoder.convFM.", "Decoder.ResMM.": "decoder.ResMM.",
    "Decoder.RF3.": "decoder.RF3.", "Decoder.RF2.": "decoder.RF2.",
}
_OFFICIAL_RGB, _OFFICIAL_MASK = "Encoder_M.conv1.weight", "Encoder_M.conv1_m.weight"


def load_official_stm(model: STM, path: str | Path) -> dict[str, list[str]]:
    """Load official STM weights (``seoungwugoh/STM``, ResNet-50) into ``model``.

    Accepts the key layout with or without DataParallel's ``module.`` prefix. Loaded: the
    encoders' trunks, the key/value projections and the decoder but ``pred2`` (two output
    channels there: background/object). Widened: the memory encoder's first convolution
    takes RGB from ``Encoder_M.conv1`` and the first map channel (the person-segmentation
    map) from ``Encoder_M.conv1_m``; the other map channels start at zero so that the
    pretrained behaviour is unchanged at the start. Skipped: ``conv1_o`` (STM's
    other-objects mask, which the all-persons map replaces), ``pred2``, the ``mean``/``std``
    buffers and anything else without a counterpart.

    Returns official key names under ``loaded``, ``widened`` and ``skipped``, and our keys
    left as they were under ``missing``. A missing or unreadable file, one with none of
    the official keys, or a shape that does not fit is an ``InputError`` naming the file.
    """
    path = Path(path)
    state = read_state_dict(path, "official STM")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = model.state_dict()
    values, sources = {}, {}
    for key, value in state.items():
        ours = next((o + key[len(p):] for p, o in _OFFICIAL_PREFIXES.items() if key.startswith(p)),
                    None)
        if ours is not None and ours in own:
            values[ours], sources[ours] = value, key
    widened = []
    if _OFFICIAL_RGB in state:
        widened = [_OFFICIAL_RGB] + ([_OFFICIAL_MASK] if _OFFICIAL_MASK in state else [])
        values["memory_encoder.conv1.weight"] = _widened_conv1(
            model, state[_OFFICIAL_RGB], state.get(_OFFICIAL_MASK), path, _OFFICIAL_RGB)
        sources["memory_encoder.conv1.weight"] = _OFFICIAL_RGB
    if not values:
        raise InputError("no key of the official STM layout (Encoder_M.*, Encoder_Q.*, KV_M_r4.*,"
                         f" KV_Q_r4.*, Decoder.*); first keys: {list(state)[:3]}",
                         file=str(path), field="pretrained")
    _load_checked(model, values, sources, path)
    used = set(sources.values()) | set(widened)
    return {
        "loaded": sorted(set(sources.values()) - set(widened)),
        "widened": widened,
        "skipped": sorted(k for k in state if k not in used),
        "missing": sorted(k for k in own if k not in values),
    }


def load_imagenet_encoders(model: STM, path: str | Path) -> list[str]:
    """Load a torchvision ImageNet ResNet state dict into both encoders of ``model``.

    The memory encoder's first convolution is widened: RGB from ``conv1``, map channels
    zero. ``layer4`` and ``fc`` have no place here. Returns our keys left as they were (the
    projections and the decoder). Errors as :func:`load_official_stm`.
    """
    path = Path(path)
    state = read_state_dict(path, "ImageNet")
    own = model.state_dict()
    values, sources = {}, {}
    for key, value in state.items():
        for encoder in ("memory_encoder", "query_encoder"):
            ours = f"{encoder}.{key}"
            if ours in own and ours != "memory_encoder.conv1.weight":
                values[ours], sources[ours] = value, key
    if "conv1.weight" in state:
        values["memory_encoder.conv1.weight"] = _widened_conv1(
            model, state["conv1.weight"], None, path, "conv1.weight")
        sources["memory_encoder.conv1.weight"] = "conv1.weight"
    if not values:
        raise InputError(f"no key matches a ResNet parameter (first keys: {list(state)[:3]})",
                         file=str(path), field="pretrained")
    _load_checked(model, values, sources, path)
    return sorted(k for k in own if k not in values)
