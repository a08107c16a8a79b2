"""The top-down networks' one interface (encode -> F, decode -> heatmaps) and padding."""
from __future__ import annotations

import pytest
import torch

from vidpose.nn.top_down import crop_to_input, pad_to_stride, top_down_net


@pytest.mark.parametrize("family, levels", [("simple_baseline", 0), ("cpn", 4)])
def test_each_network_encodes_the_memory_map_and_decodes_stride_4_heatmaps(family, levels):
    net = top_down_net(family, "resnet18", 5, deconv_filters=16, cpn_channels=16).eval()
    image = torch.randn(2, 3, 70, 48)  # padded to 96 x 64
    with torch.no_grad():
        top, skips = net.encode(pad_to_stride(image))
        intermediate, heatmaps = net.decode(top, skips)
        assert torch.equal(net(pad_to_stride(image)), heatmaps)
    assert top.shape == (2, net.memory_channels, 3, 2) and len(intermediate) == levels
    assert crop_to_input(heatmaps, image.shape[-2:], 4).shape == (2, 5, 17, 12)
    with pytest.raises(ValueError, match="unknown network 'hrnet'"):
        top_down_net("hrnet", "resnet18", 5)
