"""DeconvHead: stride-32 features to stride-4 heatmaps, the official initialisation."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from vidpose.nn.heads import DeconvHead
from vidpose.nn.resnet import resnet


@pytest.mark.parametrize("kernel", [2, 3, 4])
def test_three_deconvolutions_upsample_by_8(kernel):
    head = DeconvHead(512, 17, num_layers=3, filters=32, kernel=kernel)
    assert head(torch.randn(2, 512, 4, 3)).shape == (2, 17, 32, 24)


def test_backbone_plus_head_is_stride_4():
    backbone, head = resnet("resnet18"), DeconvHead(512, 15, filters=16, final_kernel=3)
    heatmaps = head(backbone(torch.randn(1, 3, 128, 96)))
    assert heatmaps.shape == (1, 15, 32, 24)


def test_official_initialisation_and_names():
    head = DeconvHead(64, 17, filters=256)
    deconvs = [m for m in head.deconv_layers if isinstance(m, nn.ConvTranspose2d)]
    assert len(deconvs) == 3 and all(m.bias is None for m in deconvs)
    assert deconvs[0].weight.shape == (64, 256, 4, 4)
    assert 0.0008 < deconvs[1].weight.std().item() < 0.0012
    assert torch.count_nonzero(head.final_layer.bias) == 0
    # Official checkpoint layout: deconv_layers.{0,3,6} deconvs, {1,4,7} BN, final_layer.
    keys = set(head.state_dict())
    assert {"deconv_layers.0.weight", "deconv_layers.1.running_mean", "deconv_layers.7.weight",
            "final_layer.weight", "final_layer.bias"} <= keys


def test_bad_kernels_are_refused():
    with pytest.raises(ValueError, match="deconv kernel"):
        DeconvHead(64, 17, kernel=5)
    with pytest.raises(ValueError, match="final kernel"):
        DeconvHead(64, 17, final_kernel=2)
