"""TwoStagePose: both stages' shapes, their summed losses, Eq. 7 decoding, flip test,
the tracking-pipeline calls, validation with Eq. 7 keypoints, learning and checkpoints."""
from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
from crop_batches import DATA, INPUT_SIZE
from learning import fit_on_tiny_crops
from torch import Tensor, nn

from vidpose.data_modules.crops import CropDataModule
from vidpose.errors import ConfigError
from vidpose.formats.posetrack import write_posetrack_video
from vidpose.keypoints import POSETRACK18
from vidpose.losses import heatmap_bce_loss
from vidpose.methods import METHODS, get_datamodule_cls
from vidpose.methods.two_stage_pose import (
    TwoStagePose,
    TwoStagePoseConfig,
    decode_offsets,
    flip_back_offsets,
    offset_targets,
)
from vidpose.metrics.posetrack import evaluate_posetrack
from vidpose.nn.inception_bn import GoogLeNetBN
from vidpose.targets import render_heatmaps

SMALL = {"width": 0.25, "deconv_filters": 16}
K = POSETRACK18.num_keypoints


def small_model(**model) -> TwoStagePose:
    torch.manual_seed(0)
    return TwoStagePose({**SMALL, **model}, dict(DATA))


@pytest.mark.parametrize("size", [(64, 48), (72, 56)])
def test_both_stages_predict_heatmaps_and_offsets_at_stride_4(size):
    model = small_model().eval()
    with torch.no_grad():
        stages = model(torch.randn(2, 3, *size))
    h, w = size[0] // 4, size[1] // 4
    assert len(stages) == 2
    for logits, offsets in stages:
        assert logits.shape == (2, K, h, w) and offsets.shape == (2, K, 2, h, w)
    # Stage 2 is layers 3-17 on conv2's features plus K heatmaps and 2K offsets.
    conv2 = model.net.stage1.conv2.conv.out_channels
    assert model.net.stage2.conv3.conv.in_channels == conv2 + 3 * K
    assert model.net.stage1.order[0] == "conv1" and model.net.stage2.order[0] == "conv3"
    # The heatmaps start near the prior, not at probability 0.5.
    assert torch.sigmoid(stages[-1][0]).mean() == pytest.approx(0.01, abs=0.005)


def test_stage_2_is_fed_by_stage_1():
    model = small_model()
    logits, offsets = model(torch.randn(2, 3, 64, 48))[-1]
    (logits.sum() + offsets.sum()).backward()
    # Stage 2's output reaches stage 1's head only through the maps it is given.
    assert model.net.head1.final_layer.weight.grad.abs().sum() > 0
    assert model.net.head1.final_layer.weight.grad[:K].abs().sum() > 0  # heatmap channels
    assert model.net.head1.final_layer.weight.grad[K:].abs().sum() > 0  # offset channels


def test_registered_with_the_crop_data_module():
    spec = METHODS["two_stage_pose"]
    assert spec.model_cls is TwoStagePose and spec.config_cls is TwoStagePoseConfig
    assert get_datamodule_cls(spec, "") is CropDataModule


def test_offset_targets_point_from_each_cell_to_the_joint():
    # Joint 0 at crop pixel (10, 6): heatmap cell (2.5, 1.5). Joint 1 has weight 0.
    keypoints = torch.tensor([[[10.0, 6.0, 2.0], [4.0, 4.0, 2.0]]])
    weight = torch.tensor([[1.0, 0.0]])
    target, mask = offset_targets(keypoints, weight, (4, 5), stride=4, radius=1.0)
    assert target.shape == (1, 2, 2, 4, 5) and mask.shape == (1, 2, 4, 5)
    # Within one cell of (2.5, 1.5): the four cells around it, each sqrt(0.5) away.
    assert sorted(map(tuple, mask[0, 0].nonzero().tolist())) == [(1, 2), (1, 3), (2, 2), (2, 3)]
    assert not mask[0, 1].any()
    assert target[0, 0, :, 1, 2].tolist() == [0.5, 0.5]  # cell u=2, v=1
    assert target[0, 0, :, 2, 3].tolist() == [-0.5, -0.5]  # cell u=3, v=2
    assert target[0, 0, :, 0, 0].tolist() == [2.5, 1.5]
    _, wider = offset_targets(keypoints, weight, (4, 5), stride=4, radius=1.6)
    # Adds the eight cells sqrt(0.5^2 + 1.5^2) = 1.58 away: u in {1, 4} at v in {1, 2},
    # v in {0, 3} at u in {2, 3}.
    assert int(wider[0, 0].sum()) == 12 and not wider[0, 0, 0, 1] and wider[0, 0, 0, 2]


