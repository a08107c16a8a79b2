"""The evaluator's whole-array path: same arrays and same first error as the per-record walk,
ignore regions, contested CLEAR-MOT cells, and a light start-up."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.path import Path as MplPath

import vidpose.metrics.clear_mot as clear_mot
from vidpose.errors import InputError
from vidpose.formats.jsonio import load_json
from vidpose.formats.posetrack import VideoArrays
from vidpose.metrics.posetrack import evaluate_videos
from vidpose.metrics.posetrack_inputs import (
    NUM_JOINTS,
    EvalFrame,
    EvalVideo,
    inside_regions,
    read_eval_arrays,
    read_eval_file,
)
from vidpose.metrics.posetrack_reference import evaluate_reference, random_videos, write_posetrack18_set

CONFORMANCE = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "posetrack_eval"


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    """A few videos shaped like real PoseTrack18 files (ignore regions, unlabelled frames)."""
    root = tmp_path_factory.mktemp("set")
    write_posetrack18_set(root / "gt", root / "pred", seed=1, videos=3, labelled_frames=60,
                          poses=240)
    return root


def _walk(path: Path) -> VideoArrays:
    return VideoArrays.from_frames(read_eval_file(path))


def _assert_same(a: VideoArrays, b: VideoArrays) -> None:
    assert a.image_ids == b.image_ids and a.file_names == b.file_names
    assert a.ann_ids == b.ann_ids
    for name in ("frame", "keypoints", "scores", "scored", "track", "head_box",
                 "region_vertices", "region_sizes", "region_frame"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape and x.dtype.kind == y.dtype.kind, name
        np.testing.assert_array_equal(x, y, err_msg=name)


def test_array_reader_gives_the_walks_arrays_without_walking(small_set, monkeypatch):
    files = sorted((small_set / "gt").glob("*.json")) + sorted((small_set / "pred").glob("*.json"))
    if CONFORMANCE.is_dir():
        files += sorted((CONFORMANCE / "gt").glob("*.json"))[:2]
    expected = {f: _walk(f) for f in files}

    def no_walk(*args, **kwargs):
        raise AssertionError("the per-record walk ran on a valid file")

    monkeypatch.setattr("vidpose.formats.posetrack.read_video", no_walk)
    for file in files:
        _assert_same(read_eval_arrays(file), expected[file])


def _first_annotation(data: dict) -> dict:
    """The first predicted person (with per-joint scores), else the first annotation."""
    return next((a for a in data["annotations"] if a.get("scores")), data["annotations"][0])


# (description, change) pairs: each makes a file the walk refuses or reads specially.
CHANGES = [
    ("numeric string in keypoints", lambda d: _first_annotation(d)["keypoints"].__setitem__(4, "1.5")),
    ("boolean in keypoints", lambda d: _first_annotation(d)["keypoints"].__setitem__(0, True)),
    ("NaN in keypoints", lambda d: _first_annotation(d)["keypoints"].__setitem__(0, math.nan)),
    ("visibility flag 3", lambda d: _first_annotation(d)["keypoints"].__setitem__(2, 3)),
    ("short keypoints", lambda d: _first_annotation(d)["keypoints"].pop()),
    ("image_id unknown", lambda d: d["annotations"][5].update(image_id=123)),
    ("image_id missing", lambda d: d["annotations"][5].pop("image_id")),
    ("category unknown", lambda d: d["annotations"][5].update(category_id=7)),
    ("track id a bool", lambda d: d["annotations"][3].update(track_id=True)),
    ("track id beyond int64", lambda d: d["annotations"][3].update(track_id=2 ** 64)),
    ("track id missing", lambda d: d["annotations"][3].pop("track_id")),
    ("head box negative", lambda d: d["annotations"][1].update(bbox_head=[0, 0, -1, 2])),
    ("head box of strings", lambda d: d["annotations"][1].update(bbox_head=["0", 0, 1, 2])),
    ("bbox short", lambda d: d["annotations"][1].update(bbox=[0, 0, 1])),
    ("scores too short", lambda d: _first_annotation(d).update(scores=[0.5] * 16)),
    ("score a string", lambda d: _first_annotation(d).update(scores=[0.5] * 16 + ["0.5"])),
    ("person score a bool", lambda d: _first_annotation(d).update(score=False)),
    ("area negative", lambda d: d["annotations"][2].update(area=-1)),
    ("iscrowd 2", lambda d: d["annotations"][2].update(iscrowd=2)),
    ("iscrowd unhashable", lambda d: d["annotations"][2].update(iscrowd=[0])),
    ("annotation id repeated", lambda d: d["annotations"][2].update(id=d["annotations"][1].get("id", 5))
     or d["annotations"][1].setdefault("id", 5)),
    ("image id repeated", lambda d: d["images"][1].update(id=d["images"][0]["id"])),
    ("file name climbs out", lambda d: d["images"][1].update(file_name="../../x.jpg")),
    ("file name harmless '..'", lambda d: d["images"][1].update(file_name="images/a/../b.jpg")),
    ("file name empty", lambda d: d["images"][1].update(file_name="")),
    ("width zero", lambda d: d["images"][1].update(width=0)),
    ("is_labeled a string", lambda d: d["images"][1].update(is_labeled="yes")),
    ("regions of unequal count", lambda d: d["images"][0].update(ignore_regions_x=[[1, 2]],
                                                                  ignore_regions_y=[])),
    ("region with a string", lambda d: d["images"][0].update(ignore_regions_x=[[1, "2", 3]],
                                                              ignore_regions_y=[[1, 2, 3]])),
    ("two videos in one file", lambda d: d["images"][1].update(vid_id="other")),
    ("segmentation polygons", lambda d: d["annotations"][0].update(segmentation=[[0, 0, 5, 0, 5, 5]])),
    ("no images", lambda d: d.update(images=[])),
    ("annotations not a list", lambda d: d.update(annotations={})),
    ("an annotation not an object", lambda d: d["annotations"].append(7)),
]


@pytest.mark.parametrize("description, change", CHANGES, ids=[c[0] for c in CHANGES])
def test_array_reader_refuses_what_the_walk_refuses_with_its_message(small_set, tmp_path,
                                                                     description, change):
    for side in ("gt", "pred"):
        source = sorted((small_set / side).glob("*.json"))[0]
        data = json.loads(source.read_text())
        change(data)
        path = tmp_path / side / source.name
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(data))  # NaN is written as the standard library does
        try:
            expected = _walk(path)
        except InputError as err:
            with pytest.raises(InputError) as got:
                read_eval_arrays(path)
            assert str(got.value) == str(err)
            assert (got.value.file, got.value.record, got.value.field) == (err.file, err.record,
                                                                          err.field)
        else:  # the walk reads it: so do the arrays, to the same values
            _assert_same(read_eval_arrays(path), expected)


def test_inside_regions_agrees_with_matplotlib_on_random_polygons():
    rng = np.random.default_rng(0)
    polygons, groups = [], []
    for frame in range(40):
        for _ in range(rng.integers(0, 3)):
            corners = rng.integers(3, 12)
            angle = np.sort(rng.uniform(0, 2 * np.pi, corners))
            radius = rng.uniform(20, 80, corners)
            centre = rng.uniform(0, 200, 2)
            polygons.append(centre + radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1))
            groups.append(frame)
    points = rng.uniform(-50, 250, (4000, 2))  # never exactly on an edge
    point_group = rng.integers(0, 40, len(points))
    got = inside_regions(points, point_group, np.concatenate(polygons),
                         np.array([len(p) for p in polygons]), np.array(groups))
    expected = np.zeros(len(points), bool)
    for polygon, group in zip(polygons, groups):
        mine = point_group == group
        expected[mine] |= MplPath(polygon).contains_points(points[mine])
    assert got.any() and np.array_equal(got, expected)


def test_crowded_videos_solve_contested_cells_as_the_loop_reference(monkeypatch):
    solved = []
    original = clear_mot._Frame.solve
    monkeypatch.setattr(clear_mot._Frame, "solve",
                        lambda self, partner: solved.append(1) or original(self, partner))
    for seed in range(6):
        videos = random_videos(np.random.default_rng(100 + seed), videos=2, frames=12,
                               persons=10 + seed)
        result = evaluate_videos(videos)
        ap, counts = evaluate_reference(videos)
        np.testing.assert_allclose(result.ap[:15], ap, equal_nan=True)
        for name in ("objects", "matches", "switches", "misses", "false_positives"):
            assert np.array_equal(getattr(result.counts, name), getattr(counts, name)), name
        np.testing.assert_allclose(result.counts.distance_sum, counts.distance_sum)
    assert len(solved) > 20  # the state-dependent path did run


def test_json_the_fast_parser_refuses_is_read_as_the_standard_library_reads_it(tmp_path):
    path = tmp_path / "nan.json"
    path.write_text('{"a": [NaN, 1e999, 18446744073709551616]}')
    data = load_json(path)
    assert math.isnan(data["a"][0]) and data["a"][1] == math.inf
    assert data["a"][2] == 2 ** 64 and isinstance(data["a"][2], int)


def test_eval_posetrack_starts_without_torch_scipy_or_rich(small_set, tmp_path):
    """The evaluator's process imports only what it uses (torch alone costs seconds)."""
    heavy = ("torch", "lightning", "scipy.optimize", "rich", "pycocotools", "PIL", "omegaconf")
    code = ("import sys; from vidpose.cli import main; "
            f"assert main(['eval', 'posetrack', '--gt', {str(small_set / 'gt')!r}, '--pred', "
            f"{str(small_set / 'pred')!r}, '--out', {str(tmp_path / 'r.json')!r}]) == 0; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_video_whose_every_match_is_contested_counts_as_the_loop_reference():
    # Two persons on top of each other, one joint each, predicted twice: no match is
    # settled in advance, so the contested cells are solved with no settled history (this
    # indexed an empty array).
    frames = []
    for _ in range(3):
        gt_xy = np.full((2, NUM_JOINTS, 2), 100.0)
        gt_xy[1] += 1
        has = np.zeros((2, NUM_JOINTS), bool)
        has[:, 0] = True
        frames.append(EvalFrame(gt_xy, has, np.array([0, 1]), np.array([30.0, 30.0]),
                                gt_xy + 0.5, has.copy(), np.ones((2, NUM_JOINTS)), np.array([5, 6])))
    videos = [EvalVideo.from_frames("stacked", frames)]
    result = evaluate_videos(videos)
    _, counts = evaluate_reference(videos)
    for name in ("objects", "matches", "switches", "misses", "false_positives"):
        assert np.array_equal(getattr(result.counts, name), getattr(counts, name)), name
    assert result.counts.matches[0] == 4  # 2 persons x 2 frames (the last one is not evaluated)
