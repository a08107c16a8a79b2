"""The top-down networks' one interface (encode -> F, decode -> heatmaps) and padding."""
from __future__ import annotations

import pytest
import torch

from vidpose.nn.top_down import TOP_DOWN_NETS, crop_to_input, pad_to_stride, top_down_net


def test_padding_reaches_the_stride_with_zeros_and_cropping_undoes_it():
    image = torch.randn(1, 3, 70, 48)
    padded = pad_to_stride(image)
    assert padded.shape[-2:] == (96, 64) and torch.equal(padded[..., :70, :48], image)
    assert not padded[..., 70:, :].any() and not padded[..., 48:].any()
    assert pad_to_stride(padded) is padded and pad_to_stride(image, 2).shape[-2:] == (70, 48)
    assert crop_to_input(torch.zeros(1, 1, 24, 16), (70, 48), 4).shape[-2:] == (17, 12)


@pytest.mark.parametrize("family, levels", [("simple_baseline", 0), ("cpn", 4)])
def test_each_network_encodes_the_memory_map_and_decodes_stride_4_heatmaps(family, levels):
    torch.manual_seed(0)
    net = top_down_net(family, "resnet18", 5, deconv_filters=16, cpn_channels=16).eval()
    image = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        top, skips = net.encode(image)
        intermediate, heatmaps = net.decode(top, skips)
        assert torch.equal(net(image), heatmaps)
    assert top.shape == (2, net.memory_channels, 2, 1) and heatmaps.shape == (2, 5, 16, 8)
    assert len(intermediate) == levels and set(TOP_DOWN_NETS) == {"simple_baseline", "cpn"}


def test_an_unknown_network_is_refused():
    with pytest.raises(ValueError, match="unknown network 'hrnet'"):
        top_down_net("hrnet", "resnet18", 5)
