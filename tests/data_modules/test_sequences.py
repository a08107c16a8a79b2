"""SequenceDataModule (synthetic clips from single frames) and the memory maps of clips."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vidpose.data_modules.clips import ClipDataModule
from vidpose.data_modules.config import SequenceConfig
from vidpose.data_modules.sequences import SequenceDataModule, sequence_affines, step_affine
from vidpose.data_modules.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    apply_affine,
    compose_affine,
    invert_affine,
    letterbox,
)
from vidpose.errors import ConfigError, InputError
from vidpose.keypoints import COCO17, POSETRACK18

MAPS = {"jitter": 1.0, "rand": 0.3, "baits": 0.5, "dull_clouds": True}
AUGMENT = {"flip": 0.5, "rotation": 20.0, "scale": 0.2, "translate": 0.05, "color": True}


def pixels(image: torch.Tensor) -> np.ndarray:
    """Normalised (3, H, W) back to RGB values in [0, 255], (H, W, 3)."""
    return (image.permute(1, 2, 0).numpy() * IMAGENET_STD + IMAGENET_MEAN) * 255.0


def test_step_affine_hand_computed():
    center = np.array([10.0, 20.0])
    # A quarter turn counter-clockwise on screen (y down): right of the centre goes up.
    turn = step_affine(center, np.zeros(2), 90.0, 1.0, 0.0)
    np.testing.assert_allclose(apply_affine([[13.0, 20.0], [10.0, 20.0]], turn), [[10, 17], [10, 20]],
                               atol=1e-12)
    zoom = step_affine(center, np.array([1.0, -2.0]), 0.0, 2.0, 0.0)
    np.testing.assert_allclose(apply_affine([12.0, 21.0], zoom), [15.0, 20.0])
    shear = step_affine(center, np.zeros(2), 0.0, 1.0, 45.0)
    np.testing.assert_allclose(apply_affine([10.0, 23.0], shear), [13.0, 23.0])


def test_sequence_affines_compose_cumulative_steps():
    ranges = SequenceConfig(translate=0.0, rotation=10.0, scale=0.0, shear=0.0)
    warps = sequence_affines(6, ranges, (64, 48), torch.Generator().manual_seed(3))
    angles = np.degrees(np.arctan2(warps[:, 0, 1], warps[:, 0, 0]))
    steps = np.diff(np.concatenate([[0.0], angles]))
    assert np.all(np.abs(steps) <= 10.0) and np.abs(steps).min() > 0 and len(set(steps.round(6))) == 6
    center = np.array([23.5, 31.5])
    for warp in warps:  # pure rotations about the input's centre keep the centre
        np.testing.assert_allclose(apply_affine(center, warp), center, atol=1e-9)
    # Each frame's warp is the previous one followed by one step within the ranges.
    full = SequenceConfig(translate=0.05, rotation=5.0, scale=0.1, shear=4.0)
    warps = sequence_affines(5, full, (64, 48), torch.Generator().manual_seed(4))
    for prev, cur in zip(warps[:-1], warps[1:]):
        step = compose_affine(cur, invert_affine(prev))
        shift = apply_affine(center, step) - center
        assert abs(shift[0]) <= 0.05 * 48 + 1e-9 and abs(shift[1]) <= 0.05 * 64 + 1e-9
        assert 1 / 1.1 - 1e-9 <= math.sqrt(np.linalg.det(step[:, :2])) <= 1.1 + 1e-9
    assert np.allclose(sequence_affines(3, SequenceConfig(0.0, 0.0, 0.0, 0.0), (64, 48),
                                        torch.Generator()), np.eye(3)[:2])


def test_keypoints_and_pixels_follow_the_composed_affine(posetrack_root, data_module):
    dm = data_module(SequenceDataModule, posetrack_root, input_size=[96, 128], heatmap_stride=2,
                     clip_length=5, sequence={"translate": 0.04, "rotation": 8.0})
    data, cfg = dm.val_data, dm.cfg
    for index in (0, len(dm.val_set) - 1):
        sample = dm.val_set[index]
        frame_index = int(sample["frame"][0])
        assert sample["frame"].tolist() == [frame_index] * 5
        frame = data.frames[frame_index]
        warps = sequence_affines(5, cfg.sequence, (96, 128),
                                 torch.Generator().manual_seed(cfg.sequence.val_seed + frame_index))
        _, boxed = letterbox(np.zeros((1, frame.height, frame.width, 3), np.uint8), (96, 128))
        for t in range(5):
            affine = compose_affine(warps[t], boxed)
            np.testing.assert_allclose(sample["image_to_input"][t].numpy(), affine, atol=1e-12)
            image = pixels(sample["image"][t])
            for row, pose in enumerate(frame.poses):
                got = sample["keypoints"][t, row].numpy()
                expected = pose.keypoints.copy()
                expected[:, :2] = apply_affine(expected[:, :2], affine)
                inside = ((expected[:, 0] >= 0) & (expected[:, 0] <= 127) & (expected[:, 1] >= 0)
                          & (expected[:, 1] <= 95) & (expected[:, 2] > 0))
                np.testing.assert_allclose(got[inside], expected[inside], atol=1e-4)
                assert np.all(got[~inside] == 0)
                # The white dot drawn on each keypoint moved with it.
                xy = np.round(got[inside, :2]).astype(int)
                assert np.all(image[xy[:, 1], xy[:, 0]].min(-1) > 150)
        assert torch.equal(sample["track_ids"][:len(frame.poses)], torch.arange(len(frame.poses)))


def test_keypoints_leaving_the_input_are_dropped(posetrack_root, data_module):
    dm = data_module(SequenceDataModule, posetrack_root, clip_length=6,
                     sequence={"translate": 0.15, "rotation": 0.0, "scale": 0.0, "shear": 0.0})
    dropped = 0
    for sample in (dm.val_set[i] for i in range(len(dm.val_set))):
        rows = int(sample["num_persons"][0])
        present = sample["keypoints"][:, :rows, :, 2] > 0
        xy = sample["keypoints"][..., :2][:, :rows][present]
        assert torch.all((xy >= 0) & (xy[:, :1] <= 47) & (xy[:, 1:] <= 63))
        first = present[0].sum()
        dropped += int((present.sum((1, 2)) < first).sum())
        assert torch.all(sample["num_persons"] == rows)  # the rows stay, emptier
    assert dropped > 0


def test_sample_keys_and_shapes_equal_clip_samples(tiny_synth, data_module):
    root = tiny_synth / "posetrack18"
    options = {"clip_length": 3, "val_clip_stride": 2, "map_augmentation": MAPS, "augment": AUGMENT}
    clips = data_module(ClipDataModule, root, **options)
    sequences = data_module(SequenceDataModule, root, **options)
    assert len(sequences.train_set) == sum(f.is_labeled for f in sequences.train_data.frames)
    for clip_set, seq_set in ((clips.train_set, sequences.train_set), (clips.val_set, sequences.val_set)):
        clip, seq = clip_set[0], seq_set[0]
        assert set(seq) == set(clip)
        for key in clip:
            assert seq[key].dtype == clip[key].dtype and seq[key].shape == clip[key].shape, key
    train = sequences.train_set[0]
    assert train["memory_heatmaps"].shape == train["heatmaps"].shape
    assert train["memory_limb_maps"].shape == train["limb_maps"].shape
    assert not torch.equal(train["memory_heatmaps"], train["heatmaps"])
    assert "memory_heatmaps" not in sequences.val_set[0]  # validation memorises clean maps
    batch = next(iter(sequences.train_dataloader()))
    assert batch["image"].shape == (4, 3, 3, 64, 48) and batch["memory_limb_maps"].shape[:2] == (4, 3)
    assert batch["track_ids"].shape == (4, 20)


def test_coco_layout_and_map_augmentation_off(coco_root, data_module):
    dm = data_module(SequenceDataModule, coco_root, dataset="coco", clip_length=2, augment=AUGMENT)
    sample = dm.train_set[1]
    assert "memory_heatmaps" not in sample and "memory_limb_maps" not in sample
    assert sample["image"].shape == (2, 3, 64, 48) and sample["limb_maps"].shape == (2, 19, 16, 12)
    assert sample["num_persons"].tolist() == [3, 3]
    # Persons with segmentations keep them, warped with the frame.
    assert sample["person_mask"].sum() > sample["person_mask"].new_tensor(0)


def test_validation_is_deterministic_and_training_reproducible(posetrack_root, data_module):
    options = {"clip_length": 4, "augment": AUGMENT, "map_augmentation": MAPS}
    first = data_module(SequenceDataModule, posetrack_root, **options)
    second = data_module(SequenceDataModule, posetrack_root, **options)
    for key, value in first.val_set[2].items():
        assert torch.equal(value, second.val_set[2][key]), key
        assert torch.equal(value, first.val_set[2][key]), key
    draws = []
    for dm in (first, second):
        torch.manual_seed(11)
        draws.append(dm.train_set[1])
    for key in draws[0]:
        assert torch.equal(draws[0][key], draws[1][key]), key
    # Frames of one sequence differ from each other, and training draws from sample to sample.
    frames = draws[0]["image_to_input"]
    assert not torch.allclose(frames[0], frames[1]) and not torch.allclose(frames[1], frames[3])
    assert not torch.equal(first.train_set[1]["image_to_input"], draws[0]["image_to_input"])


def test_clip_module_adds_memory_maps_only_for_training_clips(posetrack_root, data_module):
    on = data_module(ClipDataModule, posetrack_root, clip_length=2, val_clip_stride=2,
                     map_augmentation={"baits": 2.0})
    sample = on.train_set[0]
    # Baits only add peaks: the memory maps cover the clean ones and reach beyond them.
    assert torch.all(sample["memory_heatmaps"] >= sample["heatmaps"] - 1e-5)
    assert (sample["memory_heatmaps"] - sample["heatmaps"]).amax() > 0.5
    assert "memory_heatmaps" not in on.val_set[0]
    off = data_module(ClipDataModule, posetrack_root, clip_length=2, val_clip_stride=2)
    assert "memory_heatmaps" not in off.train_set[0]


def test_val_videos_validates_on_the_real_clips(posetrack_root, data_module):
    options = {"clip_length": 2, "val_clip_stride": 2}
    dm = data_module(SequenceDataModule, posetrack_root, sequence={"val_videos": True}, **options)
    clips = data_module(ClipDataModule, posetrack_root, stage="validate", **options)
    assert [w.frames for w in dm.val_set.windows] == [w.frames for w in clips.val_set.windows]
    for key, value in clips.val_set[1].items():
        assert torch.equal(dm.val_set[1][key], value), key
    assert all(len(set(w.frames)) == 1 for w in dm.train_set.windows)  # training: sequences


@pytest.mark.parametrize("overrides, key", [
    ({"clip_length": 0}, "clip_length"), ({"sequence": {"rotation": -1.0}}, "sequence.rotation"),
    ({"map_augmentation": {"jitter": -0.5}}, "map_augmentation.jitter")])
def test_bad_settings_are_refused(posetrack_root, data_config, overrides, key):
    with pytest.raises(ConfigError, match=key):
        SequenceDataModule(data_config(posetrack_root, **overrides)).setup("validate")


def test_pretraining_reads_coco_in_posetrack18_slots_and_validates_on_other_videos(
        coco_root, posetrack_root, data_module):
    """COCO images for training, PoseTrack18 videos for validation (data.val_root), both in
    one keypoint layout, so the maps' channels mean the same joints in both."""
    dm = data_module(SequenceDataModule, coco_root, dataset="coco", clip_length=2,
                     val_clip_stride=2, val_root=str(posetrack_root),
                     val_dataset="posetrack18", keypoint_schema="posetrack18",
                     sequence={"val_videos": True})
    assert dm.train_data.schema is POSETRACK18 and dm.val_data.schema is POSETRACK18
    assert str(posetrack_root) in dm.val_data.source and str(coco_root) in dm.train_data.source
    # The same COCO person, read as is and in PoseTrack18 slots: joints keep their names.
    plain = data_module(SequenceDataModule, coco_root, dataset="coco", clip_length=2)
    assert plain.train_data.schema is COCO17
    coco_pose = plain.train_data.frames[0].poses[0].keypoints
    moved = dm.train_data.frames[0].poses[0].keypoints
    for name in ("nose", "left_shoulder", "right_wrist", "left_ankle"):
        assert np.array_equal(moved[POSETRACK18.index[name]], coco_pose[COCO17.index[name]]), name
    for name in ("head_bottom", "head_top"):  # COCO does not label them
        assert not moved[POSETRACK18.index[name]].any()
    train, val = dm.train_set[0], dm.val_set[0]
    assert train["limb_maps"].shape[1] == val["limb_maps"].shape[1] == len(POSETRACK18.limbs)
    assert train["heatmaps"].shape[1:] == val["heatmaps"].shape[1:]
    assert len(set(dm.val_set.windows[0].frames)) == 2  # real clips of the other root's video


