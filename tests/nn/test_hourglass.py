"""The stacked hourglass: pose-ae-train's parameter names and widths, output shapes, the
input-size check and the importer of pose-ae-train checkpoints."""
from __future__ import annotations

import pytest
import torch

from vidpose.errors import InputError
from vidpose.nn.hourglass import StackedHourglass, check_input_size, load_pose_ae


def tiny(seed: int = 0, **kwargs) -> StackedHourglass:
    torch.manual_seed(seed)
    args = {"num_stacks": 2, "channels": 16, "num_joints": 3, "depth": 2, "increase": 8,
            "tag_dim": 1, **kwargs}
    return StackedHourglass(**args)


def test_parameter_names_are_pose_ae_trains():
    conv = lambda prefix: {f"{prefix}.conv.weight", f"{prefix}.conv.bias"}  # noqa: E731
    expected = set()
    for i in (0, 1, 3, 4):  # pre: conv 7x7/2, conv, max-pool (index 2), conv, conv
        expected |= conv(f"pre.{i}")
    for s in (0, 1):
        hourglass = f"features.{s}.0"
        for level in (hourglass, f"{hourglass}.low2"):
            for name in ("up1", "low1", "low3"):
                expected |= conv(f"{level}.{name}")
        expected |= conv(f"{hourglass}.low2.low2")  # the innermost level's convolution
        expected |= conv(f"features.{s}.1") | conv(f"features.{s}.2") | conv(f"outs.{s}")
    expected |= conv("merge_features.0.conv") | conv("merge_preds.0.conv")
    state = tiny().state_dict()
    assert set(state) == expected
    # Each level widens the lower branch by `increase`: 16 -> 24 -> 32.
    assert state["features.0.0.low1.conv.weight"].shape == (24, 16, 3, 3)
    assert state["features.0.0.low2.low1.conv.weight"].shape == (32, 24, 3, 3)
    assert state["features.0.0.low2.low2.conv.weight"].shape == (32, 32, 3, 3)
    assert state["features.0.0.low3.conv.weight"].shape == (16, 24, 3, 3)
    assert state["pre.0.conv.weight"].shape == (64, 3, 7, 7)
    assert state["merge_preds.0.conv.conv.weight"].shape == (16, 6, 1, 1)


def test_outputs_per_stack_at_stride_4_with_heatmaps_tags_and_extras():
    model = tiny(tag_dim=2, extra_outputs=5)
    outputs = model(torch.randn(2, 3, 32, 48))
    assert len(outputs) == 2
    assert all(out.shape == (2, 3 + 3 * 2 + 5, 8, 12) for out in outputs)
    assert model.out_channels == 14


def test_later_stacks_see_the_merged_earlier_ones():
    model = tiny()
    image = torch.randn(1, 3, 32, 32)
    before = model(image)
    with torch.no_grad():
        model.merge_preds[0].conv.conv.weight.add_(0.5)
    after = model(image)
    assert torch.equal(before[0], after[0])
    assert not torch.allclose(before[1], after[1])


def test_input_sizes_that_do_not_halve_depth_times_are_refused():
    check_input_size(64, 128, 4)
    with pytest.raises(ValueError, match=r"input 48 x 64.*depth 3.*multiples of 32"):
        check_input_size(48, 64, 3)
    with pytest.raises(ValueError, match="30 x 32"):
        tiny()(torch.randn(1, 3, 30, 32))


def _checkpoint(model: StackedHourglass, prefix: str) -> dict:
    """What pose-ae-train's train.py saves: the wrapped network's state and the optimiser."""
    state = {prefix + key: value.clone() for key, value in model.state_dict().items()}
    return {"state_dict": state, "optimizer": {"state": {}, "param_groups": [{"lr": 2e-4}]},
            "epoch": 3}


@pytest.mark.parametrize("prefix", ["model.module.", "module.", ""])
def test_pose_ae_checkpoints_load_whatever_the_wrapper_prefix(tmp_path, prefix):
    source, target = tiny(seed=1), tiny(seed=2)
    path = tmp_path / "checkpoint.pth.tar"
    torch.save(_checkpoint(source, prefix), path)
    assert load_pose_ae(target, path) == []
    image = torch.randn(1, 3, 32, 32)
    assert torch.equal(source(image)[1], target(image)[1])


def test_a_bare_state_dict_loads_too(tmp_path):
    source, target = tiny(seed=1), tiny(seed=2)
    path = tmp_path / "bare.pth"
    torch.save({"module." + k: v for k, v in source.state_dict().items()}, path)
    load_pose_ae(target, path)
    assert torch.equal(source.outs[1].conv.weight, target.outs[1].conv.weight)


def test_a_checkpoint_of_another_width_or_network_is_an_input_error(tmp_path,
                                                                    expect_input_error):
    path = tmp_path / "wide.pth.tar"
    torch.save(_checkpoint(tiny(channels=32), "model.module."), path)
    error = expect_input_error(lambda: load_pose_ae(tiny(), path), file=str(path),
                               record="pre.4.conv.weight", field="pretrained")
    assert "increase 128" in str(error)  # the hint says what the official one needs
    other = tmp_path / "resnet.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(64, 3, 7, 7)}}, other)
    with pytest.raises(InputError, match="no key matches"):
        load_pose_ae(tiny(), other)
    with pytest.raises(InputError, match="not found"):
        load_pose_ae(tiny(), tmp_path / "missing.pth.tar")


@pytest.mark.parametrize("batch_norm", [False, True])
def test_the_first_maps_are_near_zero(batch_norm):
    # The output layers start near zero (as SimpleBaseline's head): from PyTorch's default
    # start the AE overfit proof first spent about 100 steps undoing its own noise.
    net = tiny(channels=32, batch_norm=batch_norm).eval()
    with torch.no_grad():
        outputs = net(torch.rand(2, 3, 64, 64))
    for output in outputs:
        assert output.abs().max() < 0.05
    assert all(bool((out.conv.bias == 0).all()) for out in net.outs)
