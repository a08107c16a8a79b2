import json

import numpy as np
from pycocotools import mask as mask_utils

from vidpose.formats.coco import write_coco
from vidpose.formats.ochuman import read_ochuman
from vidpose.keypoints import COCO17
from vidpose.pose import PoseDataset


def test_real_ochuman_fixture(fixtures):
    ds = read_ochuman(fixtures / "ochuman" / "test_ochuman.json", fixtures / "ochuman")
    assert ds.schema is COCO17
    assert [len(f.poses) for f in ds.frames] == [1, 2, 2]
    first = ds.frames[0].poses[0]
    np.testing.assert_allclose(first.keypoints[0], [371.5701271305881, 188.86769422623237, 2])
    for frame in ds.frames:
        for pose in frame.poses:
            # the file quotes the RLE size as "[h, w]": it comes back as a list that decodes
            assert pose.segmentation["size"] == [frame.height, frame.width]
            mask = mask_utils.decode(pose.segmentation)
            assert mask.shape == (frame.height, frame.width) and mask.sum() > 0
            x, y, w, h = mask_utils.toBbox(pose.segmentation)
            bx, by, bw, bh = pose.box  # the mask lies on its person
            assert bx <= x + w / 2 <= bx + bw and by <= y + h / 2 <= by + bh
    assert mask_utils.area(first.segmentation) == 91971


def _rle(height: int, width: int, box: np.ndarray) -> dict:
    mask = np.zeros((height, width), np.uint8, order="F")
    x, y, w, h = box.astype(int)
    mask[y:y + h + 1, x:x + w + 1] = 1
    rle = mask_utils.encode(mask)
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def test_round_trip_with_rle_masks(tmp_path, make_frames, assert_same_frames):
    frames = make_frames(2)
    for frame in frames:
        for pose in frame.poses:
            pose.segmentation = _rle(frame.height, frame.width, pose.box)
    write_coco(tmp_path / "ochuman.json", PoseDataset(frames, COCO17, str(tmp_path)))
    ds = read_ochuman(tmp_path / "ochuman.json", tmp_path, check_images=False)
    assert_same_frames(ds.frames, frames, ignore=("ann_id",))
    assert mask_utils.area(ds.frames[1].poses[0].segmentation) > 0


def test_rle_straight_from_pycocotools_is_written(tmp_path, make_frames):
    frames = make_frames(1)
    mask = np.zeros((48, 64), np.uint8, order="F")
    mask[10:20, 5:25] = 1
    for pose in frames[0].poses:
        pose.segmentation = mask_utils.encode(mask)  # counts as bytes
    write_coco(tmp_path / "ochuman.json", PoseDataset(frames, COCO17, str(tmp_path)))
    ds = read_ochuman(tmp_path / "ochuman.json", tmp_path, check_images=False)
    np.testing.assert_array_equal(mask_utils.decode(ds.frames[0].poses[1].segmentation), mask)


def test_person_without_mask(tmp_path, make_frames, expect_input_error):
    frames = make_frames(1)
    frames[0].poses[0].segmentation = _rle(48, 64, frames[0].poses[0].box)
    path = tmp_path / "ochuman.json"
    write_coco(path, PoseDataset(frames, COCO17, str(tmp_path)))
    assert "segmentation" not in json.loads(path.read_text())["annotations"][1]
    expect_input_error(lambda: read_ochuman(path, tmp_path, check_images=False), file=path,
                       record="annotation 2", field="segmentation")
