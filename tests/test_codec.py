"""codec: the top-down heatmap codec's encode and decode against each other (round trip)."""
from __future__ import annotations

import pytest
import torch

from vidpose.codec import HeatmapCodec
from vidpose.data_modules.datasets import as_data_config
from vidpose.errors import ConfigError
from vidpose.methods.simple_baseline import SimpleBaseline
from vidpose.targets import render_heatmaps

# Worst error in heatmap pixels, measured at 4000 random sub-pixel positions per stride (4, 8)
# and sigma (1.5, 2, 3): quarter 0.2500 (its rule's bound), taylor 1.9e-6 (float32); 0.499
# with peaks on the map's outer rows and columns, which are not refined.
BOUND = {"quarter": 0.2501, "taylor": 1e-5}


def round_trip_error(codec: HeatmapCodec, margin: float, n: int = 1000) -> torch.Tensor:
    """|decode(encode(x)) - x| in heatmap pixels at n random positions whose heatmap
    coordinates lie ``margin`` pixels or more inside the map's outer pixel centres."""
    h, w = codec.heatmap_size
    u = torch.rand(n, 1, 2, generator=torch.Generator().manual_seed(codec.stride),
                   dtype=torch.float64)
    xy = codec.stride * (margin + u * torch.tensor([w - 1 - 2 * margin, h - 1 - 2 * margin]))
    heatmaps, weights = codec.encode(torch.cat([xy, torch.ones(n, 1, 1)], -1))
    decoded, scores = codec.decode(heatmaps)
    # A peak at most half a pixel from a pixel centre per axis: exp(-0.5 / (2 * 1.5^2)) = 0.895.
    assert weights.eq(1).all() and scores.min() > 0.89
    return (decoded - xy).abs() / codec.stride


@pytest.mark.parametrize("subpixel", ["quarter", "taylor"])
@pytest.mark.parametrize("sigma", [1.5, 2.0, 3.0])
@pytest.mark.parametrize("stride", [4, 8])
def test_decode_recovers_encoded_keypoints_within_the_sub_pixel_bound(stride, sigma, subpixel):
    codec = HeatmapCodec((256, 192), stride, sigma, subpixel)
    assert round_trip_error(codec, margin=1.0).max() <= BOUND[subpixel]
    assert round_trip_error(codec, margin=0.0).max() <= 0.5 + 1e-4  # border peaks unrefined


def test_encode_weights_labelled_annotated_joints_inside_the_crop():
    codec = HeatmapCodec((32, 24), 4, 1.5)
    keypoints = torch.tensor([[10.0, 6.0, 1.0], [10.0, 6.0, 0.0], [-1.0, 6.0, 1.0],
                              [23.0, 31.0, 2.0], [23.5, 8.0, 1.0], [4.0, 4.0, 1.0]])
    heatmaps, weights = codec.encode(keypoints, torch.tensor([1, 1, 1, 1, 1, 0]).bool())
    assert weights.tolist() == [1, 0, 0, 1, 0, 0]
    on_map = torch.cat([keypoints[:, :2] / 4, weights[:, None]], -1)
    assert torch.equal(heatmaps, render_heatmaps(on_map[None], (8, 6), 1.5))


def test_the_method_decodes_with_the_codec_of_its_data_section():
    data = {"input_size": [64, 48], "heatmap_stride": 4, "sigma": 1.5, "subpixel": "taylor"}
    model = SimpleBaseline({"resnet": "resnet18", "deconv_filters": 16}, data)
    assert model.codec == HeatmapCodec.from_data(as_data_config(data))
    assert model.codec == HeatmapCodec((64, 48), 4, 1.5, "taylor")


def test_bad_or_moved_subpixel_keys_are_one_line_config_errors():
    with pytest.raises(ConfigError, match=r"data.subpixel: 'dark' is not one of"):
        as_data_config({"subpixel": "dark"})
    with pytest.raises(ConfigError, match=r"^model.refine is now data.subpixel$"):
        SimpleBaseline({"resnet": "resnet18", "refine": "taylor"}, {})