def test_model_loss_sums_both_stages():
    model = small_model(offset_weight=0.5, offset_radius=1.0)
    keypoints = torch.zeros(1, K, 3)
    keypoints[0, :, :2] = torch.tensor([10.0, 6.0])
    keypoints[0, :, 2] = 2.0
    weight = torch.ones(1, K)
    weight[0, 3] = 0.0
    heatmaps = render_heatmaps(torch.cat([keypoints[..., :2] / 4, weight[..., None]], -1)[:, None],
                               (16, 12), 1.5)
    batch = {"keypoints": keypoints, "target_weight": weight, "heatmaps": heatmaps}
    target, mask = offset_targets(keypoints, weight, (16, 12), 4, 1.0)
    exact = (torch.full((1, K, 16, 12), -2.0), target)
    off = (torch.zeros(1, K, 16, 12), target + 0.2)
    losses = model._loss([exact, off], batch)
    bce = heatmap_bce_loss(exact[0], heatmaps, weight) + heatmap_bce_loss(off[0], heatmaps, weight)
    assert losses["heatmap_loss"].item() == pytest.approx(bce.item())
    assert losses["offset_loss"].item() == pytest.approx(0.2)  # the exact stage adds 0
    assert losses["loss"].item() == pytest.approx(bce.item() + 0.5 * 0.2)


def test_eq7_keypoint_is_the_upsampled_argmax_plus_its_offset():
    heatmaps = torch.zeros(1, 2, 4, 5)
    heatmaps[0, 0, 1, 3] = 0.9  # joint 0: argmax at cell u=3, v=1
    heatmaps[0, 0, 2, 3] = 0.8
    heatmaps[0, 1, 2, 0] = 0.6  # joint 1: argmax at u=0, v=2
    offsets = torch.randn(1, 2, 2, 4, 5)
    offsets[0, 0, :, 1, 3] = torch.tensor([0.25, -0.5])
    offsets[0, 1, :, 2, 0] = torch.tensor([-0.125, 0.375])
    keypoints, scores = decode_offsets(heatmaps, offsets, stride=4)
    assert keypoints[0].tolist() == [[13.0, 2.0], [-0.5, 9.5]]
    assert scores[0].tolist() == pytest.approx([0.9, 0.6])


