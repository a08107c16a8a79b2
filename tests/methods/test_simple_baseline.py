"""SimpleBaseline: shapes, flip test, config errors, validation outputs."""
from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
from crop_batches import crop_sample
from omegaconf import OmegaConf

from vidpose.decode import flip_back
from vidpose.errors import ConfigError
from vidpose.formats.posetrack import write_posetrack_video
from vidpose.keypoints import POSETRACK18
from vidpose.methods.simple_baseline import SimpleBaseline, SimpleBaselineConfig
from vidpose.metrics.posetrack import evaluate_posetrack
from vidpose.nn.resnet import resnet


@pytest.mark.parametrize("size", [(64, 48), (128, 96), (96, 72)])
def test_forward_gives_stride_4_heatmaps(small_model, size):
    model = small_model().eval()
    heatmaps = model(torch.randn(2, 3, *size))
    assert heatmaps.shape == (2, 17, size[0] // 4, size[1] // 4)


def test_padding_to_32_keeps_the_geometry(small_model):
    # 64 x 48 is padded to 64 x 64: the kept heatmaps equal those of the padded input.
    model = small_model().eval()
    image = torch.randn(1, 3, 64, 48)
    padded = torch.nn.functional.pad(image, (0, 16))
    with torch.no_grad():
        assert torch.allclose(model(image), model(padded)[..., :12], atol=1e-6)


def test_flip_test_is_mirror_equivariant(small_model):
    # With the unshifted flip, the test-time maps of a mirrored crop are the mirrored maps.
    model = small_model(flip_shift=False).eval()
    with torch.no_grad():  # O(1) heatmaps instead of the initial ~1e-9
        for m in model.net.head.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                m.weight.normal_(std=0.1)
    image = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        direct = model.predict_heatmaps(image)
        mirrored = model.predict_heatmaps(image.flip(-1))
        single = model(image)
    assert direct.abs().mean() > 0.01
    assert torch.allclose(mirrored, flip_back(direct, POSETRACK18.flip_index, shift=False), atol=1e-5)
    assert not torch.allclose(direct, single, atol=1e-3)  # the flip really took part


def test_config_is_a_structured_omegaconf_section():
    cfg = OmegaConf.structured(SimpleBaselineConfig)
    assert cfg.resnet == "resnet50" and list(cfg.lr_steps) == [90, 120]
    with pytest.raises(Exception):
        OmegaConf.merge(cfg, {"flip_tset": True})


def test_bad_model_sections_are_config_errors(small_model):
    with pytest.raises(ConfigError, match="flip_tset"):
        small_model(flip_tset=True)
    with pytest.raises(ConfigError, match="heatmap_stride"):
        small_model(deconv_layers=2)
    with pytest.raises(ConfigError, match="refine"):
        small_model(refine="dark")
    with pytest.raises(ConfigError, match="model.resnet.*resnet18"):
        small_model(resnet="resnet19")


def test_optimizer_is_adam_with_epoch_steps(small_model):
    model = small_model(lr=2e-3, lr_steps=[2, 3], lr_factor=0.5)
    setup = model.configure_optimizers()
    optimizer, scheduler = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
    assert isinstance(optimizer, torch.optim.Adam)
    assert setup["lr_scheduler"]["interval"] == "epoch"
    rates = []
    for _ in range(4):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([2e-3, 2e-3, 1e-3, 5e-4])


def test_imagenet_file_is_not_needed_to_rebuild(small_model, tmp_path):
    weights = resnet("resnet18").state_dict()
    torch.save(weights, tmp_path / "r18.pth")
    model = small_model(pretrained=str(tmp_path / "r18.pth"))
    assert torch.equal(model.net.backbone.conv1.weight, weights["conv1.weight"])
    (tmp_path / "r18.pth").unlink()
    rebuilt = SimpleBaseline(**model.hparams)
    assert rebuilt.cfg.pretrained is None and model.cfg.pretrained is not None


class Oracle(SimpleBaseline):
    """Predicts the target heatmaps, except that on frame 0 the left wrist is moved 5
    heatmap pixels right (so that persons differ and counting one twice would show)."""

    def _evaluation_step(self, batch, stage):
        self._targets = batch["heatmaps"].clone()
        wrist = POSETRACK18.index["left_wrist"]
        moved = torch.roll(self._targets[:, wrist], 5, dims=-1)
        on_frame_0 = (batch["frame"] == 0)[:, None, None]
        self._targets[:, wrist] = torch.where(on_frame_0, moved, self._targets[:, wrist])
        super()._evaluation_step(batch, stage)

    def predict_heatmaps(self, image):
        return self._targets


def _read_predictions(folder):
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def test_validation_logs_posetrack_metrics_and_writes_every_frame(small_model, hand_crops,
                                                                  quiet_trainer, tmp_path):
    trainer = quiet_trainer()
    trainer.validate(small_model(cls=Oracle), datamodule=hand_crops)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    # The oracle is exact up to decoding except the 2 moved left wrists of frame 0, and the
    # detection-box pose is a false positive: every joint type but the left wrist has AP
    # 100 minus what the one false positive costs.
    assert metrics["val/AP/left_wrist"] < metrics["val/AP/right_wrist"]
    assert 50.0 < metrics["val/mAP"] < 100.0 and "val/loss" in metrics
    assert "val/MOTA" in metrics and metrics["val/id_switches"] == 0.0

    # The logged numbers are those of `vidpose eval posetrack` on the written files (the
    # padded variant repeats a crop: counted twice, the numbers would differ).
    gt_dir = tmp_path / "gt"
    for video, frames in hand_crops.val_data.videos().items():
        write_posetrack_video(gt_dir / f"{video}.json", frames, video=video)
    files_result = evaluate_posetrack(gt_dir, tmp_path / "predictions" / "val")
    assert metrics["val/mAP"] == pytest.approx(files_result.map)
    assert metrics["val/MOTA"] == pytest.approx(files_result.mota[-1])

    files = _read_predictions(tmp_path / "predictions" / "val")
    assert sorted(files) == ["v1", "v2"]
    data = hand_crops.val_data
    for video, content in files.items():
        frames = [f for f in data.frames if f.video == video]
        assert [im["id"] for im in content["images"]] == [f.image_id for f in frames]
    # v1: two persons on each of its two labelled frames (the unlabelled one has none).
    v1 = files["v1"]["annotations"]
    assert sorted(a["image_id"] for a in v1) == [100, 100, 102, 102]
    # v2: 6 GT-box poses and one of the two near-identical detection-box poses (OKS-NMS).
    v2 = files["v2"]["annotations"]
    # The detection-box pose tracks nothing: a track id of its own, after the GT ones.
    assert len(v2) == 7 and sorted(a["track_id"] for a in v2) == [1, 1, 1, 2, 2, 2, 3]
    detection = next(a for a in v2 if a["track_id"] == 3)
    assert 0.0 < detection["score"] <= 0.8

    wrist = POSETRACK18.index["left_wrist"]
    for annotation in v1 + v2:
        if annotation is detection:
            continue
        frame = next(f for f in data.frames if f.image_id == annotation["image_id"])
        gt = frame.poses[annotation["track_id"] - 1].keypoints
        predicted = np.array(annotation["keypoints"]).reshape(17, 3)
        scores = np.array(annotation["scores"])
        counted = (gt[:, 2] > 0) & ((np.arange(17) != wrist) | (frame.image_id != 100))
        # Quarter-pixel decoding at stride 4 on a crop at half resolution: 2 px per axis.
        assert np.abs(predicted[counted, :2] - gt[counted, :2]).max() <= 2.0 + 1e-6
        assert (scores[counted] > 0.5).all()


def test_detection_box_poses_of_one_frame_get_distinct_track_ids(small_model, plain_crops,
                                                                 quiet_trainer, tmp_path):
    """Two persons found from detection boxes in one frame (no tracker at this stage) used to
    both carry track id -1, which the PoseTrack metric refuses (one person per track id):
    every validation on detection boxes (correspondence_pose's default) stopped there."""
    plain_crops.samples.append(crop_sample(plain_crops.val_data, 3, 1, detection=True))
    trainer = quiet_trainer()
    trainer.validate(small_model(cls=Oracle), datamodule=plain_crops)
    assert "val/mAP" in trainer.callback_metrics
    v2 = _read_predictions(tmp_path / "predictions" / "val")["v2"]["annotations"]
    assert sorted(a["track_id"] for a in v2) == [1, 1, 1, 2, 2, 2, 3, 4]


def test_joint_threshold_leaves_unsure_joints_out(small_model, plain_crops, quiet_trainer, tmp_path):
    # The oracle's joints score about 1: a threshold above that drops every joint, in the
    # files (0, 0, 0) and in the metrics (nothing predicted: AP 0).
    trainer = quiet_trainer()
    trainer.validate(small_model(cls=Oracle, joint_threshold=1.5), datamodule=plain_crops)
    assert float(trainer.callback_metrics["val/mAP"]) == 0.0
    for content in _read_predictions(tmp_path / "predictions" / "val").values():
        for annotation in content["annotations"]:
            assert not any(annotation["keypoints"]) and not any(annotation["scores"])


def test_test_stage_writes_its_own_folder(small_model, plain_crops, quiet_trainer, tmp_path):
    trainer = quiet_trainer()
    trainer.test(small_model(cls=Oracle), datamodule=plain_crops)
    assert "test/mAP" in trainer.callback_metrics
    assert sorted(_read_predictions(tmp_path / "predictions" / "test")) == ["v1", "v2"]


def test_checkpoint_rebuilds_the_model(small_model, plain_crops, quiet_trainer, tmp_path):
    model = small_model(flip_test=False, lr_steps=[5])
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=2)
    trainer.fit(model, datamodule=plain_crops)
    trainer.save_checkpoint(tmp_path / "sb.ckpt")
    loaded = SimpleBaseline.load_from_checkpoint(tmp_path / "sb.ckpt", map_location="cpu")
    assert loaded.cfg == model.cfg and asdict(loaded.cfg)["lr_steps"] == [5]
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


@pytest.mark.slow
def test_two_process_validation_equals_one(small_model, plain_crops, quiet_trainer, tmp_path):
    single_root, ddp_root = tmp_path / "one", tmp_path / "two"
    results = {}
    for root, devices, strategy in ((single_root, 1, "auto"), (ddp_root, 2, "ddp_spawn")):
        trainer = quiet_trainer(devices=devices, strategy=strategy, default_root_dir=str(root))
        # 13 crops: DistributedSampler gives the second process a repeated one.
        trainer.validate(small_model(cls=Oracle), datamodule=type(plain_crops)(repeat_first=True))
        results[devices] = float(trainer.callback_metrics["val/mAP"])
    assert results[2] == results[1]
    assert _read_predictions(ddp_root / "predictions" / "val") == \
        _read_predictions(single_root / "predictions" / "val")
