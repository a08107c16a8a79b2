"""Pose temporal memory method: training reads what earlier frames of the clip wrote, the
module learns, inference settings apply to a trained model, bad configs are refused."""
from __future__ import annotations

import lightning as L
import pytest
import torch

from vidpose.data_modules.track_clips import TrackClipDataModule
from vidpose.errors import ConfigError
from vidpose.methods.pose_memory import PoseMemory, pad_memories

MODEL = {"backbone": "simple_baseline", "resnet": "resnet18", "deconv_filters": 16,
         "embed_channels": 16, "heads": 2, "capacity": 2, "lr": 2e-3, "lr_steps": [100]}
DATA = {"dataset": "posetrack18", "synth_preset": None, "input_size": [64, 64], "sigma": 1.5,
        "batch_size": 4, "num_workers": 0, "clip_length": 3}


def clip_batch(model: PoseMemory, batch: int = 2, length: int = 3) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    k = model.schema.num_keypoints
    return {"image": torch.randn(batch, length, 3, 64, 64),
            "heatmaps": torch.rand(batch, length, k, 16, 16) * 0.1,
            "target_weight": torch.ones(batch, length, k),
            "persons_per_frame": torch.tensor([2.0, 12.0])[:batch]}


@pytest.mark.parametrize("backbone", ["simple_baseline", "cpn"])
def test_training_reads_the_memory_written_by_earlier_frames(backbone):
    torch.manual_seed(0)
    model = PoseMemory({**MODEL, "backbone": backbone, "cpn_channels": 32}, DATA)
    seen = []
    model.read.register_forward_hook(
        lambda module, args, output: seen.append((args[1].shape[1], args[2].tolist(),
                                                  args[3].sum(1).tolist())))
    loss = model.training_step(clip_batch(model), 0)
    # Frame 0 has no memory (no read); frame 1 reads 1 stored map, frame 2 reads 2 (capacity 2).
    assert [s[0] for s in seen] == [1, 2]
    assert [s[2] for s in seen] == [[1, 1], [2, 2]]
    # The crowdedness switch: the 12-persons-per-frame clip reads with CoDA.
    assert seen[0][1] == [False, True]
    loss.backward()
    for param in (model.read.key.weight, model.read.value.weight, model.read.alpha):
        assert param.grad is not None and param.grad.abs().sum() > 0


def test_without_memory_there_is_no_read_and_the_baseline_trains():
    model = PoseMemory({**MODEL, "memory": False}, DATA)
    assert model.read is None and model.policy is None
    loss = model.training_step(clip_batch(model), 0)
    loss.backward()
    assert model.head.final_layer.weight.grad.abs().sum() > 0


def test_estimate_reads_memory_and_returns_the_map_to_write():
    torch.manual_seed(0)
    # 48 is no multiple of 32: the crop is padded to 64 and the heatmaps cropped back.
    model = PoseMemory(MODEL, {**DATA, "input_size": [64, 48]})
    with torch.no_grad():
        model.read.alpha.fill_(0.2)  # let the memory weigh
    crops = torch.randn(2, 3, 64, 48)
    plain, enhanced = model.estimate(crops, [None, None], crowded=False)
    assert plain.shape == (2, 17, 16, 12) and enhanced.shape == (2, 512, 2, 2)
    memory = torch.randn(1, 512, 2, 2)
    read, _ = model.estimate(crops, [memory, None], crowded=False)
    assert not torch.allclose(read[0], plain[0]) and torch.allclose(read[1], plain[1])


def test_pad_memories_masks_missing_slots():
    like = torch.zeros(3, 4, 2, 2)
    memory, valid = pad_memories([torch.ones(2, 4, 2, 2), None, torch.ones(1, 4, 2, 2)], like)
    assert memory.shape == (3, 2, 4, 2, 2)
    assert valid.tolist() == [[True, True], [False, False], [True, False]]


def test_inference_settings_change_behaviour_not_weights():
    model = PoseMemory(MODEL, DATA)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.use_settings({**MODEL, "capacity": 5, "attention": "coda", "resnet": "resnet50"},
                       {**DATA, "box_source": "detections", "input_size": [128, 128]})
    assert model.policy.capacity == 5 and model.cfg.attention == "coda"
    assert model.cfg.resnet == "resnet18"  # architecture keys are the checkpoint's
    assert model.data_cfg.box_source == "detections" and model.input_size == (64, 64)
    assert list(model.data_cfg.input_size) == [64, 64]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("model, data, message", [
    ({"attention": "soft"}, {}, "model.attention"),
    ({"backbone": "hrnet"}, {}, "model.backbone"),
    ({"capacity": 0}, {}, "capacity"),
    ({"colour": 1}, {}, "unknown key"),
    ({}, {"heatmap_stride": 8}, "stride 4"),
])
def test_bad_configs_are_refused(model, data, message):
    with pytest.raises(ConfigError, match=message):
        PoseMemory({**MODEL, **model}, {**DATA, **data})


@pytest.mark.slow
def test_memory_model_learns_on_tiny_synthetic_videos(tiny_synth, tmp_path):
    data = {**DATA, "root": str(tiny_synth / "posetrack18"), "batch_size": 4, "clip_length": 3}
    L.seed_everything(0, verbose=False)
    datamodule = TrackClipDataModule(data, "posetrack18")
    model = PoseMemory({**MODEL, "deconv_filters": 64}, data)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(tmp_path), max_epochs=8, num_sanity_val_steps=0,
                        check_val_every_n_epoch=8)
    trainer.validate(model, datamodule=datamodule, verbose=False)
    before = float(trainer.callback_metrics["val/mAP"])
    alpha = float(model.read.alpha)
    trainer.fit(model, datamodule=datamodule)
    after = float(trainer.callback_metrics["val/mAP"])
    assert after > max(15.0, before + 10.0)
    assert float(model.read.alpha) != pytest.approx(alpha, abs=1e-4)  # the read was trained
    files = sorted(p.name for p in (tmp_path / "predictions" / "val").glob("*.json"))
    assert files == ["050001_synth_val.json", "050002_synth_val.json"]


def test_crowd_subset_scores_only_crowded_videos(tiny_synth):
    from vidpose.formats.posetrack import read_posetrack

    data = read_posetrack(tiny_synth / "posetrack18" / "annotations" / "val")
    # Ground truth as predictions: perfect scores on whatever subset is selected.
    poses = {i: [type(p)(p.keypoints.copy(), box=p.box, track_id=p.track_id) for p in f.poses]
             for i, f in enumerate(data.frames)}
    for pose in (p for ps in poses.values() for p in ps):
        pose.keypoints[:, 2] = (pose.keypoints[:, 2] > 0) * 0.9
    model = PoseMemory({**MODEL, "crowd_threshold": 0.5}, DATA)
    scores = model._crowd_scores(data, poses)
    assert scores["videos"] == 2.0 and scores["mAP"] == pytest.approx(100.0)
    model = PoseMemory({**MODEL, "crowd_threshold": 100.0}, DATA)
    assert model._crowd_scores(data, poses) == {}
