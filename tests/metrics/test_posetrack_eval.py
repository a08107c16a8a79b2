"""PoseTrack mAP/MOTA: poseval's numbers on the conformance cases, hand cases, bad input."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from vidpose.cli import main
from vidpose.errors import InputError
from vidpose.formats.cocostyle import category_record
from vidpose.formats.posetrack17 import SLOT_OF_ID
from vidpose.keypoints import POSETRACK18
from vidpose.metrics.posetrack import evaluate_posetrack, evaluate_videos, voc_ap
from vidpose.metrics.posetrack_inputs import POSEVAL_FROM_POSETRACK18, inside_polygon, read_eval_file
from vidpose.metrics.posetrack_reference import evaluate_reference, random_videos

CONFORMANCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance" / "posetrack_eval"
CASES = sorted(p.stem for p in (CONFORMANCE / "expected").glob("*.json")) if CONFORMANCE.is_dir() else []
KEYS = ("ap", "mota", "motp", "mot_precision", "mot_recall")


def _conformance() -> Path:
    if not CONFORMANCE.is_dir():
        pytest.skip("../shared/conformance not found")
    return CONFORMANCE.resolve()


def _values(values: list) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


@pytest.mark.parametrize("case", CASES or ["(none)"])
def test_conformance_matches_poseval(case):
    root = _conformance()
    expected = json.loads((root / "expected" / f"{case}.json").read_text())
    got = evaluate_posetrack(root / "gt", root / "cases" / case).as_dict()
    assert got["joint_names"] == expected["joint_names"]
    for key in KEYS:
        ours, theirs = _values(got[key]), np.array(expected[key], dtype=np.float64)
        assert np.array_equal(np.isnan(ours), np.isnan(theirs)), key
        finite = ~np.isnan(theirs)
        assert np.abs(ours[finite] - theirs[finite]).max() <= 0.01, (key, ours, theirs)


def _reversed_listing(monkeypatch):
    """Make the file system list folders in reverse name order (as another machine might)."""
    real = os.scandir

    def scandir(path):
        with real(path) as entries:
            return iter(sorted(entries, key=lambda e: e.name, reverse=True))

    monkeypatch.setattr("vidpose.metrics.posetrack_inputs.os.scandir", scandir)


@pytest.mark.parametrize("case", ["jitter_large", "score_inverted"])
def test_default_video_order_does_not_depend_on_the_folder_listing(case, monkeypatch):
    # The two cases whose AP changes with the order of tied scores (0.026 and 0.256 points).
    root = _conformance()
    expected = json.loads((root / "expected" / f"{case}.json").read_text())
    _reversed_listing(monkeypatch)
    got = evaluate_posetrack(root / "gt", root / "cases" / case).as_dict()
    np.testing.assert_allclose(got["ap"], expected["ap"], atol=0.01)
    # "directory" does follow the listing (poseval unchanged on this machine): it differs.
    listed = evaluate_posetrack(root / "gt", root / "cases" / case, video_order="directory")
    assert np.abs(np.array(listed.ap) - np.array(expected["ap"])).max() > 0.01


def test_cli_video_order_defaults_to_sorted(monkeypatch, tmp_path, capsys):
    root = _conformance()
    _reversed_listing(monkeypatch)
    out = tmp_path / "r.json"
    assert main(["eval", "posetrack", "--gt", str(root / "gt"), "--pred",
                 str(root / "cases" / "score_inverted"), "--out", str(out)]) == 0
    expected = json.loads((root / "expected" / "score_inverted.json").read_text())
    np.testing.assert_allclose(json.loads(out.read_text())["ap"], expected["ap"], atol=0.01)


def _keypoints(xy: np.ndarray, present: np.ndarray) -> list[float]:
    """17 x (x, y, flag) from (15, 2) positions in poseval order, absent joints 0, 0, 0."""
    kps = np.zeros((17, 3))
    kps[POSEVAL_FROM_POSETRACK18, :2] = xy
    kps[POSEVAL_FROM_POSETRACK18, 2] = 1
    kps[POSEVAL_FROM_POSETRACK18[~present]] = 0
    return kps.ravel().tolist()


def _video(path: Path, frames: list[list[dict]], *, predictions: bool, ignore: dict | None = None,
           scores: bool = True) -> None:
    """Write a PoseTrack18 file; each person is {"xy": (15, 2), "track": id, ["has"], ["score"]}."""
    images, annotations = [], []
    for t, persons in enumerate(frames):
        image = {"id": 1000 + t, "file_name": f"images/v/{t:06d}.jpg", "vid_id": "v",
                 "width": 1000, "height": 1000, "is_labeled": True}
        if ignore and t in ignore:
            image["ignore_regions_x"] = [ignore[t][:, 0].tolist()]
            image["ignore_regions_y"] = [ignore[t][:, 1].tolist()]
        images.append(image)
        for i, person in enumerate(persons):
            has = person.get("has", np.ones(15, bool))
            ann = {"image_id": 1000 + t, "category_id": 1, "track_id": person["track"],
                   "keypoints": _keypoints(np.asarray(person["xy"], float), has)}
            if predictions:
                if scores:
                    ann["scores"] = [float(person.get("score", 0.5))] * 17
            else:
                ann.update(id=10 * (1000 + t) + i, scores=[], bbox_head=[0, 0, 10, 0])  # head 6 px
            annotations.append(ann)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [category_record(POSETRACK18)]}))


def _person(x: float, track: int, **extra) -> dict:
    xy = np.column_stack([np.full(15, x), 100.0 + 50 * np.arange(15)])
    return {"xy": xy, "track": track, **extra}


def test_pckh_threshold_is_half_a_head_size(tmp_path):
    # Head box 10 x 0 -> head size 6 px -> a joint counts within 3 px.
    _video(tmp_path / "gt" / "v.json", [[_person(100, 1)]], predictions=False)
    near = _person(102.9, 1)
    far = _person(103.1, 1)
    _video(tmp_path / "near" / "v.json", [[near]], predictions=True)
    _video(tmp_path / "far" / "v.json", [[far]], predictions=True)
    assert evaluate_posetrack(tmp_path / "gt", tmp_path / "near").map == pytest.approx(100.0)
    assert evaluate_posetrack(tmp_path / "gt", tmp_path / "far").map == pytest.approx(0.0)


def test_one_joint_ap_by_hand(tmp_path):
    # Two GT persons; three predictions with scores 0.9 (hit), 0.8 (false), 0.7 (hit):
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> VOC AP = 0.5 * 1 + 0.5 * 2/3.
    one = np.zeros(15, bool)
    one[0] = True
    gt = [[_person(100, 1, has=one), _person(400, 2, has=one)]]
    pred = [[_person(100, 1, has=one, score=0.9), _person(700, 3, has=one, score=0.8),
             _person(400, 2, has=one, score=0.7)]]
    _video(tmp_path / "gt" / "v.json", gt, predictions=False)
    _video(tmp_path / "pred" / "v.json", pred, predictions=True)
    result = evaluate_posetrack(tmp_path / "gt", tmp_path / "pred")
    assert result.ap[0] == pytest.approx(100 * (0.5 + 0.5 * 2 / 3))
    assert result.ap[1] == 0.0  # never predicted
    assert result.ap[-1] == pytest.approx(np.mean(result.ap[:15]))
    assert voc_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(0.5 + 1 / 3)


def test_mota_counts_an_id_switch_and_skips_the_last_frame(tmp_path):
    # Two persons over 4 frames; the predicted ids swap from frame 2 on. Frames 0-2 are
    # evaluated (the last is not): per joint type 2 persons x 3 frames = 6 GT objects, and
    # 2 switches (both persons change partner at frame 2).
    gt = [[_person(100, 1), _person(400, 2)] for _ in range(4)]
    pred = [[_person(100, 7), _person(400, 8)], [_person(100, 7), _person(400, 8)],
            [_person(100, 8), _person(400, 7)], [_person(100, 8), _person(400, 7)]]
    _video(tmp_path / "gt" / "v.json", gt, predictions=False)
    _video(tmp_path / "pred" / "v.json", pred, predictions=True)
    result = evaluate_posetrack(tmp_path / "gt", tmp_path / "pred")
    assert result.counts.objects.tolist() == [6] * 15
    assert result.counts.switches.tolist() == [2] * 15
    assert result.id_switches == 30
    assert result.mota[-1] == pytest.approx(100 * (1 - 2 / 6))
    assert result.motp[-1] == pytest.approx(100.0)
    assert result.map == pytest.approx(100.0)


def test_a_frame_without_predictions_is_one_miss_and_one_false_positive(tmp_path):
    # poseval's special case: whatever the number of GT persons, per joint type.
    gt = [[_person(100, 1), _person(400, 2), _person(700, 3)] for _ in range(3)]
    pred = [[_person(100, 1), _person(400, 2), _person(700, 3)], [], []]
    _video(tmp_path / "gt" / "v.json", gt, predictions=False)
    _video(tmp_path / "pred" / "v.json", pred, predictions=True)
    result = evaluate_posetrack(tmp_path / "gt", tmp_path / "pred")
    assert result.counts.objects.tolist() == [3 + 1] * 15
    assert result.counts.misses.tolist() == [1] * 15
    assert result.counts.false_positives.tolist() == [1] * 15
    assert result.mota[-1] == pytest.approx(100 * (1 - 2 / 4))


def test_ignore_regions_remove_joints_on_both_sides(tmp_path):
    # A false positive inside the ignore region does not count; one outside does.
    region = np.array([[600.0, 0.0], [900.0, 0.0], [900.0, 1000.0], [600.0, 1000.0]])
    gt = [[_person(100, 1)]] * 2
    pred = [[_person(100, 1), _person(700, 2)]] * 2
    _video(tmp_path / "gt" / "v.json", gt, predictions=False, ignore={0: region, 1: region})
    _video(tmp_path / "pred" / "v.json", pred, predictions=True)
    assert evaluate_posetrack(tmp_path / "gt", tmp_path / "pred").map == pytest.approx(100.0)
    _video(tmp_path / "gt2" / "v.json", gt, predictions=False)
    assert evaluate_posetrack(tmp_path / "gt2", tmp_path / "pred").map < 100.0


def test_inside_polygon_excludes_the_boundary():
    square = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])
    points = np.array([[5, 5], [0, 5], [10, 10], [5, 0], [11, 5], [9.999, 0.001]], dtype=float)
    assert inside_polygon(points, square).tolist() == [True, False, False, False, False, True]
    triangle = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    assert inside_polygon(np.array([[2.0, 2.0], [6.0, 6.0], [5.0, 5.0]]), triangle).tolist() == [
        True, False, False]


def test_vectorised_evaluator_equals_the_loop_reference_on_random_videos():
    for seed in range(8):
        videos = random_videos(np.random.default_rng(seed), persons=2 + seed)
        result = evaluate_videos(videos)
        ap, counts = evaluate_reference(videos)
        np.testing.assert_allclose(result.ap[:15], ap, equal_nan=True)
        for name in ("objects", "matches", "switches", "misses", "false_positives"):
            assert np.array_equal(getattr(result.counts, name), getattr(counts, name)), name
        np.testing.assert_allclose(result.counts.distance_sum, counts.distance_sum)
    assert result.id_switches > 0  # the random videos do exercise switches


def test_ground_truth_as_predictions_scores_100(tmp_path):
    root = _conformance()
    with pytest.warns(UserWarning, match="no per-joint 'scores'"):  # GT files carry none
        result = evaluate_posetrack(root / "gt", root / "gt")
    assert result.map == pytest.approx(100.0)
    assert result.mota[-1] == pytest.approx(100.0)


def _annolist(frames) -> dict:
    """Frames (POSETRACK18 Poses) written in the 2017 annolist format."""
    annolist = []
    for frame in frames:
        rects = []
        for pose in frame.poses:
            flags = pose.extra.get("visibility", pose.keypoints[:, 2])
            points = []
            for joint, slot in enumerate(SLOT_OF_ID):
                x, y = pose.keypoints[slot, :2]
                if x == 0 and y == 0 and flags[slot] == 0:
                    continue
                point = {"id": [joint], "x": [x], "y": [y]}
                if "visibility" in pose.extra:
                    point["score"] = [pose.keypoints[slot, 2]]
                points.append(point)
            rect = {"track_id": [pose.track_id], "annopoints": [{"point": points}]}
            if pose.head_box is not None:
                x, y, w, h = pose.head_box
                rect.update(x1=[x], y1=[y], x2=[x + w], y2=[y + h])
            rects.append(rect)
        entry = {"image": [{"name": frame.file_name}], "annorect": rects}
        if frame.ignore_regions:
            entry["ignore_regions"] = [{"point": [{"x": [x], "y": [y]} for x, y in r]}
                                       for r in frame.ignore_regions]
        annolist.append(entry)
    return {"annolist": annolist}


def test_2017_annolist_files_give_the_same_numbers(tmp_path):
    root = _conformance()
    case = "jitter_large"
    for side, folder in (("gt", root / "gt"), ("pred", root / "cases" / case)):
        for file in folder.glob("*.json"):
            out = tmp_path / side / file.name
            out.parent.mkdir(exist_ok=True)
            out.write_text(json.dumps(_annolist(read_eval_file(file))))
    ours = evaluate_posetrack(tmp_path / "gt", tmp_path / "pred", video_order="sorted")
    theirs = evaluate_posetrack(root / "gt", root / "cases" / case, video_order="sorted")
    for key in KEYS:
        np.testing.assert_allclose(getattr(ours, key), getattr(theirs, key), atol=1e-9)


@pytest.fixture()
def pair(tmp_path):
    gt = [[_person(100, 1), _person(400, 2)] for _ in range(3)]
    _video(tmp_path / "gt" / "v.json", gt, predictions=False)
    return tmp_path


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_misaligned_prediction_frames_are_refused(pair):
    _video(pair / "pred" / "v.json", [[_person(100, 1)]] * 2, predictions=True)
    with pytest.raises(InputError, match="2 prediction frames but the ground truth .* has 3") as err:
        evaluate_posetrack(pair / "gt", pair / "pred")
    assert err.value.field == "images"
    _video(pair / "pred" / "v.json", [[_person(100, 1)]] * 3, predictions=True)
    _edit(pair / "pred" / "v.json", lambda d: d["images"].reverse())
    with pytest.raises(InputError, match="frame 0 is image 1002"):
        evaluate_posetrack(pair / "gt", pair / "pred")


def test_duplicate_track_ids_in_a_frame_are_refused(pair):
    _video(pair / "pred" / "v.json", [[_person(100, 5), _person(400, 5)]] * 3, predictions=True)
    with pytest.raises(InputError, match="track id 5 is used by more than one person") as err:
        evaluate_posetrack(pair / "gt", pair / "pred")
    assert err.value.field == "track_id" and err.value.record == "image 1000"


def test_missing_scores_warn_and_rank_last(pair):
    _video(pair / "pred" / "v.json", [[_person(100, 1), _person(400, 2)]] * 3, predictions=True,
           scores=False)
    with pytest.warns(UserWarning, match="no per-joint 'scores'.*-9999"):
        result = evaluate_posetrack(pair / "gt", pair / "pred")
    assert result.map == pytest.approx(100.0)


def test_category_without_keypoint_names_is_refused(pair):
    _video(pair / "pred" / "v.json", [[_person(100, 1)]] * 3, predictions=True)
    _edit(pair / "pred" / "v.json", lambda d: d["categories"][0].pop("keypoints"))
    with pytest.raises(InputError, match="keypoints") as err:
        evaluate_posetrack(pair / "gt", pair / "pred")
    assert err.value.field == "categories" and "pred" in err.value.file


def test_video_missing_from_predictions_is_named(pair):
    _video(pair / "gt" / "w.json", [[_person(100, 1)]], predictions=False)
    _video(pair / "pred" / "v.json", [[_person(100, 1)]] * 3, predictions=True)
    with pytest.raises(InputError, match="1 of 2 ground-truth videos have no prediction file: w.json"):
        evaluate_posetrack(pair / "gt", pair / "pred")


def test_ground_truth_without_head_box_is_refused(pair):
    _video(pair / "pred" / "v.json", [[_person(100, 1)]] * 3, predictions=True)
    _edit(pair / "gt" / "v.json", lambda d: d["annotations"][1].pop("bbox_head"))
    with pytest.raises(InputError, match="head box") as err:
        evaluate_posetrack(pair / "gt", pair / "pred")
    assert err.value.record == "annotation 10001" and err.value.field == "bbox_head"


def test_cli_prints_poseval_tables_and_writes_json(pair, capsys):
    _video(pair / "pred" / "v.json", [[_person(100, 1), _person(401, 2)]] * 3, predictions=True)
    out = pair / "result.json"
    assert main(["eval", "posetrack", "--gt", str(pair / "gt"), "--pred", str(pair / "pred"),
                 "--out", str(out), "--per-video"]) == 0
    printed = capsys.readouterr().out
    assert "& Head  & Shou" in printed and "& MOTA & MOTA" in printed and "== v" in printed
    data = json.loads(out.read_text())
    assert set(data) == set(KEYS) | {"joint_names", "id_switches", "per_video"}
    assert data["ap"][-1] == pytest.approx(100.0) and data["id_switches"] == 0
    assert set(data["per_video"]) == {"v"}


def test_cli_json_has_the_conformance_keys_and_nan_where_poseval_has_nan(tmp_path, capsys):
    root = _conformance()
    out = tmp_path / "missing_joints.json"
    assert main(["eval", "posetrack", "--gt", str(root / "gt"), "--pred",
                 str(root / "cases" / "missing_joints"), "--out", str(out)]) == 0
    data, expected = json.loads(out.read_text()), json.loads(
        (root / "expected" / "missing_joints.json").read_text())
    assert set(data) == set(expected) | {"id_switches"}
    assert np.array_equal(np.isnan(data["mot_precision"]), np.isnan(expected["mot_precision"]))


def test_cli_reports_bad_input_in_one_line(pair, capsys):
    assert main(["eval", "posetrack", "--gt", str(pair / "gt"), "--pred", str(pair / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vidpose: error: ") and "nope" in err and err.count("\n") == 1
