"""codec: the top-down heatmap codec's encode and decode against each other (round trip)."""
from __future__ import annotations

import pytest
import torch

from vidpose.codec import HeatmapCodec
from vidpose.data_modules.datasets import as_data_config
from vidpose.errors import ConfigError
from vidpose.methods.simple_baseline import SimpleBaseline
from vidpose.targets import render_heatmaps

INPUT_SIZE = (256, 192)
# Worst round-trip error in heatmap pixels, measured over 4000 random sub-pixel positions
# per stride (4, 8) and sigma (1.5, 2, 3): quarter 0.2500 (its rule's bound), taylor
# 1.9e-6 (float32); with peaks on the map's border row or column, which are not refined,
# 0.497. The bounds sit a little above.
BOUND = {"quarter": 0.2501, "taylor": 1e-5}
BORDER_BOUND = 0.5 + 1e-4


def random_keypoints(codec: HeatmapCodec, n: int, margin: float, seed: int) -> torch.Tensor:
    """(n, 1, 3) visible keypoints at random sub-pixel crop positions whose heatmap
    coordinates lie at least ``margin`` heatmap pixels inside the map's outer pixel centres."""
    h, w = codec.heatmap_size
    u = torch.rand(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    span = torch.tensor([w - 1 - 2 * margin, h - 1 - 2 * margin], dtype=torch.float64)
    xy = codec.stride * (margin + u * span)
    return torch.cat([xy, torch.ones(n, 1, dtype=torch.float64)], -1)[:, None]


@pytest.mark.parametrize("subpixel", ["quarter", "taylor"])
@pytest.mark.parametrize("sigma", [1.5, 2.0, 3.0])
@pytest.mark.parametrize("stride", [4, 8])
def test_decode_recovers_encoded_keypoints_within_the_sub_pixel_bound(stride, sigma, subpixel):
    codec = HeatmapCodec(INPUT_SIZE, stride, sigma, subpixel)
    keypoints = random_keypoints(codec, 1000, margin=1.0, seed=stride)
    heatmaps, weights = codec.encode(keypoints)
    xy, scores = codec.decode(heatmaps)
    error = (xy.double() - keypoints[..., :2]).abs() / stride  # heatmap pixels
    assert error.max() <= BOUND[subpixel]
    assert weights.eq(1).all() and scores.min() > 0.9


@pytest.mark.parametrize("subpixel", ["quarter", "taylor"])
def test_peaks_on_the_border_decode_within_half_a_heatmap_pixel(subpixel):
    codec = HeatmapCodec(INPUT_SIZE, 8, 2.0, subpixel)
    keypoints = random_keypoints(codec, 1000, margin=0.0, seed=1)
    xy, _ = codec.decode(codec.encode(keypoints)[0])
    assert ((xy.double() - keypoints[..., :2]).abs() / 8).max() <= BORDER_BOUND


def test_encode_weights_labelled_annotated_joints_inside_the_crop():
    codec = HeatmapCodec((32, 24), 4, 1.5)
    keypoints = torch.tensor([[10.0, 6.0, 1.0], [10.0, 6.0, 0.0], [-1.0, 6.0, 1.0],
                              [23.0, 31.0, 2.0], [23.5, 8.0, 1.0], [4.0, 4.0, 1.0]])
    annotated = torch.tensor([True, True, True, True, True, False])
    heatmaps, weights = codec.encode(keypoints, annotated)
    assert weights.tolist() == [1, 0, 0, 1, 0, 0]
    expected = render_heatmaps(torch.cat([keypoints[:, :2] / 4, weights[:, None]], -1)[None],
                               (8, 6), 1.5)
    assert heatmaps.shape == (6, 8, 6) and torch.equal(heatmaps, expected)
    assert heatmaps[weights == 0].eq(0).all()


def test_data_module_and_method_share_one_codec_from_the_data_section():
    data = {"input_size": [64, 48], "heatmap_stride": 4, "sigma": 1.5, "subpixel": "taylor"}
    model = SimpleBaseline({"backbone": "resnet18", "deconv_filters": 16}, data)
    assert model.codec == HeatmapCodec.from_data(as_data_config(data))
    assert model.codec == HeatmapCodec((64, 48), 4, 1.5, "taylor")


def test_bad_or_moved_subpixel_keys_are_one_line_config_errors():
    with pytest.raises(ConfigError, match=r"data.subpixel: 'dark' is not one of"):
        as_data_config({"subpixel": "dark"})
    with pytest.raises(ConfigError, match=r"^model.refine is now data.subpixel$"):
        SimpleBaseline({"backbone": "resnet18", "refine": "taylor"}, {})
