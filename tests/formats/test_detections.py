import json

import numpy as np
import pytest

from vidpose.formats.detections import read_detections, write_detections
from vidpose.pose import Pose


def test_real_posetrack_detections(fixtures):
    path = fixtures / "posetrack18" / "annotations" / "test_posetrack18_human_detections.json"
    dets = read_detections(path, image_ids={10034180000, 10094730000, 10128340000})
    assert sum(map(len, dets.values())) == 278
    first = dets[10128340000][0]
    np.testing.assert_allclose(first.box, [1475.2755126953125, 2.719658136367798, 96.9671630859375,
                                           252.88242316246033])
    assert first.score == pytest.approx(0.9290200471878052)
    assert first.keypoints.shape == (17, 3) and not first.keypoints.any()


def test_real_coco_detections(fixtures):
    dets = read_detections(fixtures / "coco" / "test_coco_det_AP_H_56.json")
    assert sorted(dets) == [785, 40083, 196141, 197388] and sum(map(len, dets.values())) == 118


def test_round_trip_and_empty_images(tmp_path):
    dets = {7: [Pose(np.zeros((17, 3)), box=[1.5, 2.0, 30.0, 40.25], score=0.9),
                Pose(np.zeros((17, 3)), box=[0.0, 0.0, 0.0, 0.0], score=0.1)],
            3: [Pose(np.zeros((17, 3)), box=[5.0, 6.0, 7.0, 8.0], score=0.5)]}
    write_detections(tmp_path / "d" / "val.json", dets)
    records = json.loads((tmp_path / "d" / "val.json").read_text())
    assert [r["image_id"] for r in records] == [3, 7, 7]
    assert records[0] == {"image_id": 3, "category_id": 1, "bbox": [5.0, 6.0, 7.0, 8.0],
                          "score": 0.5}
    back = read_detections(tmp_path / "d" / "val.json", image_ids={3, 7, 9})
    assert sorted(back) == [3, 7, 9] and back[9] == []
    for image_id, poses in dets.items():
        assert [(p.box.tolist(), p.score) for p in back[image_id]] == [(p.box.tolist(), p.score)
                                                                       for p in poses]


def test_writer_refuses_a_detection_without_box(tmp_path):
    with pytest.raises(ValueError, match="no box"):
        write_detections(tmp_path / "d.json", {1: [Pose(np.zeros((17, 3)))]})


BAD_INPUTS = {
    "detection with no score": (lambda d: d[1].pop("score"), {3, 7}, "results[1]", "score"),
    "unknown image id": (lambda d: None, {7}, "results[0]", "image_id"),
    "negative box height": (lambda d: d[2]["bbox"].__setitem__(3, -2.0), None, "results[2]",
                            "bbox"),
    "missing box": (lambda d: d[0].pop("bbox"), None, "results[0]", "bbox"),
    "not a person": (lambda d: d[2].update(category_id=3), None, "results[2]", "category_id"),
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_names_file_record_and_field(kind, tmp_path, expect_input_error):
    mutate, image_ids, record, field = BAD_INPUTS[kind]
    records = [{"image_id": 3, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5},
               {"image_id": 7, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.4},
               {"image_id": 7, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.3}]
    mutate(records)
    path = tmp_path / "det.json"
    path.write_text(json.dumps(records))
    expect_input_error(lambda: read_detections(path, image_ids=image_ids), file=path, record=record,
                       field=field)


def test_not_a_results_list(tmp_path, expect_input_error):
    path = tmp_path / "det.json"
    path.write_text('{"annotations": []}')
    expect_input_error(lambda: read_detections(path), file=path, record=None, field=None)
