"""GoogLeNetBN: torchvision's key names and sizes, cuts 1-17 and 3-17, taps, width, ImageNet
loading."""
from __future__ import annotations

import pytest
import torch

from vidpose.nn.inception_bn import GoogLeNetBN, load_imagenet

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

# Keys as torchvision's googlenet state dict spells them (torchvision/models/googlenet.py:
# BasicConv2d = conv + bn, Inception = branch1..branch4, branch4 = max-pool then conv).
TORCHVISION_SAMPLE = [
    "conv1.conv.weight", *(f"conv1.bn.{b}" for b in BN), "conv2.conv.weight",
    "conv3.bn.running_var", "inception3a.branch1.conv.weight",
    "inception3a.branch2.0.conv.weight", "inception3a.branch2.1.bn.running_mean",
    "inception3b.branch3.1.conv.weight", "inception4c.branch4.1.bn.weight",
    "inception4e.branch4.1.conv.weight", "inception4e.branch2.1.bn.num_batches_tracked",
]
# torchvision's ImageNet GoogLeNet (aux heads dropped) has 6,624,904 parameters.
TORCHVISION_PARAMS = 6_624_904


def _basic(cin: int, cout: int, k: int) -> int:
    """Parameters of a BasicConv2d: a bias-free k x k convolution, BatchNorm's scale and shift."""
    return cin * cout * k * k + 2 * cout


def _inception(cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pool: int) -> int:
    """Parameters of an inception block (its "5x5" branch is 3x3, as torchvision's)."""
    return (_basic(cin, c1, 1) + _basic(cin, c3r, 1) + _basic(c3r, c3, 3) + _basic(cin, c5r, 1)
            + _basic(c5r, c5, 3) + _basic(cin, pool, 1))


def test_layers_1_17_are_torchvision_googlenet_up_to_inception4e():
    model = GoogLeNetBN(1, 17)
    state = model.state_dict()
    assert set(TORCHVISION_SAMPLE) <= set(state)
    assert not any(k.startswith(("inception5", "fc.", "aux", "maxpool4")) for k in state)
    # 3 convolutions + 7 inception blocks of 6 BasicConv2d, 6 entries each (conv + 5 BN).
    assert len(state) == (3 + 7 * 6) * 6
    # The whole network less what comes after inception 4e: 5a, 5b and the classifier.
    later = (_inception(832, 256, 160, 320, 32, 128, 128)
             + _inception(832, 384, 192, 384, 48, 128, 128) + 1024 * 1000 + 1000)
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMS - later
    assert tuple(state["inception4e.branch4.1.conv.weight"].shape) == (128, 528, 1, 1)
    assert tuple(state["inception3a.branch3.1.conv.weight"].shape) == (32, 16, 3, 3)


