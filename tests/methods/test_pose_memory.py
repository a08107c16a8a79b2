"""Pose temporal memory method: training reads what earlier frames of the clip wrote, the
module learns, inference settings apply to a trained model, bad configs are refused."""
from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from learning import fit_and_validate

from vidpose.config import compose
from vidpose.data_modules.track_clips import TrackClipDataModule
from vidpose.errors import ConfigError
from vidpose.evaluation.scoring import score_poses
from vidpose.formats.posetrack import read_posetrack
from vidpose.keypoints import POSETRACK18
from vidpose.methods.pose_memory import PoseMemory, pad_memories
from vidpose.pose import Frame, Pose, PoseDataset

# An untrained net's maps are near blank: under the measured write gate nothing would be
# written, so these tests of the memory's mechanics open the gate.
MODEL = {"network": "simple_baseline", "resnet": "resnet18", "deconv_filters": 16,
         "embed_channels": 16, "heads": 2, "capacity": 2, "lr": 2e-3, "lr_steps": [100],
         "heatmap_threshold": 0.0}
DATA = {"dataset": "posetrack18", "synth_preset": None, "input_size": [64, 64], "sigma": 1.5,
        "batch_size": 4, "num_workers": 0, "clip_length": 3}


def clip_batch(model: PoseMemory, batch: int = 2, length: int = 3) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    k = model.schema.num_keypoints
    return {"image": torch.randn(batch, length, 3, 64, 64),
            "heatmaps": torch.rand(batch, length, k, 16, 16) * 0.1,
            "target_weight": torch.ones(batch, length, k),
            "persons_per_frame": torch.tensor([2.0, 12.0])[:batch]}


@pytest.mark.parametrize("network", ["simple_baseline", "cpn"])
def test_training_reads_the_memory_written_by_earlier_frames(network):
    torch.manual_seed(0)
    model = PoseMemory({**MODEL, "network": network, "cpn_channels": 32}, DATA)
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
    assert model.net.head.final_layer.weight.grad.abs().sum() > 0


def test_estimate_reads_memory_and_returns_the_map_to_write():
    torch.manual_seed(0)
    # 48 is no multiple of 32: the crop is padded to 64 and the heatmaps cropped back.
    model = PoseMemory(MODEL, {**DATA, "input_size": [64, 48]})
    with torch.no_grad():
        model.read.alpha.fill_(0.2)  # let the memory weigh
    crops = torch.randn(2, 3, 64, 48)
    plain, written = model.estimate(crops, [None, None], crowded=False)
    # Per person: the crop's and the mirrored crop's F~ (flip test), as W_K + W_V rows.
    assert plain.shape == (2, 17, 16, 12) and written.shape == (2, 2, 16 + 512, 2, 2)
    memory = written[:1]  # person 0's memory: one stored map
    read, _ = model.estimate(crops, [memory, None], crowded=False)
    assert not torch.allclose(read[0], plain[0]) and torch.allclose(read[1], plain[1])


def test_the_flip_test_reads_a_memory_of_mirrored_crops():
    # Stream 1 of what a crop writes is what its mirror image writes as stream 0, and a crop's
    # mirrored pass reading its memory computes what the mirror image's own pass computes
    # reading the mirror image's memory: each pass reads maps of crops facing its way.
    torch.manual_seed(0)
    model = PoseMemory(MODEL, DATA)
    with torch.no_grad():
        model.read.alpha.fill_(0.2)
    crop = torch.randn(1, 3, 64, 64)
    _, crop_written = model.estimate(crop, [None], crowded=False)
    _, mirror_written = model.estimate(crop.flip(-1), [None], crowded=False)
    torch.testing.assert_close(crop_written[0, 1], mirror_written[0, 0], rtol=1e-4, atol=1e-4)
    _, crop_again = model.estimate(crop, [crop_written], crowded=True)
    _, mirror_again = model.estimate(crop.flip(-1), [mirror_written], crowded=True)
    torch.testing.assert_close(crop_again[0, 1], mirror_again[0, 0], rtol=1e-4, atol=1e-4)
    # The memory made a difference to what was read.
    assert not torch.allclose(crop_again[0, 1], crop_written[0, 1], atol=1e-3)


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
    ({"network": "hrnet"}, {}, "model.network"),
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
    alpha = float(model.read.alpha)
    before, after = (figures["val/mAP"]
                     for figures in fit_and_validate(model, datamodule, tmp_path, 8, ("val/mAP",)))
    assert after > max(15.0, before + 10.0)
    assert float(model.read.alpha) != pytest.approx(alpha, abs=1e-4)  # the read was trained
    files = sorted(p.name for p in (tmp_path / "predictions" / "val").glob("*.json"))
    assert files == ["050001_synth_val.json", "050002_synth_val.json"]


