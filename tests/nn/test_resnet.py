"""ResNet: torchvision's key layout and sizes, stride 32, ImageNet loading and its errors."""
from __future__ import annotations

import pytest
import torch

from vidpose.errors import InputError
from vidpose.nn.resnet import load_imagenet, resnet

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

# Names as torchvision's resnet18/resnet50 state dicts spell them (torchvision/models/resnet.py).
TORCHVISION_SAMPLE = {
    "resnet18": [
        "conv1.weight", *(f"bn1.{b}" for b in BN),
        "layer1.0.conv1.weight", "layer1.0.bn1.running_var", "layer1.1.conv2.weight",
        "layer1.1.bn2.num_batches_tracked",
        "layer2.0.downsample.0.weight", *(f"layer2.0.downsample.1.{b}" for b in BN),
        "layer3.1.bn2.bias", "layer4.0.downsample.0.weight", "layer4.1.conv2.weight",
    ],
    "resnet50": [
        "conv1.weight", "bn1.num_batches_tracked",
        "layer1.0.conv3.weight", "layer1.0.bn3.running_mean",
        "layer1.0.downsample.0.weight", "layer1.0.downsample.1.num_batches_tracked",
        "layer2.3.conv2.weight", "layer3.5.bn3.weight", "layer4.2.conv3.weight",
        "layer4.0.downsample.1.running_var",
    ],
}
# torchvision's sizes: 122 / 320 state-dict entries and 11,689,512 / 25,557,032 parameters,
# less the classifier the trunk leaves out (fc.weight 1000 x C, fc.bias 1000).
TORCHVISION_SIZES = {"resnet18": (122, 11_689_512, 512), "resnet50": (320, 25_557_032, 2048)}


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_key_layout_and_sizes_match_torchvision(name):
    model = resnet(name)
    state = model.state_dict()
    assert set(TORCHVISION_SAMPLE[name]) <= set(state)
    entries, params, channels = TORCHVISION_SIZES[name]
    assert len(state) == entries - 2
    assert sum(p.numel() for p in model.parameters()) == params - (channels * 1000 + 1000)
    assert not any(k.startswith(("fc.", "avgpool")) for k in state)
    assert model.out_channels == channels
    # torchvision v1.5: the Bottleneck's stride sits on its 3x3 convolution.
    if name == "resnet50":
        assert model.layer2[0].conv2.stride == (2, 2) and model.layer2[0].conv1.stride == (1, 1)


def test_resnet34_101_152_depths():
    assert len(resnet("resnet34").layer3) == 6
    assert len(resnet("resnet101").layer3) == 23
    assert len(resnet("resnet152").layer2) == 8
    with pytest.raises(ValueError, match="resnet18"):
        resnet("resnet19")


def test_forward_gives_stride_32_features():
    out = resnet("resnet18").eval()(torch.randn(2, 3, 96, 64))
    assert out.shape == (2, 512, 3, 2)


def _torchvision_file(model, path, drop_bn_counters=False):
    """A state dict as torchvision saves it: the trunk plus the classifier."""
    state = {k: v.clone() for k, v in model.state_dict().items()
             if not (drop_bn_counters and k.endswith("num_batches_tracked"))}
    state["fc.weight"] = torch.randn(1000, model.out_channels)
    state["fc.bias"] = torch.randn(1000)
    torch.save(state, path)
    return state


def test_load_imagenet_round_trip(tmp_path):
    source = resnet("resnet18")
    with torch.no_grad():
        source.bn1.running_mean.uniform_()
    state = _torchvision_file(source, tmp_path / "resnet18.pth")
    target = resnet("resnet18")
    assert not torch.equal(target.conv1.weight, source.conv1.weight)
    unused = load_imagenet(target, tmp_path / "resnet18.pth")
    assert unused == ["fc.bias", "fc.weight"]
    for key, value in target.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_load_imagenet_reports_missing_bn_counters(tmp_path):
    # The 2017 torchvision files predate num_batches_tracked.
    _torchvision_file(resnet("resnet18"), tmp_path / "old.pth", drop_bn_counters=True)
    unused = load_imagenet(resnet("resnet18"), tmp_path / "old.pth")
    assert "fc.weight" in unused and "bn1.num_batches_tracked" in unused
    assert len(unused) == 2 + 20  # fc + one counter per BatchNorm of resnet18


def test_load_imagenet_missing_file_names_it(tmp_path):
    with pytest.raises(InputError) as err:
        load_imagenet(resnet("resnet18"), tmp_path / "nope.pth")
    assert "nope.pth" in str(err.value) and "not found" in str(err.value)


def test_load_imagenet_shape_mismatch_names_file_and_key(tmp_path):
    _torchvision_file(resnet("resnet18"), tmp_path / "r18.pth")
    with pytest.raises(InputError) as err:
        load_imagenet(resnet("resnet50"), tmp_path / "r18.pth")
    assert "r18.pth" in str(err.value) and "shape" in str(err.value)
    assert err.value.record is not None and "." in err.value.record


def test_load_imagenet_rejects_unrelated_and_corrupt_files(tmp_path):
    torch.save({"encoder.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(InputError, match="other.pth.*no key matches"):
        load_imagenet(resnet("resnet18"), tmp_path / "other.pth")
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="broken.pth"):
        load_imagenet(resnet("resnet18"), tmp_path / "broken.pth")
