"""STM / STM-skeletons: shapes, the memory read by hand, frozen batch norm, weight importers."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vidpose.keypoints import POSETRACK18
from vidpose.nn.resnet import resnet
from vidpose.nn.stm import (
    STM,
    FrozenBatchNorm2d,
    load_imagenet_encoders,
    load_official_stm,
    num_maps_for,
    read_weights,
)

NUM_K, NUM_E = POSETRACK18.num_keypoints, len(POSETRACK18.limbs)


def _memory(model: STM, images: torch.Tensor, maps: torch.Tensor):
    """Memorize frames (B, T, 3, H, W) with maps (B, T, C, h, w): keys/values stacked on dim 2."""
    pairs = [model.memorize(images[:, t], maps[:, t]) for t in range(images.shape[1])]
    return torch.stack([k for k, _ in pairs], 2), torch.stack([v for _, v in pairs], 2)


def test_num_maps_for_the_paper_variants():
    assert num_maps_for("skeleton_map", NUM_K, NUM_E) == 1
    assert num_maps_for("skeletons", 17, 16) == 34
    assert num_maps_for("edges", 17, 16) == 17
    with pytest.raises(ValueError, match="skeletons"):
        num_maps_for("keypoints", 17, 16)


@pytest.mark.parametrize("backbone,res4", [("resnet18", 256), ("resnet50", 1024)])
@pytest.mark.parametrize("variant", ["skeleton_map", "skeletons", "edges"])
def test_shapes_per_variant_and_backbone(backbone, res4, variant):
    num_maps = num_maps_for(variant, NUM_K, NUM_E)
    model = STM(num_maps, backbone, key_dim=16, value_dim=32, decoder_dim=16).eval()
    assert model.memory_encoder.conv1.weight.shape == (64, 3 + num_maps, 7, 7)
    assert model.query_encoder.conv1.weight.shape == (64, 3, 7, 7)
    assert model.memory_kv.key.in_channels == res4 and model.query_kv.value.in_channels == res4
    # Maps at stride 4, as the data gives them; memorize resizes them to the image.
    with torch.no_grad():
        key, value = model.memorize(torch.randn(2, 3, 64, 64), torch.rand(2, num_maps, 16, 16))
        assert key.shape == (2, 16, 4, 4) and value.shape == (2, 32, 4, 4)
        mem_keys, mem_values = torch.stack([key, key], 2), torch.stack([value, value], 2)
        logits = model(torch.randn(2, 3, 64, 64), mem_keys, mem_values)
    assert logits.shape == (2, num_maps, 16, 16)


def test_sizes_not_divisible_by_16_give_stride_4_rounded_up():
    model = STM(2, "resnet18", key_dim=8, value_dim=8, decoder_dim=8).eval()
    with torch.no_grad():
        image = torch.randn(1, 3, 72, 56)
        mem_keys, mem_values = _memory(model, image[:, None], torch.rand(1, 1, 2, 18, 14))
        assert mem_keys.shape == (1, 8, 1, 5, 4)
        assert model.segment(image, mem_keys, mem_values).shape == (1, 2, 18, 14)


def test_memory_read_against_hand_computed_values():
    # T=2 frames of 2x2 positions, keys of 4 channels (scale 1/sqrt(4) = 1/2). Every memory
    # key is 0 but the one at t=1, y=0, x=1 (flat index 5): [2 ln 7, 0, 0, 0]. A query key
    # [a, 0, 0, 0] then weighs that position 7^a against 1 for each of the other seven.
    mem_keys = torch.zeros(1, 4, 2, 2, 2)
    mem_keys[0, 0, 1, 0, 1] = 2 * math.log(7)
    q_key = torch.zeros(1, 4, 2, 2)
    q_key[0, 0] = torch.tensor([[1.0, -1.0], [2.0, 0.0]])
    # Values: channel 0 is the flat memory index 0..7, channel 1 ten times it.
    index = torch.arange(8.0).view(2, 2, 2)
    mem_values = torch.stack([index, 10 * index])[None]
    q_value = torch.randn(1, 2, 2, 2)
    out = STM.read(mem_keys, mem_values, q_key, q_value)
    assert out.shape == (1, 4, 2, 2)
    # a=1: 5/2 + 23/14; a=-1: 5/50 + 23*7/50; a=2: 5*7/8 + 23/56; a=0: the mean, 28/8.
    expected = torch.tensor([[29 / 7, 83 / 25], [67 / 14, 7 / 2]])
    torch.testing.assert_close(out[0, 0], expected)
    torch.testing.assert_close(out[0, 1], 10 * expected)
    torch.testing.assert_close(out[:, 2:], q_value)


def test_read_weights_are_a_softmax_over_all_memory_positions():
    gen = torch.Generator().manual_seed(0)
    mem_keys = torch.randn(3, 8, 4, 5, 6, generator=gen)
    q_key = torch.randn(3, 8, 5, 6, generator=gen)
    weights = read_weights(mem_keys, q_key)
    assert weights.shape == (3, 4 * 5 * 6, 5 * 6)
    assert (weights > 0).all()
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3, 30))
    with pytest.raises(ValueError, match="channels"):
        read_weights(mem_keys, q_key[:, :4])


def test_frozen_batch_norm_equals_batch_norm_in_eval_mode():
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, -1.0, 3.0]))
        bn.running_mean.copy_(torch.tensor([0.5, 0.0, -2.0]))
        bn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
    x = torch.randn(2, 3, 4, 4)
    frozen = FrozenBatchNorm2d.from_batch_norm(bn).train()
    torch.testing.assert_close(frozen(x), bn.eval()(x))
    # Channel 0 by hand: (x - 0.5) / sqrt(4 + 1e-5).
    torch.testing.assert_close(frozen(x)[:, 0], (x[:, 0] - 0.5) / math.sqrt(4 + 1e-5))


def test_frozen_batch_norm_stays_frozen_after_train_and_gets_no_gradient():
    model = STM(2, "resnet18", key_dim=8, value_dim=8, decoder_dim=8)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    frozen = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(frozen) == 2 * 15  # resnet18 to layer3: stem 1, 6 blocks x 2, 2 downsamples
    assert not any(list(m.parameters()) for m in frozen)
    before = {k: v.clone() for k, v in model.state_dict().items()
              if "bn" in k or "downsample.1" in k}

    images, maps = torch.randn(2, 2, 3, 32, 32), torch.rand(2, 2, 2, 8, 8)
    model.train()
    mem_keys, mem_values = _memory(model, images, maps)
    logits = model(images[:, 0], mem_keys, mem_values)
    logits.square().mean().backward()
    after = model.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    # Train and eval modes compute the same function.
    with torch.no_grad():
        train_out = model(images[:, 0], *_memory(model, images, maps))
        model.eval()
        torch.testing.assert_close(model(images[:, 0], *_memory(model, images, maps)), train_out)


def test_trainable_batch_norm_has_the_same_state_dict_and_does_update():
    trainable = STM(1, "resnet18", key_dim=8, value_dim=8, decoder_dim=8, freeze_bn=False)
    frozen = STM(1, "resnet18", key_dim=8, value_dim=8, decoder_dim=8)
    assert trainable.state_dict().keys() == frozen.state_dict().keys()
    frozen.load_state_dict(trainable.state_dict())
    trainable.train()
    stats = trainable.query_encoder.bn1.running_mean.clone()
    trainable.query_encoder(torch.randn(2, 3, 32, 32))
    assert not torch.equal(trainable.query_encoder.bn1.running_mean, stats)


def test_every_parameter_gets_a_gradient_including_the_map_channels():
    model = STM(5, "resnet18", key_dim=8, value_dim=8, decoder_dim=8)
    images, maps = torch.randn(1, 2, 3, 32, 32), torch.rand(1, 2, 5, 8, 8)
    mem_keys, mem_values = _memory(model, images, maps)
    model(torch.randn(1, 3, 32, 32), mem_keys, mem_values).square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name  # DDP needs no unused parameter
    map_grad = model.memory_encoder.conv1.weight.grad[:, 3:]
    assert (map_grad.abs().sum(dim=(0, 2, 3)) > 0).all()


def test_memorising_more_frames_changes_the_output():
    torch.manual_seed(0)
    model = STM(3, "resnet18", key_dim=8, value_dim=8, decoder_dim=8).eval()
    images, maps = torch.randn(1, 2, 3, 32, 32), torch.rand(1, 2, 3, 8, 8)
    query = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        mem_keys, mem_values = _memory(model, images, maps)
        one = model(query, mem_keys[:, :, :1], mem_values[:, :, :1])
        two = model(query, mem_keys, mem_values)
        other_maps = model(query, *_memory(model, images, torch.rand(1, 2, 3, 8, 8)))
    assert (one - two).abs().max() > 1e-4
    assert (two - other_maps).abs().max() > 1e-4


def _inverse_official_name(ours: str) -> str:
    """The official STM name of one of our keys (those the official model has)."""
    renames = [("memory_encoder.", "Encoder_M."), ("query_encoder.", "Encoder_Q."),
               ("memory_kv.key.", "KV_M_r4.Key."), ("memory_kv.value.", "KV_M_r4.Value."),
               ("query_kv.key.", "KV_Q_r4.Key."), ("query_kv.value.", "KV_Q_r4.Value."),
               ("decoder.", "Decoder."), ("layer1.", "res2."), ("layer2.", "res3."),
               ("layer3.", "res4.")]
    for old, new in renames:
        ours = ours.replace(old, new)
    return ours


def _official_state(model: STM, seed: int) -> dict[str, torch.Tensor]:
    """A state dict in the official layout with random tensors of the official shapes."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("decoder.pred2") or key == "memory_encoder.conv1.weight":
            continue
        state[_inverse_official_name(key)] = (torch.randn(value.shape, generator=gen)
                                              if value.is_floating_point() else value.clone() + 7)
    for name, shape in [("Encoder_M.conv1.weight", (64, 3, 7, 7)),
                        ("Encoder_M.conv1_m.weight", (64, 1, 7, 7)),
                        ("Encoder_M.conv1_o.weight", (64, 1, 7, 7)),
                        ("Encoder_M.mean", (1, 3, 1, 1)), ("Encoder_M.std", (1, 3, 1, 1)),
                        ("Encoder_Q.mean", (1, 3, 1, 1)), ("Encoder_Q.std", (1, 3, 1, 1)),
                        ("Decoder.pred2.weight", (2, 256, 3, 3)), ("Decoder.pred2.bias", (2,))]:
        state[name] = torch.randn(shape, generator=gen)
    return state