def test_validation_in_another_layout_comes_in_the_training_layout(coco_root, posetrack_root,
                                                                  data_module):
    dm = data_module(SequenceDataModule, coco_root, dataset="coco", clip_length=2,
                     val_clip_stride=2, val_root=str(posetrack_root),
                     val_dataset="posetrack18", sequence={"val_videos": True})
    assert dm.train_data.schema is COCO17 and dm.val_data.schema is COCO17


def test_train_videos_trains_on_real_clips_and_validates_on_sequences(posetrack_root, data_module):
    dm = data_module(SequenceDataModule, posetrack_root, clip_length=2, sequence={"train_videos": True})
    assert all(len(set(w.frames)) == 2 for w in dm.train_set.windows)
    assert all(len(set(w.frames)) == 1 for w in dm.val_set.windows)


def test_bad_validation_source_is_refused(coco_root, posetrack_root, data_module, tmp_path):
    with pytest.raises(ConfigError, match="data.val_dataset"):
        data_module(SequenceDataModule, coco_root, dataset="coco", val_dataset="davis")
    with pytest.raises(ConfigError, match="data.keypoint_schema"):
        data_module(SequenceDataModule, coco_root, dataset="coco", keypoint_schema="mpii")
    with pytest.raises(InputError) as info:
        data_module(SequenceDataModule, coco_root, dataset="coco", val_dataset="posetrack18",
                    val_root=str(tmp_path / "nowhere"))
    assert info.value.field == "data.val_root" and info.value.file == str(tmp_path / "nowhere")