@pytest.mark.parametrize("crop_width", [48, 50])
def test_mirrored_offsets_flip_back_exactly(crop_width):
    # Exact offsets predicted on the mirrored crop (the mirrored joints, left and right
    # swapped) flip back to the exact offsets of the crop, at every cell.
    rng = np.random.default_rng(0)
    keypoints = torch.zeros(1, K, 3)
    keypoints[0, :, 0] = torch.from_numpy(rng.uniform(0, crop_width - 1, K)).float()
    keypoints[0, :, 1] = torch.from_numpy(rng.uniform(0, 63, K)).float()
    keypoints[0, :, 2] = 2.0
    mirrored = keypoints[:, POSETRACK18.flip_index].clone()
    mirrored[..., 0] = crop_width - 1 - mirrored[..., 0]
    size, weight = (16, crop_width // 4), torch.ones(1, K)
    own, _ = offset_targets(keypoints, weight, size, 4, 1.0)
    of_mirror, _ = offset_targets(mirrored, weight, size, 4, 1.0)
    back = flip_back_offsets(of_mirror, POSETRACK18.flip_index, 4, crop_width)
    assert torch.allclose(back, own, atol=1e-5)
    left_wrist = POSETRACK18.index["left_wrist"]
    assert not torch.allclose(of_mirror[:, left_wrist], own[:, left_wrist], atol=1e-2)


def exact_maps(keypoints: Tensor, size) -> tuple[Tensor, Tensor]:
    """A Gaussian heatmap at each joint of a crop of ``size`` and exact offsets at every cell."""
    h, w = size[0] // 4, size[1] // 4
    weight = torch.ones(keypoints.shape[:2])
    on_map = torch.cat([keypoints[..., :2] / 4, weight[..., None]], -1)
    offsets, _ = offset_targets(keypoints, weight, (h, w), 4, 1.0)
    return render_heatmaps(on_map[:, None], (h, w), 1.5), offsets


class OracleNet(nn.Module):
    """Exact maps of known crop keypoints for the crop and for its mirror image (heatmaps as
    logits)."""

    def __init__(self, image: Tensor, keypoints: Tensor) -> None:
        super().__init__()
        self.image = image
        mirrored = keypoints[:, POSETRACK18.flip_index].clone()
        mirrored[..., 0] = image.shape[-1] - 1 - mirrored[..., 0]
        self.maps = {}
        for mirror, points in ((False, keypoints), (True, mirrored)):
            heatmaps, offsets = exact_maps(points, image.shape[-2:])
            self.maps[mirror] = (12.0 * (heatmaps - 0.5), offsets)

    def forward(self, image: Tensor) -> list[tuple[Tensor, Tensor]]:
        mirror = not torch.equal(image, self.image)
        assert mirror == torch.equal(image, self.image.flip(-1))
        return [self.maps[mirror]] * 2


@pytest.mark.parametrize("flip_test", [False, True])
def test_locate_decodes_exact_maps_exactly_with_and_without_flip_test(flip_test):
    rng = np.random.default_rng(1)
    image = torch.randn(2, 3, *INPUT_SIZE)
    keypoints = torch.zeros(2, K, 3)
    keypoints[..., 0] = torch.from_numpy(rng.uniform(2, INPUT_SIZE[1] - 3, (2, K))).float()
    keypoints[..., 1] = torch.from_numpy(rng.uniform(2, INPUT_SIZE[0] - 3, (2, K))).float()
    keypoints[..., 2] = 2.0
    model = small_model(flip_test=flip_test)
    model.net = OracleNet(image, keypoints)
    located, scores = model.locate(image)
    assert located.shape == (2, K, 2) and scores.shape == (2, K)
    assert torch.allclose(located, keypoints[..., :2], atol=1e-4)
    assert ((scores > 0.9) & (scores <= 1.0)).all()
    # The mirror really took part in the flip test: its heatmaps, flipped back with the
    # one-pixel shift, differ from the plain ones, while Eq. 7 stays exact through the offsets.
    heatmaps, _ = model.estimate(image, [None, None], crowded=False)
    plain = torch.sigmoid(model.net(image)[-1][0])
    assert torch.equal(heatmaps, plain) != flip_test


def test_estimate_is_the_online_estimator_call():
    model = small_model(flip_test=False)
    model.train()
    crops = torch.randn(3, 3, 64, 48)
    heatmaps, features = model.estimate(crops, [None] * 3, crowded=True)
    assert not model.training and features is None
    assert heatmaps.shape == (3, K, 16, 12)
    assert torch.allclose(heatmaps, torch.sigmoid(model(crops)[-1][0]))
    assert (model.stride, model.input_size, model.policy) == (4, INPUT_SIZE, None)
    assert model.schema is POSETRACK18


def test_bad_model_sections_are_config_errors():
    with pytest.raises(ConfigError, match="offset_wieght"):
        small_model(offset_wieght=1.0)
    with pytest.raises(ConfigError, match="model.width"):
        small_model(width=0.0)
    with pytest.raises(ConfigError, match="model.offset_radius"):
        small_model(offset_radius=-1.0)
    with pytest.raises(ConfigError, match="heatmap_stride"):
        TwoStagePose(SMALL, {**DATA, "heatmap_stride": 8})


def test_imagenet_weights_load_into_both_stages_and_are_not_needed_to_rebuild(tmp_path):
    source = GoogLeNetBN(1, 17)
    with torch.no_grad():
        for parameter in source.parameters():
            parameter.normal_()
    state = source.state_dict()
    torch.save({**state, "fc.weight": torch.randn(1000, 1024)}, tmp_path / "googlenet.pth")
    model = small_model(width=1.0, pretrained=str(tmp_path / "googlenet.pth"))
    stage1, stage2 = model.net.stage1, model.net.stage2
    assert torch.equal(stage1.conv1.conv.weight, state["conv1.conv.weight"])
    assert torch.equal(stage1.inception4e.branch1.conv.weight,
                       state["inception4e.branch1.conv.weight"])
    assert torch.equal(stage2.inception3a.branch4[1].conv.weight,
                       state["inception3a.branch4.1.conv.weight"])
    assert torch.equal(stage2.conv3.bn.weight, state["conv3.bn.weight"])
    assert stage2.conv3.conv.weight.shape[1] == 64 + 3 * K  # widened: keeps its own weights
    (tmp_path / "googlenet.pth").unlink()
    rebuilt = TwoStagePose(**model.hparams)
    assert rebuilt.cfg.pretrained is None and model.cfg.pretrained is not None


class Oracle(TwoStagePose):
    """Test-time maps rendered from each batch's crop keypoints: heatmap peaks at the
    joints' cells and exact offsets, so Eq. 7 gives the joints exactly."""

    def _evaluation_step(self, batch, stage):
        self._keypoints = batch["keypoints"]
        super()._evaluation_step(batch, stage)

    def _test_time(self, output, crops):
        return exact_maps(self._keypoints, crops.shape[-2:])


def test_validation_scores_and_writes_eq7_keypoints(plain_crops, quiet_trainer, tmp_path):
    trainer = quiet_trainer()
    trainer.validate(Oracle(SMALL, dict(DATA)), datamodule=plain_crops)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert {"val/mAP", "val/MOTA", "val/loss"} <= set(metrics)
    gt_dir = tmp_path / "gt"
    for video, frames in plain_crops.val_data.videos().items():
        write_posetrack_video(gt_dir / f"{video}.json", frames, video=video)
    files_result = evaluate_posetrack(gt_dir, tmp_path / "predictions" / "val")
    assert metrics["val/mAP"] == pytest.approx(files_result.map)
    # Every GT-box pose is exact; only the detection-box pose (a false positive) costs AP.
    assert 85.0 < metrics["val/mAP"] < 100.0
    for path in (tmp_path / "predictions" / "val").glob("*.json"):
        data = plain_crops.val_data
        for annotation in json.loads(path.read_text())["annotations"]:
            frame = next(f for f in data.frames if f.image_id == annotation["image_id"])
            by_track = {p.track_id: p for p in frame.poses}
            if annotation["track_id"] not in by_track:
                continue  # the detection-box pose: a track id of its own after the GT ones
            gt = by_track[annotation["track_id"]].keypoints
            predicted = np.array(annotation["keypoints"]).reshape(K, 3)
            labelled = gt[:, 2] > 0
            # Eq. 7 on exact maps: exact up to float32 (the quarter-pixel rule is 2 px off here).
            assert np.abs(predicted[labelled, :2] - gt[labelled, :2]).max() < 1e-3


def test_checkpoint_rebuilds_the_model(plain_crops, quiet_trainer, tmp_path):
    model = small_model(flip_test=False, lr_steps=[5], offset_radius=1.5)
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(model, datamodule=plain_crops)
    trainer.save_checkpoint(tmp_path / "two_stage.ckpt")
    loaded = TwoStagePose.load_from_checkpoint(tmp_path / "two_stage.ckpt", map_location="cpu")
    assert loaded.cfg == model.cfg and asdict(loaded.cfg)["lr_steps"] == [5]
    assert loaded.input_size == model.input_size
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    crops = torch.randn(2, 3, *INPUT_SIZE)
    for a, b in zip(model.locate(crops), loaded.locate(crops)):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_loss_falls_and_map_rises_on_tiny_synthetic_videos(tiny_synth, tmp_path):
    losses, before, after = fit_on_tiny_crops(
        lambda data: TwoStagePose({"width": 0.25, "deconv_filters": 32, "lr": 5e-3,
                                   "lr_steps": [100]}, data),
        # 50 epochs: with per-sample augmentation seeds (exact mid-epoch resume) 30 epochs
        # reached 8.1 mAP, 50 reach 13.9.
        tiny_synth, tmp_path, epochs=50, loss_keys=("loss_epoch", "offset_loss"))

    first, last = losses[0], losses[-1]
    assert last["loss_epoch"] < 0.75 * first["loss_epoch"]
    assert last["offset_loss"] < 0.8 * first["offset_loss"]  # the offsets learn too
    assert after["val/loss"] < 0.75 * before["val/loss"]
    # Validation is on other videos than training.
    assert after["val/mAP"] > max(10.0, before["val/mAP"] + 10.0)
    assert list((tmp_path / "predictions" / "val").glob("*.json"))
