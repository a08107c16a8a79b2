import json

import cv2
import numpy as np
import pytest

from vidpose.errors import InputError
from vidpose.formats.posetrack import (
    read_posetrack,
    write_posetrack_predictions,
    write_posetrack_video,
)
from vidpose.keypoints import COCO17, POSETRACK18
from vidpose.pose import PoseDataset

VIDEOS = ["003418_mpii_test", "009473_mpii_test", "012834_mpii_test"]


def test_real_posetrack_fixture(fixtures):
    root = fixtures / "posetrack18"
    ds = read_posetrack(root / "annotations" / "val", outside_tolerance=30)
    assert ds.schema is POSETRACK18 and ds.image_root == str(root)
    assert [f.video for f in ds.frames] == VIDEOS
    assert all(f.frame_index == 0 and f.is_labeled for f in ds.frames)
    assert all((f.width, f.height) == (1920, 1080) for f in ds.frames)
    assert [len(f.poses) for f in ds.frames] == [1, 2, 11]
    assert [len(f.ignore_regions) for f in ds.frames] == [9, 2, 4]
    assert ds.frames[0].ignore_regions[0].shape == (66, 2)
    first = ds.frames[0].poses[0]
    np.testing.assert_array_equal(first.head_box, [346, 337, 296, 237])
    np.testing.assert_allclose(first.keypoints[1], [542.2835693, 599.2855835, 1])  # head_bottom
    assert first.track_id == 0 and first.ann_id == 1003418000000
    assert [p.track_id for p in ds.frames[2].poses] == list(range(11))
    ears = np.stack([p.keypoints[3:5] for f in ds.frames for p in f.poses])
    assert not ears.any()


def test_real_fixture_joint_outside_image_needs_the_tolerance(fixtures, expect_input_error):
    folder = fixtures / "posetrack18" / "annotations" / "val"
    err = expect_input_error(lambda: read_posetrack(folder), file=folder / f"{VIDEOS[2]}.json",
                             record="annotation 1012834000010", field="keypoints")
    assert "head_top" in str(err) and "outside_tolerance" in str(err)


def test_real_single_video_file(fixtures):
    root = fixtures / "posetrack18"
    ds = read_posetrack(root / "annotations" / "val" / f"{VIDEOS[1]}.json")
    assert ds.image_root == str(root) and [f.video for f in ds.frames] == [VIDEOS[1]]
    assert sum(len(f.poses) for f in ds.frames) == 2


def test_real_fixture_round_trip(fixtures, tmp_path, assert_same_frames):
    root = fixtures / "posetrack18"
    ds = read_posetrack(root / "annotations" / "val", outside_tolerance=30)
    for video, frames in ds.videos().items():
        path = tmp_path / "annotations" / "val" / f"{video}.json"
        write_posetrack_video(path, frames, video=video)
    again = read_posetrack(tmp_path / "annotations" / "val", root, outside_tolerance=30)
    assert_same_frames(again.frames, ds.frames)


def _two_videos(make_frames):
    a = make_frames(5, video="000001_synth")
    b = make_frames(3, video="000002_synth", first_id=200)
    a[0].ignore_regions = [np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 8.5]]),
                           np.array([[50.0, 40.0], [60.0, 40.0], [60.0, 47.0], [55.0, 47.0]])]
    return a, b


def test_ground_truth_round_trip(tmp_path, make_frames, assert_same_frames):
    a, b = _two_videos(make_frames)
    folder = tmp_path / "annotations" / "val"
    write_posetrack_video(folder / "000001_synth.json", a, video="000001_synth")
    write_posetrack_video(folder / "000002_synth.json", b, video="000002_synth")
    ds = read_posetrack(folder, check_images=False)
    assert ds.image_root == str(tmp_path) and ds.schema is POSETRACK18
    assert [f.is_labeled for f in ds.frames] == [True, False, True, False, True, True, False, True]
    assert_same_frames(ds.frames, a + b, ignore=("ann_id", "area"))
    data = json.loads((folder / "000001_synth.json").read_text())
    image = data["images"][0]
    assert (image["vid_id"], image["nframes"], image["frame_id"]) == ("000001_synth", 5, 100)
    assert image["ignore_regions_y"][0] == [0.0, 0.0, 8.5]
    assert set(data["annotations"][0]) >= {"keypoints", "bbox", "bbox_head", "track_id", "image_id",
                                           "id", "category_id"}


def test_ground_truth_writer_zeroes_the_ears(tmp_path, make_frames):
    frames = make_frames(1, video="v")
    frames[0].poses[0].keypoints[3] = [5.0, 5.0, 2.0]
    write_posetrack_video(tmp_path / "v.json", frames, video="v")
    data = json.loads((tmp_path / "v.json").read_text())
    assert data["annotations"][0]["keypoints"][9:15] == [0, 0, 0, 0, 0, 0]
    assert data["annotations"][0]["num_keypoints"] == 15


