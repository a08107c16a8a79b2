"""FrameDataModule and ClipDataModule: keys, shapes, geometry, masks and track rows."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidpose.data_modules.clips import ClipDataModule, clip_windows
from vidpose.data_modules.config import DataConfig
from vidpose.data_modules.frames import FrameDataModule, FrameDataset, frame_window
from vidpose.data_modules.transforms import apply_affine
from vidpose.errors import ConfigError, InputError
from vidpose.formats.coco import read_coco
from vidpose.keypoints import COCO17, POSETRACK18
from vidpose.pose import Frame, Pose, PoseDataset

FRAME_KEYS = {"image": (torch.float32, (3, 64, 48)), "heatmaps": (torch.float32, (17, 16, 12)),
              "limb_maps": (torch.float32, (19, 16, 12)), "person_mask": (torch.float32, (1, 16, 12)),
              "keypoints": (torch.float32, (20, 17, 3)), "num_persons": (torch.int64, ()),
              "frame": (torch.int64, ()), "image_to_input": (torch.float64, (2, 3))}
AUGMENT = {"flip": 0.5, "rotation": 30.0, "scale": 0.25, "translate": 0.1, "color": True,
           "blur": 0.5, "noise": 0.5}


def test_frame_batch_keys_shapes_dtypes(coco_root, data_module):
    dm = data_module(FrameDataModule, coco_root, "coco", augment=AUGMENT)
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == set(FRAME_KEYS)
    for key, (dtype, shape) in FRAME_KEYS.items():
        assert batch[key].dtype == dtype and tuple(batch[key].shape) == (3,) + shape, key
    assert batch["num_persons"].tolist() == [3, 3, 3]
    assert batch["keypoints"][:, 3:].abs().sum() == 0  # padding rows stay empty


def test_frame_geometry_without_augmentation(coco_root, data_module):
    dm = data_module(FrameDataModule, coco_root, "coco", "validate", input_size=[96, 128],
                     heatmap_stride=2)
    sample = dm.val_set[1]
    frame = dm.val_data.frames[int(sample["frame"])]
    affine = sample["image_to_input"].numpy()
    np.testing.assert_allclose(affine, [[1, 0, 0], [0, 1, 0]], atol=1e-12)  # same size, no pad
    for row, pose in enumerate(frame.poses):
        expected = pose.keypoints.copy()
        expected[:, :2] = apply_affine(expected[:, :2], affine)
        np.testing.assert_allclose(sample["keypoints"][row].numpy(), expected, atol=1e-4)
    # Heatmap pixel x holds input pixel 2x: every labelled keypoint is a local peak there.
    heatmaps = sample["heatmaps"].numpy()
    x, y = np.round(frame.poses[1].keypoints[5, :2] / 2).astype(int)
    assert heatmaps[5, y, x] == pytest.approx(heatmaps[5, y - 1:y + 2, x - 1:x + 2].max())
    assert heatmaps[5, y, x] > 0.8


def test_person_mask_uses_segmentation_then_skeleton(coco_root, data_module):
    dm = data_module(FrameDataModule, coco_root, "coco", "validate", input_size=[96, 128],
                     heatmap_stride=2, mask_width=2.0)
    sample = dm.val_set[0]
    mask = sample["person_mask"][0].numpy()
    frame = dm.val_data.frames[0]

    def near_skeleton(pose: Pose, x: float, y: float) -> bool:
        present = pose.keypoints[pose.keypoints[:, 2] > 0, :2] / 2
        return bool((np.hypot(present[:, 0] - x, present[:, 1] - y) <= 2.5).any())

    for index, expected in ((0, 1.0), (1, 1.0), (2, 0.0)):  # polygon, RLE, no segmentation
        pose = frame.poses[index]
        x0, y0 = (pose.box[:2] + 1.5) / 2  # just inside the box's top-left corner
        cx, cy = int(round(x0)), int(round(y0))
        assert not near_skeleton(pose, cx, cy)  # only a segmentation can cover this pixel
        assert mask[cy, cx] == expected, index
        nose = np.round(pose.keypoints[0, :2] / 2).astype(int)
        assert mask[nose[1], nose[0]] == 1
    assert mask[0, 0] == 0 and mask[-1, -1] == 0


def test_frame_flip_is_consistent_with_the_affine(coco_root, data_module):
    dm = data_module(FrameDataModule, coco_root, "coco", augment={"flip": 1.0, "rotation": 10.0})
    sample = dm.train_set[0]
    frame = dm.train_data.frames[0]
    affine = sample["image_to_input"].numpy()
    assert np.linalg.det(affine[:, :2]) < 0
    pose = frame.poses[0]
    ls, rs = COCO17.index["left_shoulder"], COCO17.index["right_shoulder"]
    np.testing.assert_allclose(sample["keypoints"][0, rs, :2].numpy(),
                               apply_affine(pose.keypoints[ls, :2], affine), atol=1e-3)


def test_max_persons_is_checked_at_setup(coco_root, data_config):
    with pytest.raises(ConfigError, match="max_persons"):
        FrameDataModule(data_config(coco_root, "coco", max_persons=2)).setup("validate")


def test_real_coco_fixture_with_polygons(fixtures):
    data = read_coco(fixtures / "coco" / "test_coco.json", fixtures / "coco")
    windows = [frame_window(data, i) for i in range(len(data))]
    cfg = DataConfig(input_size=[128, 128], max_persons=30)
    sample = FrameDataset(data, windows, cfg, train=False)[0]
    assert sample["person_mask"].sum() > 0 and sample["heatmaps"].max() > 0.9
    assert int(sample["num_persons"]) == sum(p.num_visible > 0 for p in data.frames[0].poses)


CLIP_KEYS = dict(FRAME_KEYS, limb_maps=(torch.float32, (16, 16, 12)), track_ids=(torch.int64, (20,)))


def test_clip_batch_keys_shapes_dtypes(posetrack_root, data_module):
    dm = data_module(ClipDataModule, posetrack_root, clip_length=3, val_clip_stride=2, augment=AUGMENT)
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == set(CLIP_KEYS)
    for key, (dtype, shape) in CLIP_KEYS.items():
        want = (4, 20) if key == "track_ids" else (4, 3) + shape
        assert batch[key].dtype == dtype and tuple(batch[key].shape) == want, key
    # One transform per clip: every frame has the same affine.
    affine = batch["image_to_input"]
    torch.testing.assert_close(affine, affine[:, :1].expand_as(affine))


def test_clip_windows_only_hold_labelled_frames(posetrack_root, data_config, data_module):
    dm = data_module(ClipDataModule, posetrack_root, clip_length=2, val_clip_stride=2)
    # vid_a: 6 labelled frames -> 5 windows; vid_b: frames 1-3 labelled -> 2 windows.
    assert len(dm.train_set) == 7
    for window in dm.train_set.windows:
        frames = [dm.train_data.frames[i] for i in window.frames]
        assert all(f.is_labeled for f in frames) and frames[0].video == frames[1].video
        assert frames[1].frame_index - frames[0].frame_index == 1
    assert [w.frames for w in dm.val_set.windows] == [(0, 2), (2, 4)]
    with pytest.raises(ConfigError, match="val_clip_stride"):
        ClipDataModule(data_config(posetrack_root, clip_length=2)).setup("validate")


def test_clip_rows_follow_tracks(posetrack_root, data_module):
    dm = data_module(ClipDataModule, posetrack_root, clip_length=3, val_clip_stride=2)
    # The window over frames 1-3 of vid_a: the third person (track 7) only in frame 2.
    index = next(i for i, w in enumerate(dm.train_set.windows)
                 if [dm.train_data.frames[f].frame_index for f in w.frames] == [1, 2, 3]
                 and dm.train_data.frames[w.frames[0]].video == "vid_a")
    sample = dm.train_set[index]
    assert sample["track_ids"][:4].tolist() == [1, 2, 7, -1]
    assert sample["num_persons"].tolist() == [3, 3, 3]
    for t, f in enumerate(dm.train_set.windows[index].frames):
        frame = dm.train_data.frames[f]
        affine = sample["image_to_input"][t].numpy()
        by_track = {pose.track_id: pose for pose in frame.poses}
        for row, track in enumerate(sample["track_ids"][:3].tolist()):
            got = sample["keypoints"][t, row].numpy()
            if track not in by_track:
                assert got.sum() == 0
                continue
            expected = by_track[track].keypoints.copy()
            expected[:, :2] = apply_affine(expected[:, :2], affine)
            expected[expected[:, 2] == 0] = 0
            np.testing.assert_allclose(got, expected, atol=1e-4)
    assert sample["keypoints"][1, 2].abs().sum() > 0 and sample["keypoints"][0, 2].abs().sum() == 0


def _video(track_ids: list[int]) -> PoseDataset:
    kps = np.tile([[10.0, 10.0, 2.0]], (17, 1))
    frames = [Frame(i, f"{i}.jpg", 32, 32, [Pose(kps, track_id=t, ann_id=10 * i + j)
                                            for j, t in enumerate(track_ids)], video="v",
                    frame_index=i) for i in range(2)]
    return PoseDataset(frames, POSETRACK18, "/nowhere", source="v.json")


@pytest.mark.parametrize("tracks, problem", [([3, -1], "missing"), ([4, 4], "repeated")])
def test_clips_refuse_bad_track_ids(tracks, problem):
    with pytest.raises(InputError, match=problem) as err:
        clip_windows(_video(tracks), 2, 1)
    assert err.value.field == "track_id" and err.value.file == "v.json"
