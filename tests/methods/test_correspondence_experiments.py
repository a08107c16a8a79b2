"""The keypoint-correspondence experiments validate as the paper rows they cite do."""
from __future__ import annotations

import pytest

from vidpose.config import compose, list_experiments

PAPER = "Keypoint correspondences"

# The paper's only figures measured on ground-truth boxes: Table 2's rows with "GT Boxes"
# ticked (OKS, Optical Flow, Re-ID, Correspondences). Every other figure in it (Tables 2-7,
# the pose estimator's mAP included) is on Cascade R-CNN detections.
GT_BOX_FIGURES = {("MOTA", 65.9), ("MOTA", 68.4), ("MOTA", 67.1), ("MOTA", 70.5),
                  ("id_switches", 6582), ("id_switches", 4419), ("id_switches", 4164),
                  ("id_switches", 3583)}


def _citing() -> list[str]:
    return sorted(name for name in list_experiments()
                  if compose(name).experiment.reproduces.startswith(PAPER))


@pytest.mark.parametrize("name", _citing())
def test_validation_boxes_match_the_cited_paper_row(name):
    cfg = compose(name)
    cited = {(key.removeprefix("val/"), float(value))
             for key, value in cfg.experiment.paper_metrics.items()}
    if not cited:
        return  # nothing to stand beside a paper number
    on_gt_boxes = cited <= GT_BOX_FIGURES
    if on_gt_boxes:
        assert cfg.data.box_source == "gt", f"{name} cites a GT-box row of Table 2"
    else:
        assert cfg.data.box_source in ("detections", "detector"), (
            f"{name} cites {sorted(cited)}, figures on detected boxes, but validates on "
            f"{cfg.data.box_source} boxes")


def test_the_pose_estimator_cites_table_3_on_detected_boxes():
    cfg = compose("correspondence_pose")
    assert dict(cfg.experiment.paper_metrics) == {"mAP": 80.1}
    assert cfg.data.box_source == "detections"
