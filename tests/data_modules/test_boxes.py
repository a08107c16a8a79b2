"""CenterNet frames and targets: radius, centre cell, size, offset, mask, box geometry,
augmentation and bad boxes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vidpose.data_modules.boxes import (
    BoxDataModule,
    centernet_targets,
    frame_boxes,
    gaussian_radius,
    transform_boxes,
)
from vidpose.data_modules.transforms import apply_affine, invert_affine, letterbox
from vidpose.errors import ConfigError
from vidpose.keypoints import POSETRACK18
from vidpose.pose import Frame, Pose, PoseDataset


def test_gaussian_radius_is_centernets_smallest_case():
    # 10 x 10 box, overlap 0.7: the three cases give (20 + sqrt(400 - 4 * 30 / 1.7)) / 2,
    # (40 + sqrt(1600 - 480)) / 2 and (-28 + sqrt(784 + 336)) / 2; the last is the smallest.
    assert gaussian_radius(10, 10) == pytest.approx((-28 + math.sqrt(1120)) / 2)
    wide = gaussian_radius(np.array([10.0, 4.0]), np.array([10.0, 30.0]))
    assert wide[0] == pytest.approx(2.7332, abs=1e-4) and 0 < wide[1] < wide[0]


def test_targets_put_a_unit_peak_size_and_offset_at_the_centre_cell():
    # Input 64 x 96 (h, w), stride 4: box centre (25, 40) -> heatmap (6.25, 10.0), cell (6, 10).
    boxes = np.array([[10.0, 20, 30, 40], [60, 8, 16, 16]])
    targets = centernet_targets(boxes, (64, 96), 4, max_objects=5)
    heatmap = targets["heatmap"]
    assert heatmap.shape == (1, 16, 24)
    assert heatmap[0, 10, 6] == 1.0 and heatmap[0, 4, 17] == 1.0  # second: centre (68, 16) / 4
    assert int((heatmap == 1).sum()) == 2
    # The Gaussian's sigma comes from CenterNet's radius of the 10 x 7.5 heatmap-pixel box.
    radius = int(gaussian_radius(10, 8))
    sigma = (2 * radius + 1) / 6
    assert heatmap[0, 10, 7].item() == pytest.approx(math.exp(-1 / (2 * sigma ** 2)), rel=1e-5)
    assert targets["index"].tolist() == [10 * 24 + 6, 4 * 24 + 17, 0, 0, 0]
    np.testing.assert_allclose(targets["size"][:2], [[7.5, 10.0], [4.0, 4.0]])
    np.testing.assert_allclose(targets["offset"][:2], [[0.25, 0.0], [0.0, 0.0]])
    assert targets["mask"].tolist() == [1, 1, 0, 0, 0]


def test_targets_clip_boxes_to_the_input_and_drop_those_out_of_view():
    boxes = np.array([[-20.0, 10, 40, 20], [200, 10, 30, 30]])  # half out; wholly out
    targets = centernet_targets(boxes, (64, 96), 4, max_objects=3)
    assert targets["mask"].tolist() == [1, 0, 0]
    np.testing.assert_allclose(targets["size"][0], [20 / 4, 20 / 4])  # x from 0 to 20
    empty = centernet_targets(np.zeros((0, 4)), (64, 96), 4, max_objects=3)
    assert empty["heatmap"].abs().sum() == 0 and empty["mask"].sum() == 0
    with pytest.raises(ValueError, match="max_objects"):
        centernet_targets(np.array([[10.0, 10, 5, 5]] * 4), (64, 96), 4, max_objects=3)


def test_letterbox_moves_boxes_onto_their_pixels_and_back():
    image = np.zeros((120, 200, 3), dtype=np.uint8)
    box = np.array([[40.0, 30, 60, 50]])  # covers pixels 40..99 x 30..79
    image[30:80, 40:100] = 255
    boxed, affine = letterbox(image[None], (96, 96))
    ys, xs = np.nonzero(boxed[0, ..., 0] > 127)
    moved = transform_boxes(box, affine)[0]
    np.testing.assert_allclose([xs.min(), ys.min()], moved[:2], atol=1.0)
    np.testing.assert_allclose([xs.max(), ys.max()], moved[:2] + moved[2:], atol=1.0)
    np.testing.assert_allclose(transform_boxes(transform_boxes(box, affine), invert_affine(affine)),
                               box, atol=1e-9)


def test_mirrored_boxes_keep_positive_size():
    mirror = np.array([[-1.0, 0, 99], [0, 1, 0]])  # x -> 99 - x
    np.testing.assert_allclose(transform_boxes(np.array([10.0, 5, 20, 30]), mirror),
                               [69, 5, 20, 30])


def _dataset(poses: list[Pose], tmp_path) -> PoseDataset:
    frame = Frame(7, "images/train/v1/000000.jpg", 128, 96, poses, video="v1")
    return PoseDataset([frame], POSETRACK18, str(tmp_path), source=str(tmp_path))


def test_frame_boxes_use_the_keypoint_box_without_a_box_and_flag_crowds(tmp_path):
    keypoints = np.zeros((17, 3))
    keypoints[[0, 5]] = [[20, 10, 2], [30, 40, 2]]
    data = _dataset([Pose(keypoints), Pose(np.zeros((17, 3)), box=[5, 5, 50, 60], iscrowd=True),
                     Pose(np.zeros((17, 3)))], tmp_path)  # the last has no extent at all
    boxes, crowd = frame_boxes(data, 0)
    np.testing.assert_allclose(boxes, [[20, 10, 10, 30], [5, 5, 50, 60]])
    assert crowd.tolist() == [False, True]


def test_a_box_without_size_is_refused_naming_file_record_and_field(tmp_path, expect_input_error):
    data = _dataset([Pose(np.zeros((17, 3)), box=[10, 10, 0, 20], ann_id=41)], tmp_path)
    module = BoxDataModule({"root": str(tmp_path), "synth_preset": None, "num_workers": 0})
    expect_input_error(lambda: module.make_dataset(data, "train", train=True),
                       file=tmp_path / "v1.json", record="annotation 41", field="bbox")


def test_too_many_persons_for_max_persons_is_a_config_error(tmp_path):
    data = _dataset([Pose(np.zeros((17, 3)), box=[10, 10, 5, 5])] * 3, tmp_path)
    module = BoxDataModule({"root": str(tmp_path), "synth_preset": None, "max_persons": 2})
    with pytest.raises(ConfigError, match="max_persons=2"):
        module.make_dataset(data, "val", train=False)


def _centres(sample: dict[str, torch.Tensor]) -> np.ndarray:
    """Box centres (P, 2) in input pixels from a sample's targets (stride 4)."""
    count = int(sample["mask"].sum())
    width = sample["heatmap"].shape[-1]
    index = sample["index"][:count]
    cells = torch.stack([index % width, index // width], -1).float()
    return ((cells + sample["offset"][:count]) * 4).numpy()


def _by_x(points: np.ndarray) -> np.ndarray:
    """Rows sorted by x (then y): targets list persons in annotation order, not by place."""
    return points[np.lexsort((points[:, 1], points[:, 0]))]


def test_samples_hold_the_labelled_frames_targets(posetrack_root, data_module):
    module = data_module(BoxDataModule, posetrack_root, input_size=[48, 64])
    # vid_a labels all 6 frames, vid_b 3 of 6; val labels 3 of 5.
    assert (len(module.train_set), len(module.val_set)) == (9, 3)
    sample = module.val_set[0]
    assert sample["image"].shape == (3, 48, 64) and sample["heatmap"].shape == (1, 12, 16)
    assert sample["index"].shape == (20,) and sample["size"].shape == (20, 2)
    frame = module.val_data.frames[int(sample["frame"])]
    assert frame.is_labeled and int(sample["mask"].sum()) == len(frame.poses)
    boxes = transform_boxes(np.stack([p.box for p in frame.poses]),
                            sample["image_to_input"].numpy())
    np.testing.assert_allclose(_centres(sample), boxes[:, :2] + boxes[:, 2:] / 2, atol=1e-4)
    np.testing.assert_allclose(sample["size"][:len(boxes)] * 4, boxes[:, 2:], atol=1e-4)


def test_flip_mirrors_the_boxes_with_the_image(posetrack_root, data_module):
    plain = data_module(BoxDataModule, posetrack_root, input_size=[48, 64])
    flipped = data_module(BoxDataModule, posetrack_root, input_size=[48, 64],
                          augment={"flip": 1.0, "rotation": 0.0, "scale": 0.0})
    a, b = plain.train_set[0], flipped.train_set[0]
    torch.testing.assert_close(b["image"], a["image"].flip(-1))
    mirrored = _centres(a)
    mirrored[:, 0] = 63 - mirrored[:, 0]
    np.testing.assert_allclose(_by_x(_centres(b)), _by_x(mirrored), atol=1e-4)
    point = apply_affine(np.array([10.0, 20.0]), b["image_to_input"].numpy())
    assert point[0] == pytest.approx(63 - apply_affine(np.array([10.0, 20.0]),
                                                       a["image_to_input"].numpy())[0])
