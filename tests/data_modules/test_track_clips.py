"""TrackClipDataModule: clips of one track's crops (pose temporal memory) and video items."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vidpose.crowd import persons_per_frame
from vidpose.data_modules.crops import person_box
from vidpose.data_modules.datasets import as_data_config
from vidpose.data_modules.sources import load_split
from vidpose.data_modules.track_clips import TrackClipDataModule, TrackClipDataset, VideoDataset, track_clips
from vidpose.data_modules.transforms import apply_affine, box_to_center_size, invert_affine
from vidpose.errors import ConfigError
from vidpose.keypoints import POSETRACK18
from vidpose.methods import METHODS, get_datamodule_cls
from vidpose.pose import Frame, Pose, PoseDataset

HEIGHT, WIDTH = 96, 128
INPUT = (64, 48)  # data_config's input_size
KEYS = {"image": (torch.float32, (3, 3, 64, 48)), "heatmaps": (torch.float32, (3, 17, 16, 12)),
        "target_weight": (torch.float32, (3, 17)), "keypoints": (torch.float32, (3, 17, 3)),
        "crop_to_image": (torch.float64, (3, 2, 3)), "frame": (torch.int64, (3,)),
        "track_id": (torch.int64, ()), "persons_per_frame": (torch.float32, ())}
AUGMENT = {"flip": 0.5, "rotation": 30.0, "rotation_prob": 1.0, "scale": 0.25, "color": True,
           "blur": 0.5, "noise": 0.5}


@pytest.fixture()
def hand_data(tmp_path, make_person) -> PoseDataset:
    """Video a: 5 labelled frames; track 1 throughout, track 2 in frames 0-2, track 3 in frame 4,
    a crowd region with keypoints and track id 9 (frames 0, 1; no track clip) and a pose without
    keypoints (frame 1). Video b: one labelled frame with tracks 5 and 6, then an unlabelled
    one. Crowdedness: a 9/5, b 2."""
    def track(center: tuple[float, float], scale: float, track_id: int, boxed: bool) -> Pose:
        keypoints = make_person(center, scale, POSETRACK18)
        box = np.array([center[0] - 0.4 * scale, center[1] - 1.2 * scale, 0.8 * scale, 2.2 * scale])
        return Pose(keypoints, box=box if boxed else None, track_id=track_id, ann_id=track_id)

    frames = []
    for t in range(5):
        poses = [track((35 + 3 * t, 50), 30, 1, boxed=True)]
        if t <= 2:
            poses.append(track((92 - 2 * t, 48), 26, 2, boxed=False))
        if t == 4:
            poses.append(track((64, 40), 16, 3, boxed=True))
        crowd = Pose(make_person((64, 20), 10, POSETRACK18), box=np.array([50.0, 5, 30, 30]),
                     track_id=9, iscrowd=True)
        if t == 0:
            poses.insert(0, crowd)
        if t == 1:
            poses += [Pose(np.zeros((17, 3)), box=np.array([5.0, 5, 10, 10])), crowd]
        frames.append(Frame(t, f"a/{t}.png", WIDTH, HEIGHT, poses, video="a", frame_index=t))
    frames.append(Frame(5, "b/0.png", WIDTH, HEIGHT, [track((40, 50), 30, 5, True),
                                                     track((90, 50), 30, 6, True)],
                        video="b", frame_index=0))
    frames.append(Frame(6, "b/1.png", WIDTH, HEIGHT, [], video="b", frame_index=1,
                        is_labeled=False))
    gradient = (np.linspace(30, 200, WIDTH)[None, :] + np.linspace(0, 40, HEIGHT)[:, None])
    for frame in frames:
        path = tmp_path / frame.file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        grey = (gradient + 5 * frame.frame_index).astype(np.uint8)
        cv2.imwrite(str(path), np.repeat(grey[:, :, None], 3, axis=2))
    return PoseDataset(frames, POSETRACK18, str(tmp_path), source=str(tmp_path / "hand.json"))


def clip_table(clips) -> list[tuple[tuple[int, ...], tuple[int, ...], int]]:
    return [(c.frames, c.persons, c.track_id) for c in clips]


def track_pose(frame: Frame, track_id: int) -> Pose:
    (pose,) = [p for p in frame.poses if p.track_id == track_id and p.num_visible > 0]
    return pose


def test_windows_per_track(hand_data):
    # Frame 0 has the crowd region first, so track 1 is its pose 1 there.
    assert clip_table(track_clips(hand_data, 2, 1)) == [
        ((0, 1), (1, 0), 1), ((0, 1), (2, 1), 2), ((1, 2), (0, 0), 1), ((1, 2), (1, 1), 2),
        ((2, 3), (0, 0), 1), ((3, 4), (0, 0), 1)]
    assert clip_table(track_clips(hand_data, 3, 2)) == [((0, 2, 4), (1, 0, 0), 1)]
    # Length 1: every labelled person, video b's single labelled frame included.
    singles = track_clips(hand_data, 1, 1)
    assert len(singles) == 11
    assert clip_table(singles)[-2:] == [((5,), (0,), 5), ((5,), (1,), 6)]
    assert track_clips(hand_data, 6, 1) == []


def test_samples_follow_one_track(hand_data, data_config, tmp_path):
    cfg = as_data_config(data_config(tmp_path))
    dataset = TrackClipDataset(hand_data, track_clips(hand_data, 3, 1), cfg)
    assert len(dataset) == 4
    for sample in dataset:
        for key, (dtype, shape) in KEYS.items():
            assert sample[key].dtype == dtype and tuple(sample[key].shape) == shape, key
        assert float(sample["persons_per_frame"]) == pytest.approx(9 / 5)
        for t, frame_index in enumerate(sample["frame"].tolist()):
            pose = track_pose(hand_data.frames[frame_index], int(sample["track_id"]))
            present = pose.keypoints[:, 2] > 0
            to_image = sample["crop_to_image"][t].numpy()
            back = apply_affine(sample["keypoints"][t].numpy()[present, :2], to_image)
            np.testing.assert_allclose(back, pose.keypoints[present, :2], atol=1e-3)
            # Each frame is cropped around its own box: the crop's centre is the box's.
            box = person_box(pose)
            centre = apply_affine([(INPUT[1] - 1) / 2, (INPUT[0] - 1) / 2], to_image)
            np.testing.assert_allclose(centre, box[:2] + box[2:] / 2, atol=1e-9)
            weight = sample["target_weight"][t].numpy()
            np.testing.assert_array_equal(weight > 0, present & POSETRACK18.annotated_mask)
            heatmaps = sample["heatmaps"][t]
            assert float(heatmaps[weight == 0].abs().max()) == 0
            assert float(heatmaps[weight > 0].amax(dim=(1, 2)).min()) > 0.5


def clip_params(sample: dict, poses: list[Pose]) -> list[tuple[float, float, bool]]:
    """(scale, rotation, flip) of each frame, solved from its crop affine and its box."""
    params = []
    for to_image, pose in zip(sample["crop_to_image"].numpy(), poses):
        linear = invert_affine(to_image)[:, :2]
        flip = bool(np.linalg.det(linear) < 0)
        if flip:
            linear = np.diag([-1.0, 1.0]) @ linear
        zoom = math.hypot(linear[0, 0], linear[0, 1])
        _, size = box_to_center_size(person_box(pose), INPUT[1] / INPUT[0], 1.25)
        params.append((INPUT[1] / (size[0] * zoom), math.degrees(math.atan2(linear[0, 1],
                                                                            linear[0, 0])), flip))
    return params


def test_one_geometric_draw_per_clip(hand_data, data_config, tmp_path):
    cfg = as_data_config(data_config(tmp_path, augment=AUGMENT))
    dataset = TrackClipDataset(hand_data, track_clips(hand_data, 3, 1), cfg)
    flips = set()
    for seed in range(6):
        torch.manual_seed(seed)
        sample = dataset[0]  # track 1 in frames 0-2: its box grows, moves and changes shape
        poses = [track_pose(hand_data.frames[i], 1) for i in sample["frame"].tolist()]
        params = clip_params(sample, poses)
        scale, rotation, flip = params[0]
        assert scale != pytest.approx(1.0) and rotation != pytest.approx(0.0)
        for other in params[1:]:
            assert other == pytest.approx(params[0])
        flips.add(flip)
        # A flip swaps left and right in every frame's keypoints.
        order = POSETRACK18.flip_index if flip else np.arange(17)
        for t, pose in enumerate(poses):
            present = pose.keypoints[order, 2] > 0
            back = apply_affine(sample["keypoints"][t].numpy()[present, :2],
                                sample["crop_to_image"][t].numpy())
            np.testing.assert_allclose(back, pose.keypoints[order][present, :2], atol=1e-3)
    assert flips == {False, True}


def test_missing_track_id_is_refused(hand_data, expect_input_error):
    hand_data.frames[3].poses[0].track_id = -1
    hand_data.frames[3].poses[0].ann_id = 71
    expect_input_error(lambda: track_clips(hand_data, 2, 1), file=hand_data.source,
                       record="annotation 71 (image 3)", field="track_id")


def test_video_dataset_order_and_cap(hand_data):
    videos = VideoDataset(hand_data)
    assert videos.names == ["a", "b"] and videos.videos == [[0, 1, 2, 3, 4], [5, 6]]
    assert [int(item["video"]) for item in videos] == [0, 1]
    assert videos[0]["video"].dtype == torch.int64 and videos[0]["video"].shape == ()
    assert VideoDataset(hand_data, max_videos=1).names == ["a"]


def test_tiny_synth_train_clips_and_batches(tiny_synth, data_module):
    dm = data_module(TrackClipDataModule, tiny_synth / "posetrack18", clip_length=3)
    data = dm.train_data
    expected = 0  # windows of 3 labelled frames x tracks labelled in all three
    for frames in data.videos().values():
        for start in range(len(frames) - 2):
            window = frames[start:start + 3]
            if all(f.is_labeled for f in window):
                expected += len(set.intersection(*[
                    {p.track_id for p in f.poses if p.num_visible > 0} for f in window]))
    assert len(dm.train_set) == expected > 0
    crowdedness = persons_per_frame(data)
    for index in (0, len(dm.train_set) - 1):
        sample = dm.train_set[index]
        frames = [data.frames[i] for i in sample["frame"].tolist()]
        assert len({f.video for f in frames}) == 1
        assert [f.frame_index for f in frames] == list(range(frames[0].frame_index,
                                                             frames[0].frame_index + 3))
        assert float(sample["persons_per_frame"]) == pytest.approx(crowdedness[frames[0].video])
        for t, frame in enumerate(frames):
            pose = track_pose(frame, int(sample["track_id"]))
            present = pose.keypoints[:, 2] > 0
            back = apply_affine(sample["keypoints"][t].numpy()[present, :2],
                                sample["crop_to_image"][t].numpy())
            np.testing.assert_allclose(back, pose.keypoints[present, :2], atol=1e-3)
    batch = next(iter(dm.train_dataloader()))
    for key, (dtype, shape) in KEYS.items():
        assert batch[key].dtype == dtype and tuple(batch[key].shape) == (4,) + shape, key


def test_tiny_synth_caps_and_video_validation(tiny_synth, data_module):
    full = data_module(TrackClipDataModule, tiny_synth / "posetrack18", clip_length=2)
    capped = data_module(TrackClipDataModule, tiny_synth / "posetrack18", clip_length=2,
                         max_train_samples=5, max_val_samples=1)
    clips = capped.train_set.clips
    assert len(clips) == 5 and clips[0] == full.train_set.clips[0]
    assert clips[-1] == full.train_set.clips[-1]  # spread over the videos, not the first five
    val = full.val_set
    names = list(full.val_data.videos())
    assert isinstance(val, VideoDataset) and val.names == names and len(names) == 2
    for name, indices in zip(val.names, val.videos):
        frames = [full.val_data.frames[i] for i in indices]
        assert {f.video for f in frames} == {name}
        assert [f.frame_index for f in frames] == list(range(8))
    loader = full.val_dataloader()
    assert loader.batch_size == 1
    assert [batch["video"].tolist() for batch in loader] == [[0], [1]]
    assert len(full.test_dataloader()) == 2
    assert capped.val_set.names == names[:1]


def test_no_window_names_the_keys_to_change(tiny_synth, data_module):
    # The tiny train videos label 6 consecutive frames of 8.
    with pytest.raises(ConfigError, match=r"data\.clip_length.*data\.clip_stride"):
        data_module(TrackClipDataModule, tiny_synth / "posetrack18", clip_length=7)
    assert len(data_module(TrackClipDataModule, tiny_synth / "posetrack18", clip_length=6).train_set) > 0


def test_missing_track_id_names_the_video_file(tiny_synth, data_config, expect_input_error):
    dm = TrackClipDataModule(data_config(tiny_synth / "posetrack18"))
    data = load_split(dm.cfg, "train")
    frame = [f for f in data.frames if f.is_labeled][-1]
    frame.poses[0].track_id = -1
    file = Path(data.source) / f"{frame.video}.json"
    expect_input_error(lambda: dm.make_dataset(data, "train", train=True), file=file,
                       record=f"annotation {frame.poses[0].ann_id} (image {frame.image_id})",
                       field="track_id")


def test_registered_as_a_data_module():
    assert get_datamodule_cls(METHODS["simple_baseline"], "track_clips") is TrackClipDataModule