def test_official_stm_weights_land_in_the_right_places(tmp_path):
    model = STM(num_maps_for("skeletons", NUM_K, NUM_E), "resnet50")
    official = _official_state(model, seed=1)
    # The official file comes from a DataParallel model: every key starts with "module.".
    path = tmp_path / "STM_weights.pth"
    torch.save({f"module.{k}": v for k, v in official.items()}, path)
    pred2_before = model.decoder.pred2.weight.detach().clone()

    report = load_official_stm(model, path)
    state = model.state_dict()
    for ours, theirs in [
        ("query_encoder.layer3.5.bn3.running_var", "Encoder_Q.res4.5.bn3.running_var"),
        ("memory_encoder.layer1.0.downsample.0.weight", "Encoder_M.res2.0.downsample.0.weight"),
        ("memory_encoder.bn1.num_batches_tracked", "Encoder_M.bn1.num_batches_tracked"),
        ("query_encoder.conv1.weight", "Encoder_Q.conv1.weight"),
        ("memory_kv.value.bias", "KV_M_r4.Value.bias"),
        ("query_kv.key.weight", "KV_Q_r4.Key.weight"),
        ("decoder.RF2.ResFS.conv2.weight", "Decoder.RF2.ResFS.conv2.weight"),
        ("decoder.convFM.weight", "Decoder.convFM.weight"),
    ]:
        assert state[ours].equal(official[theirs]), ours
    conv1 = state["memory_encoder.conv1.weight"]
    assert conv1[:, :3].equal(official["Encoder_M.conv1.weight"])
    assert conv1[:, 3:4].equal(official["Encoder_M.conv1_m.weight"])
    assert torch.count_nonzero(conv1[:, 4:]) == 0
    assert model.decoder.pred2.weight.equal(pred2_before)

    assert report["widened"] == ["Encoder_M.conv1.weight", "Encoder_M.conv1_m.weight"]
    assert report["skipped"] == sorted([
        "Encoder_M.conv1_o.weight", "Encoder_M.mean", "Encoder_M.std", "Encoder_Q.mean",
        "Encoder_Q.std", "Decoder.pred2.bias", "Decoder.pred2.weight"])
    assert report["missing"] == ["decoder.pred2.bias", "decoder.pred2.weight"]
    assert len(report["loaded"]) == len(official) - 9
    assert "Encoder_Q.res3.3.conv2.weight" in report["loaded"]


