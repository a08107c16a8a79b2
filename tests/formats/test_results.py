import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.cocoeval import COCOeval

from vidpose.formats.coco import read_coco
from vidpose.formats.cocostyle import coco_index
from vidpose.formats.results import read_coco_results, write_coco_results
from vidpose.pose import Frame, Pose


def test_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    frames = [Frame(5, "a.jpg", 64, 48,
                    [Pose(rng.uniform(0, 40, (17, 3)), score=0.75),
                     Pose(rng.uniform(0, 40, (17, 3)), box=[1, 2, 3, 4], score=0.25)]),
              Frame(6, "b.jpg", 64, 48, []),
              Frame(9, "c.jpg", 64, 48, [Pose(rng.uniform(0, 40, (17, 3)), score=1.0)])]
    write_coco_results(tmp_path / "r.json", frames)
    back = read_coco_results(tmp_path / "r.json")
    assert sorted(back) == [5, 9]
    for frame in (frames[0], frames[2]):
        for got, sent in zip(back[frame.image_id], frame.poses, strict=True):
            np.testing.assert_array_equal(got.keypoints, sent.keypoints)
            assert got.score == sent.score
            assert (got.box is None) == (sent.box is None)
    np.testing.assert_array_equal(back[5][1].box, [1, 2, 3, 4])
    record = json.loads((tmp_path / "r.json").read_text())[0]
    assert set(record) == {"image_id", "category_id", "keypoints", "score"}
    assert len(record["keypoints"]) == 51


def test_ground_truth_as_results_scores_perfect_coco_ap(fixtures, tmp_path):
    """pycocotools reads our results files: GT fed back as predictions gives AP 1."""
    ds = read_coco(fixtures / "coco" / "test_coco.json", fixtures / "coco")
    predictions = [Frame(f.image_id, f.file_name, f.width, f.height,
                         [Pose(p.keypoints, score=1.0) for p in f.poses if p.num_visible > 0])
                   for f in ds.frames]
    write_coco_results(tmp_path / "results.json", predictions)
    gt = coco_index(json.loads((fixtures / "coco" / "test_coco.json").read_text()))
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(str(tmp_path / "results.json"))
        evaluator = COCOeval(gt, dt, "keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0)


BAD_INPUTS = {
    "result with no score": (lambda d: d[0].pop("score"), "score"),
    "keypoints wrong length": (lambda d: d[0].update(keypoints=[1.0] * 50), "keypoints"),
    "keypoint not a number": (lambda d: d[0]["keypoints"].__setitem__(4, None), "keypoints"),
    "image id not an integer": (lambda d: d[0].update(image_id="5"), "image_id"),
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_names_file_record_and_field(kind, tmp_path, expect_input_error):
    mutate, field = BAD_INPUTS[kind]
    records = [{"image_id": 5, "category_id": 1, "keypoints": [1.0] * 51, "score": 0.5}]
    mutate(records)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(records))
    expect_input_error(lambda: read_coco_results(path), file=path, record="results[0]", field=field)
