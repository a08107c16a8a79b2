"""Drawing poses and contact sheets."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidpose.errors import InputError
from vidpose.keypoints import COCO17
from vidpose.pose import Pose
from vidpose.viz import CENTER, LEFT, RIGHT, contact_sheet, draw_pose


def coco_pose() -> Pose:
    """A T-pose facing the camera in a 200 x 200 image (person's left on the image right)."""
    k = np.zeros((17, 3))
    spots = {"nose": (100, 40), "left_shoulder": (130, 70), "right_shoulder": (70, 70),
             "left_elbow": (170, 70), "right_elbow": (30, 70), "left_hip": (120, 130),
             "right_hip": (80, 130), "left_knee": (120, 170), "right_knee": (80, 170)}
    for name, (x, y) in spots.items():
        k[COCO17.index[name]] = (x, y, 2)
    k[COCO17.index["nose"], 2] = 1  # occluded (and on no drawn limb: no eyes)
    return Pose(k, box=np.array([20.0, 30, 160, 150]), track_id=3)


def near(pixel: np.ndarray, color: tuple[int, int, int]) -> bool:
    return int(np.abs(pixel.astype(int) - color).sum()) < 40


def test_left_and_right_limbs_get_their_colour_families():
    image = np.zeros((200, 200, 3), dtype=np.uint8)
    out = draw_pose(image, coco_pose(), COCO17, label="id 3")
    assert (image == 0).all()  # the input is not drawn on
    assert near(out[70, 150], LEFT)  # middle of left_shoulder - left_elbow
    assert near(out[70, 50], RIGHT)  # middle of right_shoulder - right_elbow
    assert near(out[130, 100], CENTER)  # hip to hip crosses the midline
    # Visible keypoints are filled dots, the occluded one a ring with an empty centre.
    assert near(out[170, 120], LEFT)
    assert tuple(out[40, 100]) == (0, 0, 0) and out[40, 104].argmax() == 1  # a green ring
    assert out[30, 20:180].any()  # the box's top edge


def test_absent_keypoints_draw_nothing():
    image = np.zeros((200, 200, 3), dtype=np.uint8)
    out = draw_pose(image, Pose(np.zeros((17, 3))), COCO17)
    assert (out == 0).all()


@pytest.mark.parametrize("dataset", ["posetrack18", "coco", "ochuman"])
def test_contact_sheet_of_each_layout(tiny_synth, tmp_path, dataset):
    png = contact_sheet(tiny_synth / dataset, tmp_path / f"{dataset}.png", n=4, dataset=dataset)
    sheet = cv2.imread(str(png))
    assert sheet.shape == (240 + 28, 4 * 320, 3)  # one row of four tiles, the legend below
    assert sheet[:240].std() > 10  # images, not an empty canvas
    # The legend shows both colour families.
    legend = sheet[240:].reshape(-1, 3)
    for color in (LEFT, RIGHT):
        assert (np.abs(legend.astype(int) - color).sum(1) < 30).any()


def test_contact_sheet_of_a_folder_without_data_says_so(tmp_path):
    with pytest.raises(InputError, match="annotations"):
        contact_sheet(tmp_path, tmp_path / "x.png", dataset="posetrack18")
    with pytest.raises(InputError, match="person_keypoints"):
        contact_sheet(tmp_path, tmp_path / "x.png", dataset="coco")