def test_official_stm_without_prefix_into_plain_stm(tmp_path):
    model = STM(1, "resnet50")
    official = {k: v for k, v in _official_state(model, seed=2).items()
                if k.startswith("Encoder_M.conv")}
    path = tmp_path / "stm.pth"
    torch.save(official, path)
    report = load_official_stm(model, path)
    conv1 = model.memory_encoder.conv1.weight
    assert conv1.shape == (64, 4, 7, 7)
    assert torch.equal(conv1, torch.cat([official["Encoder_M.conv1.weight"],
                                         official["Encoder_M.conv1_m.weight"]], dim=1))
    assert report["loaded"] == [] and report["skipped"] == ["Encoder_M.conv1_o.weight"]


def test_official_stm_bad_files(tmp_path, expect_input_error):
    model = STM(1, "resnet18", key_dim=8, value_dim=8, decoder_dim=8)
    missing = tmp_path / "none.pth"
    expect_input_error(lambda: load_official_stm(model, missing), file=missing, record=None,
                       field="pretrained")
    foreign = tmp_path / "foreign.pth"
    torch.save({"backbone.conv1.weight": torch.zeros(64, 3, 7, 7)}, foreign)
    err = expect_input_error(lambda: load_official_stm(model, foreign), file=foreign, record=None,
                             field="pretrained")
    assert "official STM" in err.reason
    # ResNet-50 weights do not fit a ResNet-18 model.
    wrong = tmp_path / "r50.pth"
    torch.save({"Encoder_Q.res2.0.conv1.weight": torch.zeros(64, 64, 1, 1)}, wrong)
    expect_input_error(lambda: load_official_stm(model, wrong), file=wrong,
                       record="Encoder_Q.res2.0.conv1.weight", field="pretrained")


