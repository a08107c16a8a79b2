"""CPN: ResNet stages, encode/decode shapes and gradients, a learning test on the OHKM loss."""
from __future__ import annotations

import pytest
import torch

from vidpose.losses import cpn_loss
from vidpose.nn.cpn import CPN
from vidpose.nn.resnet import resnet
from vidpose.targets import render_heatmaps

K = 5


@pytest.fixture(scope="module")
def cpn() -> CPN:
    torch.manual_seed(0)
    return CPN("resnet18", K)


@pytest.mark.parametrize("name, channels", [("resnet18", [64, 128, 256, 512]),
                                            ("resnet50", [256, 512, 1024, 2048])])
def test_stages_are_strides_4_to_32(name, channels):
    backbone = resnet(name).eval()
    stages = backbone.stages(torch.randn(1, 3, 64, 32))
    assert [tuple(s.shape) for s in stages] == [(1, c, 64 // st, 32 // st)
                                                for c, st in zip(channels, (4, 8, 16, 32))]


def test_last_stage_is_the_resnet_forward():
    torch.manual_seed(1)
    backbone = resnet("resnet18").eval()
    image = torch.randn(2, 3, 128, 96)
    with torch.no_grad():
        assert torch.equal(backbone.stages(image)[-1], backbone(image))


def test_encode_decode_forward_shapes(cpn):
    image = torch.randn(2, 3, 128, 96)
    top, skips = cpn.encode(image)
    assert cpn.memory_channels == 256 and top.shape == (2, 256, 4, 3)
    assert [tuple(s.shape) for s in skips] == [(2, 64, 32, 24), (2, 128, 16, 12), (2, 256, 8, 6)]
    global_heatmaps, refined = cpn.decode(top, skips)
    assert len(global_heatmaps) == 4
    assert all(h.shape == (2, K, 32, 24) for h in global_heatmaps)
    assert refined.shape == (2, K, 32, 24)
    # The tiny heatmap initialisation: an untrained model predicts near-zero maps.
    assert refined.abs().mean() < 0.05 and all(h.abs().mean() < 0.05 for h in global_heatmaps)
    cpn.eval()
    with torch.no_grad():
        assert torch.equal(cpn(image), cpn.decode(*cpn.encode(image))[1])
    cpn.train()


def test_memory_map_of_a_384x288_crop_is_12x9():
    model = CPN("resnet18", 17, channels=32).eval()
    with torch.no_grad():
        top, _ = model.encode(torch.randn(1, 3, 384, 288))
    assert top.shape == (1, 32, 12, 9)


def test_backbone_keeps_torchvision_names(cpn):
    names = set(cpn.state_dict())
    assert {"backbone.conv1.weight", "backbone.layer1.0.conv1.weight",
            "backbone.layer4.0.downsample.0.weight"} <= names


def test_decode_gradient_reaches_top_and_every_skip(cpn):
    top, skips = cpn.encode(torch.randn(2, 3, 64, 64))
    top = top.detach().requires_grad_()
    skips = [s.detach().requires_grad_() for s in skips]
    global_heatmaps, refined = cpn.decode(top, skips)
    (refined.sum() + sum(h.sum() for h in global_heatmaps)).backward()
    for tensor in [top, *skips]:
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="multiples of 32"):
        CPN("resnet18", K, channels=16).encode(torch.randn(1, 3, 64, 48))
    with pytest.raises(ValueError, match="refine_blocks"):
        CPN("resnet18", K, refine_blocks=(2, 1, 0))


def test_a_few_dozen_adam_steps_fit_two_crops():
    torch.manual_seed(0)
    model = CPN("resnet18", K, channels=32)
    images = torch.randn(2, 3, 128, 96)
    keypoints = torch.rand(2, 1, K, 3) * torch.tensor([23.0, 31.0, 0.0]) + torch.tensor([0, 0, 1.0])
    target = render_heatmaps(keypoints, (32, 24), sigma=2.0)
    weight = torch.ones(2, K)
    # Predicting zeros everywhere (where the tiny initial heatmaps start): a model that only
    # learnt to output background would stay near this loss.
    zeros = torch.zeros_like(target)
    baseline = cpn_loss([zeros] * 4, zeros, target, weight, hard_keypoints=4).item()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = cpn_loss(*model.decode(*model.encode(images)), target, weight, hard_keypoints=4)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 4
    assert losses[-1] < baseline / 4
