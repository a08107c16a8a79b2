"""STM-skeletons: map stacks per variant, cyclic memory and its loss, online streaming, validation."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from vidpose.errors import ConfigError
from vidpose.keypoints import POSETRACK18
from vidpose.losses import map_loss
from vidpose.methods.stm import STMSkeletons, _apply, _inverse_affines

SMALL = {"resnet": "resnet18", "key_dim": 8, "value_dim": 16, "decoder_dim": 8, "lr": 1e-3}
DATA = {"heatmap_stride": 4, "clip_length": 4}
K, L = POSETRACK18.num_keypoints, len(POSETRACK18.limbs)


def _model(**model) -> STMSkeletons:
    torch.manual_seed(0)
    return STMSkeletons({**SMALL, **model}, dict(DATA))


def _batch(b: int = 2, t: int = 4, h: int = 64, w: int = 48) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    keypoints = torch.zeros(b, t, 3, K, 3)
    keypoints[..., 0] = torch.rand(b, t, 3, K, generator=gen) * (w - 1)
    keypoints[..., 1] = torch.rand(b, t, 3, K, generator=gen) * (h - 1)
    keypoints[..., 2] = 2.0
    return {
        "image": torch.randn(b, t, 3, h, w, generator=gen),
        "heatmaps": torch.rand(b, t, K, h // 4, w // 4, generator=gen),
        "limb_maps": torch.rand(b, t, L, h // 4, w // 4, generator=gen),
        "person_mask": (torch.rand(b, t, 1, h // 4, w // 4, generator=gen) > 0.5).float(),
        "keypoints": keypoints,
        "frame": torch.arange(b * t).reshape(b, t),
        "image_to_input": torch.tensor([[0.5, 0.0, 1.0], [0.0, 0.5, 2.0]],
                                       dtype=torch.float64).expand(b, t, 2, 3),
    }


@pytest.mark.parametrize("variant, channels", [("skeleton_map", 1), ("edges", 1 + L),
                                               ("skeletons", 1 + K + L)])
def test_each_variant_stacks_its_maps(variant, channels):
    model = _model(variant=variant)
    batch = _batch()
    maps = model.compose_maps(batch["heatmaps"], batch["limb_maps"], batch["person_mask"])
    assert maps.shape == (2, 4, channels, 16, 12) and model.num_maps == channels
    if variant == "skeleton_map":  # the skeleton of everyone: max of keypoint and limb maps
        expected = torch.maximum(batch["heatmaps"].amax(2), batch["limb_maps"].amax(2))
        assert torch.equal(maps[:, :, 0], expected)


def _record(model: STMSkeletons) -> tuple[list, list]:
    """Wrap the network so that every memorised map stack and every prediction is kept."""
    memorised, predicted = [], []
    memorize, segment = model.net.memorize, model.net.segment

    def remember(image, maps):
        memorised.append(maps.detach().clone())
        return memorize(image, maps)

    def predict(image, keys, values):
        logits = segment(image, keys, values)
        predicted.append(logits.detach().clone())
        return logits

    model.net.memorize, model.net.segment = remember, predict
    return memorised, predicted


def test_cyclic_training_memorises_its_own_predictions():
    model = _model(cyclic=True, ground_truth_frames=2)
    memorised, predicted = _record(model)
    batch = _batch()
    # Map augmentation on: the ground-truth frames are memorised with augmented maps.
    batch["memory_heatmaps"] = batch["heatmaps"].flip(-1)
    batch["memory_limb_maps"] = batch["limb_maps"] * 0.5
    target = model.compose_maps(batch["heatmaps"], batch["limb_maps"], batch["person_mask"])
    memory = model.compose_maps(batch["memory_heatmaps"], batch["memory_limb_maps"],
                                batch["person_mask"])
    loss = model.training_step(batch, 0)
    # Frames 0, 1 from ground truth; frame 2 from the prediction of frame 2; frame 3 is last.
    assert len(memorised) == 3 and len(predicted) == 2
    assert torch.equal(memorised[0], memory[:, 0]) and torch.equal(memorised[1], memory[:, 1])
    assert torch.allclose(memorised[2], torch.sigmoid(predicted[0]))
    assert not torch.allclose(memorised[2], target[:, 2])
    # The loss: the predicted frames (2 and 3) only, each against its clean maps.
    def total(maps: torch.Tensor) -> torch.Tensor:
        return sum(map_loss("focal", logits, maps[:, t], 2.0) for t, logits in zip((2, 3), predicted))
    assert loss.item() == pytest.approx(total(target).item(), rel=1e-6)
    assert abs(loss.item() - total(memory).item()) > 1e-3


def test_without_cyclic_training_the_memory_holds_ground_truth():
    model = _model(cyclic=False)
    memorised, predicted = _record(model)
    batch = _batch()
    target = model.compose_maps(batch["heatmaps"], batch["limb_maps"], batch["person_mask"])
    model.training_step(batch, 0)
    assert len(memorised) == 3 and len(predicted) == 3  # frames 1-3 predicted
    for t in range(3):
        assert torch.equal(memorised[t], target[:, t])


def test_augmented_maps_go_to_memory_and_clean_maps_to_the_loss():
    model = _model(cyclic=False)
    memorised, _ = _record(model)
    batch = _batch()
    batch["memory_heatmaps"] = torch.zeros_like(batch["heatmaps"])
    batch["memory_limb_maps"] = torch.zeros_like(batch["limb_maps"])
    model.training_step(batch, 0)
    assert all(m[:, 1:].abs().sum() == 0 for m in memorised)  # keypoint and limb maps zeroed


def test_gradients_flow_through_the_predicted_frames_only():
    model = _model(cyclic=True)
    loss = model.training_step(_batch(), 0)
    loss.backward()
    assert model.net.memorize is not None
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_stream_writes_memory_per_policy_and_respects_capacity():
    model = _model(every=2, capacity=2).eval()
    memorised, predicted = _record(model)
    frames = [torch.randn(3, 64, 48) for _ in range(7)]
    first = torch.rand(model.num_maps, 16, 12)
    maps = list(model.stream(iter(frames), first))
    assert len(maps) == 7 and torch.equal(maps[0], first)
    # Written: frame 0 (given), then own predictions at frames 1, 3, 5.
    assert len(memorised) == 4 and len(predicted) == 6
    assert torch.allclose(memorised[1][0], maps[1])
    # Capacity 2: each read sees at most the first frame and the newest one.
    keys_seen = []
    segment = model.net.segment
    model.net.segment = lambda image, keys, values: keys_seen.append(keys.shape[2]) or segment(image, keys, values)
    list(model.stream(iter(frames), first))
    assert max(keys_seen) == 2


def test_validation_logs_pixel_and_keypoint_scores(tmp_path, quiet_trainer):
    trainer = quiet_trainer()
    trainer.validate(_model(), dataloaders=DataLoader([_batch()], batch_size=None), verbose=False)
    metrics = trainer.callback_metrics
    for key in ("val/loss", "val/pixel_f1", "val/precision", "val/recall", "val/f1", "val/recall_t1"):
        assert key in metrics, key
    assert list((tmp_path / "plots").glob("recall_over_time_epoch*.png"))


def test_bad_model_values_are_refused():
    with pytest.raises(ConfigError, match="variant"):
        _model(variant="bones")
    with pytest.raises(ConfigError, match="unknown key"):
        _model(memory_size=3)


def test_keypoints_are_scored_in_image_pixels():
    to_input = torch.tensor([[[0.5, 0.0, 1.0], [0.0, 0.5, 2.0]]], dtype=torch.float64)
    to_image = _inverse_affines(to_input)
    points = torch.tensor([[[[11.0, 22.0], [1.0, 2.0]]]], dtype=torch.float64)  # (1, 1, 2, 2)
    assert torch.allclose(_apply(points, to_image), torch.tensor([[[[20.0, 40.0], [0.0, 0.0]]]],
                                                                dtype=torch.float64))
    assert torch.allclose(_apply(_apply(points, to_image), to_input), points)


@pytest.mark.parametrize("variant", ["edges", "skeletons", "skeleton_map"])
def test_pixel_scores_leave_the_person_segmentation_out(variant, quiet_trainer):
    """Tables 1-2 score the skeleton's maps: a model that predicts every keypoint and limb
    map exactly and no segmentation at all scores 100."""
    batch = _batch()
    for key in ("heatmaps", "limb_maps", "person_mask"):  # one set of maps for every frame
        batch[key] = batch[key][:, :1].expand_as(batch[key]).contiguous()
    model = _model(variant=variant)
    target = model.compose_maps(batch["heatmaps"], batch["limb_maps"], batch["person_mask"])[:, 0]
    perfect = torch.logit(target.clamp(1e-4, 1 - 1e-4))
    if variant != "skeleton_map":
        perfect[:, 0] = -20.0  # no person segmentation predicted
    model.net.segment = lambda image, keys, values: perfect
    trainer = quiet_trainer()
    trainer.validate(model, dataloaders=DataLoader([batch], batch_size=None), verbose=False)
    metrics = trainer.callback_metrics
    assert metrics["val/pixel_precision"].item() == pytest.approx(100.0)
    assert metrics["val/pixel_recall"].item() == pytest.approx(100.0)
