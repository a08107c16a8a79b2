import json

import numpy as np
import pytest

from vidpose.formats.coco import read_coco, write_coco
from vidpose.keypoints import BODY19, COCO17, POSETRACK18
from vidpose.pose import PoseDataset


def test_real_coco_fixture(fixtures):
    ds = read_coco(fixtures / "coco" / "test_coco.json", fixtures / "coco")
    assert ds.schema is COCO17 and ds.source.endswith("test_coco.json")
    assert [f.image_id for f in ds.frames] == [785, 40083, 196141, 197388]
    assert [len(f.poses) for f in ds.frames] == [1, 3, 5, 5]
    assert (ds.frames[0].width, ds.frames[0].height) == (640, 425)
    person = ds.frames[0].poses[0]
    assert person.ann_id == 442619 and person.keypoints.shape == (17, 3)
    np.testing.assert_array_equal(person.keypoints[0], [367, 81, 2])  # nose
    np.testing.assert_array_equal(person.keypoints[16], [396, 341, 2])  # right ankle
    np.testing.assert_allclose(person.box, [280.79, 44.73, 218.7, 346.68])
    assert person.area == pytest.approx(27789.11055)
    assert person.segmentation[0][:2] == [353.37, 67.65]
    assert sum(p.num_visible == 0 for f in ds.frames for p in f.poses) == 2


def test_real_coco_fixture_file_round_trip(fixtures, tmp_path, assert_same_frames):
    ds = read_coco(fixtures / "coco" / "test_coco.json", fixtures / "coco")
    write_coco(tmp_path / "copy.json", ds, description="copy")
    again = read_coco(tmp_path / "copy.json", fixtures / "coco")
    assert again.schema is COCO17
    assert_same_frames(again.frames, ds.frames)


def test_merged_posetrack_file_reads_as_coco_in_posetrack_order(fixtures):
    root = fixtures / "posetrack18"
    ds = read_coco(root / "annotations" / "test_posetrack18_val.json", root, outside_tolerance=30)
    assert ds.schema is POSETRACK18 and len(ds) == 3
    assert sum(len(f.poses) for f in ds.frames) == 14


@pytest.mark.parametrize("schema", [COCO17, POSETRACK18])
def test_round_trip(tmp_path, make_frames, assert_same_frames, schema):
    frames = make_frames(3)
    frames[1].poses[0].segmentation = [[1.0, 2.0, 30.0, 2.0, 30.0, 40.0]]
    frames[2].poses[1].iscrowd = True
    write_coco(tmp_path / "a.json", PoseDataset(frames, schema, str(tmp_path)))
    ds = read_coco(tmp_path / "a.json", tmp_path, check_images=False)
    assert ds.schema is schema and ds.image_root == str(tmp_path)
    # ann ids are assigned in writing order; nothing else changes
    assert [p.ann_id for f in ds.frames for p in f.poses] == [1, 2, 3, 4, 5, 6]
    assert_same_frames(ds.frames, frames, ignore=("ann_id",))
    data = json.loads((tmp_path / "a.json").read_text())
    assert data["categories"][0]["keypoints"] == list(schema.names)
    first = data["annotations"][0]
    assert first["num_keypoints"] == 15 and first["keypoints"][2] == 2


def test_writer_fills_missing_box_and_area_from_keypoints(tmp_path, make_frames):
    frames = make_frames(1)
    pose = frames[0].poses[0]
    expected = pose.keypoint_box()
    pose.box, pose.area = None, None
    write_coco(tmp_path / "a.json", PoseDataset(frames, COCO17, str(tmp_path)))
    got = read_coco(tmp_path / "a.json", tmp_path, check_images=False).frames[0].poses[0]
    np.testing.assert_allclose(got.box, expected)
    assert got.area == pytest.approx(expected[2] * expected[3])


def test_writer_refuses_a_schema_files_do_not_use(tmp_path, make_frames):
    with pytest.raises(ValueError, match="body19"):
        write_coco(tmp_path / "a.json", PoseDataset(make_frames(1), BODY19, str(tmp_path)))


def test_writer_refuses_frames_of_unknown_size(tmp_path, make_frames):
    frames = make_frames(2)
    frames[1].width = 0
    with pytest.raises(ValueError, match=r"frames \[101\] have no image size"):
        write_coco(tmp_path / "a.json", PoseDataset(frames, COCO17, str(tmp_path)))


