"""Video input (frame folders and video files) and overlay output for `vidpose track`."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from vidpose.keypoints import POSETRACK18
from vidpose.pose import Pose
from vidpose.tracking.video import image_id, open_video, write_overlay
from vidpose.viz import track_color

# RGB colours of the generated frames, one per frame.
COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [40, 80, 160]], np.uint8)
# Written out of order; natural name order puts frame_10 after frame_3.
NAMES = ["frame_3.png", "frame_1.png", "frame_11.png", "frame_2.png", "frame_10.png"]
ORDERED = ["frame_1.png", "frame_2.png", "frame_3.png", "frame_10.png", "frame_11.png"]


def _rgb_image(colour, width=48, height=32) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, np.uint8), (height, width, 3)).copy()


def _write_rgb(path: Path, image: np.ndarray) -> None:
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


@pytest.fixture()
def frame_folder(tmp_path) -> Path:
    """5 PNG frames, frame i (in name order) coloured COLOURS[i], plus a non-image file."""
    folder = tmp_path / "street"
    folder.mkdir()
    for name in NAMES:
        _write_rgb(folder / name, _rgb_image(COLOURS[ORDERED.index(name)]))
    (folder / "notes.txt").write_text("not a frame")
    return folder


@pytest.fixture()
def video_file(tmp_path) -> Path:
    """A 5-frame 64x48 mp4 at 12 fps, frame i coloured COLOURS[i]."""
    path = tmp_path / "walk.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (64, 48))
    for colour in COLOURS:
        writer.write(cv2.cvtColor(_rgb_image(colour, 64, 48), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_frame_folder_round_trip(frame_folder):
    video = open_video(frame_folder)
    assert (video.name, video.fps, len(video)) == ("street", 25.0, 5)
    items = list(video)
    assert len(items) == 5
    for i, (frame, image) in enumerate(items):
        assert frame.file_name == ORDERED[i]
        assert (frame.video, frame.frame_index, frame.is_labeled, frame.poses) == ("street", i, False, [])
        assert (frame.width, frame.height) == (48, 32)
        assert frame.image_id == 10_000_000_000 + i  # no leading digits: video number 0
        assert image.shape == (32, 48, 3) and image.dtype == np.uint8
        np.testing.assert_array_equal(image, _rgb_image(COLOURS[i]))  # RGB, lossless PNG
    # A second pass decodes again and gives the same frames.
    assert [frame.file_name for frame, _ in video] == ORDERED


def test_video_file_round_trip(video_file):
    video = open_video(video_file)
    assert video.name == "walk"
    assert video.fps == pytest.approx(12.0)
    assert len(video) == 5
    items = list(video)
    assert len(items) == 5
    for i, (frame, image) in enumerate(items):
        assert frame.file_name == f"walk/{i:06d}.jpg"
        assert (frame.video, frame.frame_index, frame.is_labeled) == ("walk", i, False)
        assert (frame.width, frame.height) == (64, 48)
        assert image.shape == (48, 64, 3) and image.dtype == np.uint8
        # Lossy codec: colours come back close, in RGB order.
        assert np.abs(image.astype(int) - COLOURS[i]).mean() < 12, (i, image.mean((0, 1)))


def test_image_ids_follow_posetrack18(tmp_path, frame_folder):
    numbered = frame_folder.rename(tmp_path / "000342_mpii_test")
    ids = [frame.image_id for frame, _ in open_video(numbered)]
    assert ids == [10003420000, 10003420001, 10003420002, 10003420003, 10003420004]
    assert [f.image_id for f, _ in open_video(numbered, video_number=7)] == [image_id(7, i) for i in range(5)]
    assert image_id(7, 3) == 10000070003


def test_missing_path(tmp_path, expect_input_error):
    missing = tmp_path / "nope.mp4"
    expect_input_error(lambda: open_video(missing), file=missing, record=None, field=None)


def test_folder_without_frames(tmp_path, expect_input_error):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "clip.txt").write_text("x")
    err = expect_input_error(lambda: open_video(folder), file=folder, record=None, field=None)
    assert "empty video" in str(err)


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 50])
def test_file_without_decodable_frame(tmp_path, expect_input_error, content):
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    err = expect_input_error(lambda: open_video(path), file=path, record=0, field="frame")
    assert "empty video" in str(err)


def test_undecodable_frame_image_named_at_open(frame_folder, expect_input_error):
    bad = frame_folder / "frame_3.png"  # index 2 in name order
    bad.write_bytes(b"garbage")
    expect_input_error(lambda: open_video(frame_folder), file=bad, record=2, field="image")


def test_truncated_frame_image_named_when_reached(frame_folder, expect_input_error):
    # The header still reads (open succeeds); decoding fails when iteration reaches it,
    # after the earlier frames were delivered one at a time.
    bad = frame_folder / "frame_10.png"  # index 3
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 2])
    video = open_video(frame_folder)
    delivered = []

    def read_all():
        for frame, _ in video:
            delivered.append(frame.frame_index)

    expect_input_error(read_all, file=bad, record=3, field="image")
    assert delivered == [0, 1, 2]


@pytest.mark.parametrize(("size", "field"), [((50, 32), "width"), ((48, 30), "height")])
def test_frames_of_differing_sizes(frame_folder, expect_input_error, size, field):
    odd = frame_folder / "frame_11.png"  # index 4
    _write_rgb(odd, _rgb_image(COLOURS[4], *size))
    err = expect_input_error(lambda: open_video(frame_folder), file=odd, record=4, field=field)
    assert "48x32" in str(err)


def _pose(x0: float, track_id: int) -> Pose:
    rng = np.random.default_rng(track_id)
    keypoints = np.zeros((POSETRACK18.num_keypoints, 3))
    keypoints[:, 0] = rng.uniform(x0 + 10, x0 + 70, len(keypoints))
    keypoints[:, 1] = rng.uniform(40, 100, len(keypoints))
    keypoints[:, 2] = 0.9
    return Pose(keypoints, box=np.array([x0, 30, 80, 80]), track_id=track_id)


def _read_back(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(int))
    capture.release()
    return frames


def test_overlay_draws_each_track_in_its_colour(tmp_path):
    left, right = _pose(20, track_id=1), _pose(170, track_id=2)
    background = np.full((160, 320, 3), 60, np.uint8)
    frames = ((background, [left, right]) for _ in range(4))  # a generator, consumed once
    path = tmp_path / "out" / "overlay.mp4"
    assert write_overlay(path, frames, POSETRACK18, fps=10.0) == 4
    back = _read_back(path)
    assert len(back) == 4 and back[0].shape == (160, 320, 3)
    for x0, own, other in ((20, 1, 2), (170, 2, 1)):
        region = back[1][20:120, x0:x0 + 100]  # the pose's box and its label

        def matches(track_id):
            rgb = np.array(track_color(track_id)[::-1])  # viz colours are BGR
            return int((np.abs(region - rgb).max(-1) < 60).sum())

        assert matches(own) > 50 and matches(other) == 0, (x0, matches(own), matches(other))
    # Away from the poses the frame is the untouched background.
    assert np.abs(back[1][130:, 120:160] - 60).max() < 8


def test_overlay_of_an_opened_video_keeps_size_and_count(video_file, tmp_path):
    video = open_video(video_file)
    path = tmp_path / "walk_overlay.mp4"
    written = write_overlay(path, ((image, []) for _, image in video), POSETRACK18, video.fps)
    assert written == len(video) == 5
    back = _read_back(path)
    assert len(back) == 5 and back[0].shape == (48, 64, 3)
    assert np.abs(back[2] - COLOURS[2]).mean() < 16


def test_overlay_pads_odd_sizes_to_even(tmp_path):
    path = tmp_path / "odd.mp4"
    assert write_overlay(path, [(_rgb_image(COLOURS[1], 65, 47), [])] * 2, POSETRACK18, 5.0) == 2
    back = _read_back(path)
    assert len(back) == 2 and back[0].shape == (48, 66, 3)


def test_overlay_refuses_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        write_overlay(tmp_path / "none.mp4", [], POSETRACK18, 25.0)
    frames = [(_rgb_image(COLOURS[0]), []), (_rgb_image(COLOURS[0], 40, 32), [])]
    with pytest.raises(ValueError, match="frame 1 is 40x32"):
        write_overlay(tmp_path / "sizes.mp4", frames, POSETRACK18, 25.0)
    with pytest.raises(ValueError, match="frame rate"):
        write_overlay(tmp_path / "rate.mp4", frames[:1], POSETRACK18, 0.0)


def test_real_posetrack_clip_opens_as_folder_and_file(fixtures):
    folder = fixtures / "posetrack18" / "videos" / "000001_mpiinew_test"
    as_folder = open_video(folder)
    as_file = open_video(folder / "000001_mpiinew_test.mp4")
    assert as_folder.name == as_file.name == "000001_mpiinew_test"
    # The fixture's folder holds 10 frames; its mp4 is the first 5 of them, at 30 fps.
    assert (len(as_folder), len(as_file)) == (10, 5)
    assert as_file.fps == pytest.approx(30.0)
    folder_items, file_items = list(as_folder), list(as_file)
    assert len(folder_items) == 10 and len(file_items) == 5
    assert [f.file_name for f, _ in folder_items] == [f"{i:06d}.jpg" for i in range(10)]
    for (jpg_frame, jpg), (mp4_frame, mp4) in zip(folder_items, file_items):
        assert (jpg_frame.width, jpg_frame.height) == (mp4_frame.width, mp4_frame.height) == (1280, 720)
        # Same ids for the same frame, and the ids of the PoseTrack18 ground truth.
        assert jpg_frame.image_id == mp4_frame.image_id == 10000010000 + jpg_frame.frame_index
        same = np.abs(jpg.astype(int) - mp4).mean()
        next_jpg = folder_items[jpg_frame.frame_index + 1][1]
        assert same < 6 < np.abs(next_jpg.astype(int) - mp4).mean(), jpg_frame.frame_index


def _video_codec(path: Path) -> str:
    """The first video stream's codec name, as the ffmpeg that imageio-ffmpeg ships reads it."""
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                           capture_output=True, text=True)
    streams = [line for line in probe.stderr.splitlines() if "Video:" in line]
    assert streams, probe.stderr
    return streams[0].split("Video:")[1].split()[0].rstrip(",")


def test_overlay_is_h264_which_browsers_and_wandb_play(tmp_path):
    path = tmp_path / "overlay.mp4"
    frames = [(_rgb_image(colour, 65, 47), [_pose(5, track_id=0)]) for colour in COLOURS]
    assert write_overlay(path, frames, POSETRACK18, 10.0) == 5
    assert _video_codec(path) == "h264"
    assert len(_read_back(path)) == 5


def test_overlay_falls_back_to_mp4v_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if the package were missing
    path = tmp_path / "fallback.mp4"
    with pytest.warns(UserWarning, match="no H.264 encoder") as warned:
        assert write_overlay(path, [(_rgb_image(COLOURS[0]), [])] * 3, POSETRACK18, 10.0) == 3
    assert len(warned) == 1 and "\n" not in str(warned[0].message)
    monkeypatch.undo()
    assert _video_codec(path) == "mpeg4"
    assert len(_read_back(path)) == 3
