"""Associative Embedding: config checks, features and grouping in input pixels, the
pose-ae-train importer through the config, and learning on hand-made images (the losses by
hand: tests/test_losses.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vidpose.data_modules.images import ImageDataModule
from vidpose.data_modules.transforms import normalize
from vidpose.errors import ConfigError
from vidpose.losses import ae_loss
from vidpose.methods.assoc_embedding import AssociativeEmbedding
from vidpose.nn.hourglass import StackedHourglass
from vidpose.targets import render_heatmaps

TINY = {"num_stacks": 1, "channels": 16, "depth": 2, "increase": 0}
DATA = {"input_size": [64, 64], "heatmap_stride": 4, "sigma": 2.0}
J = 17


def tiny_ae(**model) -> AssociativeEmbedding:
    torch.manual_seed(0)
    return AssociativeEmbedding({**TINY, **model}, dict(DATA))


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="unknown key"):
        AssociativeEmbedding({**TINY, "stacks": 2}, dict(DATA))
    with pytest.raises(ConfigError, match=r"data.input_size / model.depth.*60 x 64"):
        AssociativeEmbedding(TINY, {**DATA, "input_size": [60, 64]})
    with pytest.raises(ConfigError, match="data.heatmap_stride"):
        AssociativeEmbedding(TINY, {**DATA, "heatmap_stride": 2})
    with pytest.raises(ConfigError, match="model.nms_kernel"):
        AssociativeEmbedding({**TINY, "nms_kernel": 4}, dict(DATA))


def test_features_are_all_stacks_maps_and_the_network_sees_pixels_in_0_1():
    model = tiny_ae(num_stacks=2, extra_outputs=3)
    pixels = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    image = normalize(pixels)
    features = model.features(image)
    assert features.shape == (2, model.channels_of("outputs"), 16, 16)
    assert model.channels_of("outputs") == 2 * (J + J + 3)
    raw = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    expected = torch.cat(model.network(raw), 1)
    torch.testing.assert_close(features, expected, atol=1e-4, rtol=1e-4)


def test_intermediate_features_are_each_stacks_extra_maps():
    """The paper's decoder input: pose-ae-train's extra outputs of every stack (its 34 maps
    after the 17 heatmaps and 17 tags), stack by stack (issue 16 point 13)."""
    model = tiny_ae(num_stacks=2, extra_outputs=3)
    image = torch.randn(2, 3, 64, 64)
    outputs = model(image)
    features = model.features(image, "intermediate")
    assert model.channels_of("intermediate") == 2 * 3
    assert features.shape == (2, 6, 16, 16)
    torch.testing.assert_close(features, torch.cat([o[:, 2 * J:] for o in outputs], 1))
    assert torch.equal(model.select_features(outputs, "outputs"), torch.cat(outputs, 1))
    with pytest.raises(ConfigError, match="model.input_features.*extra_outputs=34"):
        tiny_ae().features(image, "intermediate")
    with pytest.raises(ConfigError, match="model.input_features"):
        model.features(image, "hidden")


def test_grouping_gives_poses_in_input_pixels():
    model = tiny_ae()
    output = torch.zeros(1, 2 * J, 16, 16)
    output[0, 0, 3, 5] = 0.9  # nose at cell (5, 3), tag 0
    output[0, 5, 8, 4] = 0.8  # left shoulder at cell (4, 8), tag 0
    output[0, 0, 3, 12] = 0.7  # a second nose at cell (12, 3), tag 4
    output[0, J + 0, 3, 12] = 4.0
    poses = sorted(model.group([output])[0], key=lambda p: p.keypoints[0, 0])
    assert len(poses) == 2
    assert poses[0].keypoints[0].tolist() == pytest.approx([20.0, 12.0, 0.9])
    assert poses[0].keypoints[5].tolist() == pytest.approx([16.0, 32.0, 0.8])
    assert poses[1].keypoints[0].tolist() == pytest.approx([48.0, 12.0, 0.7])
    # Joints a person lacks: score 0, at the mean of its found joints (pose-ae-train's
    # results), not at the map's corner where pycocotools would score them.
    assert poses[0].keypoints[1].tolist() == pytest.approx([18.0, 22.0, 0.0])
    assert poses[1].keypoints[16].tolist() == pytest.approx([48.0, 12.0, 0.0])
    assert poses[0].score == pytest.approx((0.9 + 0.8) / J)
    predicted = model.predict_poses({"image": torch.zeros(3, 3, 64, 64)})
    assert list(predicted) == ["ae"] and len(predicted["ae"]) == 3


def test_a_pose_ae_train_checkpoint_loads_and_leaves_the_hparams(tmp_path):
    torch.manual_seed(3)
    official = StackedHourglass(1, 16, J, 2, 0, 1)
    path = tmp_path / "checkpoint.pth.tar"
    torch.save({"state_dict": {"model.module." + k: v for k, v in official.state_dict().items()},
                "epoch": 10}, path)
    model = tiny_ae(pretrained=str(path))
    assert torch.equal(model.network.outs[0].conv.weight, official.outs[0].conv.weight)
    assert model.hparams["model"]["pretrained"] is None
    assert model.cfg.pretrained == str(path)


def synthetic_batch(seed: int) -> dict[str, torch.Tensor]:
    """Four 64 x 64 images, two persons each with three joints (nose, left wrist, right
    ankle): a disc per joint whose red says the joint and whose green says the person."""
    rng = np.random.default_rng(seed)
    joints = [0, 9, 16]
    keypoints = torch.zeros(4, 2, J, 3)
    images = np.zeros((4, 64, 64, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:64, :64]
    for b in range(4):
        cells = rng.choice(14 * 14, size=6, replace=False)
        for p in range(2):
            for j, joint in enumerate(joints):
                cell = cells[p * 3 + j]
                x, y = 4.0 * (1 + cell % 14), 4.0 * (1 + cell // 14)
                keypoints[b, p, joint] = torch.tensor([x, y, 2.0])
                disc = (xx - x) ** 2 + (yy - y) ** 2 <= 4.0
                images[b, disc] = [80 + 80 * j, 60 + 150 * p, 255]
    on_map = keypoints.clone()
    on_map[..., :2] /= 4
    return {"image": normalize(images), "keypoints": keypoints,
            "num_persons": torch.full((4,), 2), "heatmaps": render_heatmaps(on_map, (16, 16), 2.0)}


def test_the_losses_fall_on_hand_made_images():
    # Tag weights 1 (not 1e-3) so that the tags separate within a few seconds of training.
    model = tiny_ae(channels=32, pull_weight=1.0, push_weight=1.0, lr=1e-3)
    batch = synthetic_batch(0)
    optimizer = model.configure_optimizers()["optimizer"]
    first = None
    for _ in range(150):
        losses = ae_loss(model(batch["image"]), batch, model.cfg, 4)
        first = first or losses["loss"].item()
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
    last = {k: v.item() for k, v in ae_loss(model(batch["image"]), batch, model.cfg, 4).items()}
    # Equal tags start the push loss at 1; separated persons' tags take it near 0.
    assert last["loss"] < first / 10
    assert last["push_loss"] < 0.01 and last["pull_loss"] < 0.01
    # Peaks are learnt: the heatmap loss is well below that of predicting zeros everywhere.
    assert last["heatmap_loss"] < 0.7 * (batch["heatmaps"] ** 2).mean().item()


def test_trains_and_scores_coco_ap_on_the_images_data_module(tiny_synth, quiet_trainer,
                                                             tmp_path):
    datamodule = ImageDataModule({"dataset": "coco", "root": str(tiny_synth / "coco"),
                                  "input_size": [64, 64], "batch_size": 2, "num_workers": 0,
                                  "synth_preset": "tiny", "max_val_samples": 2})
    model = tiny_ae()
    trainer = quiet_trainer(max_steps=2, limit_val_batches=1, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=datamodule)
    assert np.isfinite(float(trainer.callback_metrics["train/loss"]))
    metrics = trainer.validate(model, datamodule=datamodule, verbose=False)[0]
    assert 0.0 <= metrics["val/AP"] <= 100.0
    results = json.loads((tmp_path / "predictions" / "val" / "val_ae.json").read_text())
    image_ids = {frame.image_id for frame in datamodule.val_data.frames}
    assert {record["image_id"] for record in results} <= image_ids