def test_check_images_accepts_present_files(tmp_path, make_frames):
    frames = make_frames(2)
    write_coco(tmp_path / "ann.json", PoseDataset(frames, COCO17, str(tmp_path)))
    for frame in frames:
        (tmp_path / frame.file_name).write_bytes(b"jpeg")
    assert len(read_coco(tmp_path / "ann.json", tmp_path)) == 2


def test_outside_tolerance_is_a_keyword(tmp_path, make_frames, expect_input_error):
    frames = make_frames(1)
    frames[0].poses[0].keypoints[6, :2] = [64.9, 48.5]  # within 1 px of the 64x48 image
    frames[0].poses[1].keypoints[7, :2] = [-5.0, 10.0]  # 5 px outside
    path = tmp_path / "a.json"
    write_coco(path, PoseDataset(frames, COCO17, str(tmp_path)))
    expect_input_error(lambda: read_coco(path, tmp_path, check_images=False),
                       file=path, record="annotation 2", field="keypoints")
    ds = read_coco(path, tmp_path, check_images=False, outside_tolerance=5.0)
    assert ds.frames[0].poses[1].keypoints[7, 0] == -5.0


def _set_kp(value):
    def mutate(data):
        data["annotations"][0]["keypoints"][3:6] = value
    return mutate


def _dup_image(data):
    data["images"][1]["id"] = data["images"][0]["id"]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 101]


# (what goes wrong, record named, field named); the 2-frame file has images 100, 101 and
# annotations 1-4 (two per image).
BAD_INPUTS = {
    "missing top-level key": (lambda d: d.pop("annotations"), None, "annotations"),
    "keypoints wrong length": (lambda d: d["annotations"][0]["keypoints"].pop(), "annotation 1",
                               "keypoints"),
    "keypoints not a list": (lambda d: d["annotations"][0].update(keypoints="17 joints"),
                             "annotation 1", "keypoints"),
    "keypoint not a number": (_set_kp([1.0, "a", 2]), "annotation 1", "keypoints"),
    "visibility flag 3": (_set_kp([1.0, 1.0, 3]), "annotation 1", "keypoints"),
    "keypoint outside image": (_set_kp([1.0, 60.0, 2]), "annotation 1", "keypoints"),
    "image_id names no image": (lambda d: d["annotations"][1].update(image_id=7), "annotation 2",
                                "image_id"),
    "duplicate image id": (_dup_image, "image 100", "id"),
    "duplicate annotation id": (lambda d: d["annotations"][2].update(id=1), "annotation 1", "id"),
    "negative bbox width": (lambda d: d["annotations"][3]["bbox"].__setitem__(2, -3.0),
                            "annotation 4", "bbox"),
    "path traversal": (lambda d: d["images"][1].update(file_name="../../etc/passwd"), "image 101",
                       "file_name"),
    "absolute path": (lambda d: d["images"][1].update(file_name="/etc/passwd"), "image 101",
                      "file_name"),
    "unknown keypoint names": (lambda d: d["categories"][0]["keypoints"].__setitem__(0, "snout"),
                               "category 1", "keypoints"),
    "annotation of another category": (lambda d: d["annotations"][0].update(category_id=2),
                                       "annotation 1", "category_id"),
    "missing image size": (lambda d: d["images"][0].pop("height"), "image 100", "height"),
    "bad RLE size": (lambda d: d["annotations"][0].update(segmentation={"size": [4, 4],
                                                                        "counts": "a"}),
                     "annotation 1", "segmentation.size"),
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_names_file_record_and_field(kind, tmp_path, make_frames, expect_input_error):
    mutate, record, field = BAD_INPUTS[kind]
    path = tmp_path / "ann.json"
    write_coco(path, PoseDataset(make_frames(2), COCO17, str(tmp_path)))
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))
    expect_input_error(lambda: read_coco(path, tmp_path, check_images=False), file=path,
                       record=record, field=field)


def test_missing_image_file(tmp_path, make_frames, expect_input_error):
    frames = make_frames(2)
    path = tmp_path / "ann.json"
    write_coco(path, PoseDataset(frames, COCO17, str(tmp_path)))
    (tmp_path / frames[0].file_name).write_bytes(b"jpeg")
    err = expect_input_error(lambda: read_coco(path, tmp_path), file=path, record="image 101",
                             field="file_name")
    assert "000000000001.jpg" in str(err)


def test_malformed_json(tmp_path, expect_input_error):
    path = tmp_path / "ann.json"
    path.write_text('{"images": [}')
    err = expect_input_error(lambda: read_coco(path, tmp_path), file=path, record=None, field=None)
    assert "line 1, column 13" in str(err)