@pytest.mark.parametrize("size", [(128, 96), (64, 48), (96, 80)])
def test_cut_1_17_gives_stride_16_and_832_channels(size):
    model = GoogLeNetBN(1, 17).eval()
    assert (model.stride, model.out_channels) == (16, 832)
    with torch.no_grad():
        features, taps = model(torch.randn(1, 3, *size), taps=("conv2", "inception3b"))
    assert features.shape == (1, 832, size[0] // 16, size[1] // 16)
    assert taps["conv2"].shape == (1, 64, size[0] // 4, size[1] // 4)
    assert taps["inception3b"].shape == (1, 480, size[0] // 8, size[1] // 8)


def test_cut_3_17_takes_stride_4_maps_with_a_widened_conv3():
    model = GoogLeNetBN(3, 17, in_channels=64 + 51).eval()
    assert (model.stride, model.out_channels) == (16, 832)
    assert model.order[0] == "conv3" and not hasattr(model, "conv1") and not hasattr(model, "conv2")
    assert tuple(model.conv3.conv.weight.shape) == (192, 115, 3, 3)
    with torch.no_grad():
        assert model(torch.randn(2, 115, 32, 24)).shape == (2, 832, 8, 6)


@pytest.mark.parametrize("last, stride, channels", [(3, 4, 192), (7, 8, 480), (9, 16, 512)])
def test_earlier_ends(last, stride, channels):
    model = GoogLeNetBN(1, last).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert (model.stride, model.out_channels) == (stride, channels)
    assert out.shape == (1, channels, 64 // stride, 64 // stride)


def test_bad_cuts_and_taps_are_refused():
    with pytest.raises(ValueError, match="first layer"):
        GoogLeNetBN(2, 17)
    with pytest.raises(ValueError, match="last layer"):
        GoogLeNetBN(1, 16)
    with pytest.raises(ValueError, match="width"):
        GoogLeNetBN(1, 17, width=0)
    with pytest.raises(ValueError, match="conv2"):
        GoogLeNetBN(3, 17, in_channels=8)(torch.randn(1, 8, 16, 16), taps=("conv2",))


def test_width_scales_every_convolution():
    half = GoogLeNetBN(1, 17, width=0.5)
    assert half.out_channels == 416 and half.conv2.conv.out_channels == 32
    assert tuple(half.inception4e.branch2[1].conv.weight.shape) == (160, 80, 3, 3)
    # Narrow layers keep at least 8 channels.
    tiny = GoogLeNetBN(1, 17, width=0.1)
    assert tiny.inception3a.branch3[0].conv.out_channels == 8
    full = sum(p.numel() for p in GoogLeNetBN(1, 17).parameters())
    assert sum(p.numel() for p in half.parameters()) < 0.3 * full


def _torchvision_file(path, first: int = 1):
    """A width-1 GoogLeNet saved as torchvision does: layers 1-22, aux heads and classifier."""
    full = GoogLeNetBN(1, 17)
    with torch.no_grad():
        for parameter in full.parameters():
            parameter.normal_()
        full.conv3.bn.running_mean.uniform_()
    state = {k: v.clone() for k, v in full.state_dict().items()}
    state["inception5a.branch1.conv.weight"] = torch.randn(256, 832, 1, 1)
    state["aux1.conv.conv.weight"] = torch.randn(128, 512, 1, 1)
    state["fc.weight"] = torch.randn(1000, 1024)
    state["fc.bias"] = torch.randn(1000)
    torch.save(state, path)
    return state


def test_load_imagenet_into_layers_1_17(tmp_path):
    state = _torchvision_file(tmp_path / "googlenet.pth")
    model = GoogLeNetBN(1, 17)
    unused = load_imagenet(model, tmp_path / "googlenet.pth")
    assert unused == ["aux1.conv.conv.weight", "fc.bias", "fc.weight",
                      "inception5a.branch1.conv.weight"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_load_imagenet_into_layers_3_17_keeps_the_widened_conv3(tmp_path):
    state = _torchvision_file(tmp_path / "googlenet.pth")
    model = GoogLeNetBN(3, 17, in_channels=64 + 51)
    own_conv3 = model.conv3.conv.weight.detach().clone()
    unused = load_imagenet(model, tmp_path / "googlenet.pth")
    assert torch.equal(model.conv3.conv.weight, own_conv3)  # (192, 115) cannot take (192, 64)
    assert "conv3.conv.weight" in unused and "conv1.conv.weight" in unused
    # Everything else of conv3 and the blocks comes from the file.
    assert torch.equal(model.conv3.bn.running_mean, state["conv3.bn.running_mean"])
    assert torch.equal(model.inception4e.branch4[1].conv.weight,
                       state["inception4e.branch4.1.conv.weight"])


def test_load_imagenet_errors_name_the_file(tmp_path, expect_input_error):
    _torchvision_file(tmp_path / "googlenet.pth")
    path = tmp_path / "googlenet.pth"
    expect_input_error(lambda: load_imagenet(GoogLeNetBN(1, 17, width=0.5), path),
                       file=path, record="conv1.conv.weight", field="pretrained")
    missing = tmp_path / "absent.pth"
    expect_input_error(lambda: load_imagenet(GoogLeNetBN(1, 17), missing),
                       file=missing, record=None, field="pretrained")
    torch.save({"layer1.0.conv1.weight": torch.zeros(1)}, tmp_path / "resnet.pth")
    err = expect_input_error(lambda: load_imagenet(GoogLeNetBN(1, 17), tmp_path / "resnet.pth"),
                             file=tmp_path / "resnet.pth", record=None, field="pretrained")
    assert "GoogLeNet" in str(err)