def test_predictions_round_trip(tmp_path, make_frames):
    a, b = _two_videos(make_frames)
    rng = np.random.default_rng(0)
    for frame in a + b:
        for pose in frame.poses:
            pose.keypoints[:, 2] = rng.uniform(0.05, 1.0, 17).round(3)
            pose.keypoints[3:5] = 0
            pose.keypoints[12] = 0  # a joint the decoder dropped
            pose.score = float(rng.uniform(0.5, 1.0))
    paths = write_posetrack_predictions(tmp_path / "pred",
                                        PoseDataset(a + b, POSETRACK18, str(tmp_path)))
    assert [p.name for p in paths] == ["000001_synth.json", "000002_synth.json"]
    ds = read_posetrack(tmp_path / "pred", tmp_path, check_images=False)
    got_poses = [p for f in ds.frames for p in f.poses]
    for got, sent in zip(got_poses, [p for f in a + b for p in f.poses], strict=True):
        np.testing.assert_array_equal(got.keypoints, sent.keypoints)
        np.testing.assert_array_equal(got.extra["visibility"], sent.keypoints[:, 2] > 0)
        assert (got.track_id, got.score) == (sent.track_id, sent.score)
        np.testing.assert_array_equal(got.box, sent.box)
    pred = json.loads(paths[0].read_text())
    write_posetrack_video(tmp_path / "gt.json", _two_videos(make_frames)[0], video="000001_synth")
    assert pred["images"] == json.loads((tmp_path / "gt.json").read_text())["images"]
    ann = pred["annotations"][0]
    assert ann["keypoints"][36:39] == [0, 0, 0] and ann["scores"][12] == 0
    assert ann["keypoints"][2] == 1 and ann["scores"][0] == a[0].poses[0].keypoints[0, 2]


def test_predicted_joints_may_leave_the_image(tmp_path, make_frames, expect_input_error):
    frames = make_frames(1, video="v")
    frames[0].poses[0].keypoints[5, :2] = [-10.0, 60.0]  # off the 64x48 image
    write_posetrack_predictions(tmp_path, PoseDataset(frames, POSETRACK18, str(tmp_path)))
    ds = read_posetrack(tmp_path / "v.json", tmp_path, check_images=False)
    np.testing.assert_array_equal(ds.frames[0].poses[0].keypoints[5], [-10.0, 60.0, 2.0])
    write_posetrack_video(tmp_path / "gt" / "v.json", frames, video="v")
    expect_input_error(lambda: read_posetrack(tmp_path / "gt" / "v.json", check_images=False),
                       file=tmp_path / "gt" / "v.json", record="annotation 1", field="keypoints")


def test_predictions_need_posetrack_order(tmp_path, make_frames):
    with pytest.raises(ValueError, match="posetrack18 order"):
        write_posetrack_predictions(tmp_path,
                                    PoseDataset(make_frames(1, "v"), COCO17, str(tmp_path)))


def test_image_size_from_the_image_when_the_file_has_none(tmp_path, make_frames):
    frames = make_frames(2, video="v")
    for frame in frames:
        frame.width = frame.height = 0  # real PoseTrack18 images carry no size
    folder = tmp_path / "annotations" / "val"
    write_posetrack_video(folder / "v.json", frames, video="v")
    assert read_posetrack(folder, check_images=False).frames[0].width == 0  # unknown
    for frame in frames:
        (tmp_path / frame.file_name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / frame.file_name), np.zeros((50, 70, 3), np.uint8))
    ds = read_posetrack(folder)
    assert [(f.width, f.height) for f in ds.frames] == [(70, 50), (70, 50)]


def _video_file(tmp_path, make_frames, mutate):
    path = tmp_path / "annotations" / "val" / "v.json"
    write_posetrack_video(path, make_frames(3, video="v"), video="v")
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))
    return path


BAD_INPUTS = {
    "empty video": (lambda d: d.update(images=[], annotations=[]), None, "images"),
    "two videos in one file": (lambda d: d["images"][2].update(vid_id="other"), None, "vid_id"),
    "missing track id": (lambda d: d["annotations"][1].pop("track_id"), "annotation 2", "track_id"),
    "scores of the wrong length": (lambda d: d["annotations"][0].update(scores=[0.5] * 15),
                                   "annotation 1", "scores"),
    "ignore regions x without y": (lambda d: d["images"][0].update(ignore_regions_x=[[1, 2, 3]]),
                                   "image 100", "ignore_regions_x"),
    "negative head box": (lambda d: d["annotations"][0]["bbox_head"].__setitem__(3, -1),
                          "annotation 1", "bbox_head"),
    "is_labeled not a bool": (lambda d: d["images"][1].update(is_labeled="yes"), "image 101",
                              "is_labeled"),
    "visibility flag 5": (lambda d: d["annotations"][3]["keypoints"].__setitem__(2, 5),
                          "annotation 4", "keypoints"),
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_names_file_record_and_field(kind, tmp_path, make_frames, expect_input_error):
    mutate, record, field = BAD_INPUTS[kind]
    path = _video_file(tmp_path, make_frames, mutate)
    expect_input_error(lambda: read_posetrack(path, check_images=False), file=path, record=record,
                       field=field)


def test_image_id_shared_by_two_videos(tmp_path, make_frames, expect_input_error):
    folder = tmp_path / "annotations" / "val"
    write_posetrack_video(folder / "a.json", make_frames(2, video="a"), video="a")
    write_posetrack_video(folder / "b.json", make_frames(2, video="b", first_id=101), video="b")
    expect_input_error(lambda: read_posetrack(folder, check_images=False), file=folder / "b.json",
                       record="image 101", field="id")


def test_folder_without_videos(tmp_path):
    with pytest.raises(InputError, match="no <video>.json"):
        read_posetrack(tmp_path)


def test_writer_refuses_an_empty_video(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        write_posetrack_video(tmp_path / "v.json", [], video="v")