def test_crowd_subset_scores_only_crowded_videos(tiny_synth):
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


@pytest.mark.parametrize("truth, boxes, crowded", [(10, 1, False), (1, 10, True)])
def test_validation_switches_coda_on_the_boxes_not_ground_truth_counts(monkeypatch, truth, boxes,
                                                                        crowded):
    # Validation's path (make_pipeline, then track per video) with a video whose ground truth
    # has `truth` persons per frame and whose box source gives `boxes`: the switch (8 persons
    # per frame) follows the boxes. The old switch read the ground-truth count.
    def person(i):
        keypoints = np.zeros((17, 3))
        keypoints[:, :2], keypoints[:, 2] = [20 + 5 * i, 30], 1
        return Pose(keypoints, box=np.array([10.0 + 5 * i, 10, 20, 40]))

    frames = [Frame(image_id=t, file_name=f"{t}.jpg", width=120, height=80, video="v",
                    frame_index=t, is_labeled=True, poses=[person(i) for i in range(truth)])
              for t in range(3)]
    data = PoseDataset(frames, POSETRACK18, ".", "test")

    def detector(frame, image):
        return np.array([[10.0 + 5 * i, 10, 20, 40] for i in range(boxes)]), np.ones(boxes)

    model = PoseMemory({**MODEL, "flip_test": False}, DATA)
    monkeypatch.setattr("vidpose.methods.video_validation.configured_boxes", lambda *args: detector)
    flags = []
    estimate = model.estimate
    monkeypatch.setattr(model, "estimate",
                        lambda crops, memories, crowded: flags.append(crowded) or estimate(
                            crops, memories, crowded))
    pipeline = model.make_pipeline(data)
    image = np.zeros((80, 120, 3), np.uint8)
    tracked = list(model.track(pipeline, ((f, image) for f in frames), "v"))
    assert [len(f.poses) for f in tracked] != [0, 0, 0]
    assert flags == [crowded] * 3


def test_table3_wrists_and_ankles_are_scored_under_their_paper_metrics_names(tiny_synth):
    data = read_posetrack(tiny_synth / "posetrack18" / "annotations" / "val")
    wrist = POSETRACK18.indices(["left_wrist"])[0]
    poses = {}
    for i, frame in enumerate(data.frames):
        poses[i] = [type(p)(p.keypoints.copy(), box=p.box, track_id=p.track_id) for p in frame.poses]
        for k, pose in enumerate(poses[i]):
            pose.keypoints[:, 2] = (pose.keypoints[:, 2] > 0) * 0.9
            if k % 2:  # every other person's left wrist lands far off
                pose.keypoints[wrist, :2] += 500
    scores = score_poses(data, poses)
    # poseval's "Wri" column: the mean of both wrists' AP.
    assert scores["AP/wrists"] == pytest.approx(
        np.mean([scores["AP/left_wrist"], scores["AP/right_wrist"]]))
    assert scores["AP/wrists"] < 90 and scores["AP/ankles"] == pytest.approx(100)
    for name in ("memory_t3_simple_baseline_memory", "memory_t3_cpn_baseline"):
        wanted = set(compose(name).experiment.paper_metrics)
        assert {"AP/wrists", "AP/ankles"} <= wanted and wanted <= set(scores)


def test_a_step_whose_maps_the_gate_drops_still_gives_the_read_a_gradient():
    # An untrained net's maps are near blank: the measured gate writes none, nothing is read,
    # and DDP (find_unused_parameters off) still needs a gradient on every parameter.
    model = PoseMemory({**MODEL, "heatmap_threshold": 100.0}, DATA)
    seen = []
    model.read.register_forward_hook(lambda *args: seen.append(1))
    model.training_step(clip_batch(model), 0).backward()
    assert seen == []
    for param in model.read.parameters():
        assert param.grad is not None and float(param.grad.abs().sum()) == 0.0