def test_imagenet_weights_fill_both_encoders(tmp_path, expect_input_error):
    trunk = resnet("resnet18")
    imagenet = {**trunk.state_dict(), "fc.weight": torch.randn(1000, 512),
                "fc.bias": torch.randn(1000)}
    path = tmp_path / "resnet18.pth"
    torch.save(imagenet, path)
    model = STM(3, "resnet18", key_dim=8, value_dim=8, decoder_dim=8)
    missing = load_imagenet_encoders(model, path)
    for encoder in (model.memory_encoder, model.query_encoder):
        assert encoder.layer3[1].conv2.weight.equal(trunk.layer3[1].conv2.weight)
        assert encoder.layer2[0].downsample[1].running_var.equal(
            trunk.layer2[0].downsample[1].running_var)
    assert model.query_encoder.conv1.weight.equal(trunk.conv1.weight)
    assert model.memory_encoder.conv1.weight[:, :3].equal(trunk.conv1.weight)
    assert torch.count_nonzero(model.memory_encoder.conv1.weight[:, 3:]) == 0
    assert missing and all(k.startswith(("memory_kv.", "query_kv.", "decoder.")) for k in missing)
    wrong = STM(1, "resnet50", key_dim=8, value_dim=8, decoder_dim=8)
    expect_input_error(lambda: load_imagenet_encoders(wrong, path), file=path,
                       record="layer1.0.conv1.weight", field="pretrained")
