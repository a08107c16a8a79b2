"""The keypoint-correspondence experiments validate as the paper rows they cite do."""
from __future__ import annotations

from vidpose.config import compose, list_experiments

PAPER = "Keypoint correspondences"

# The paper's only figures measured on ground-truth boxes: Table 2's rows with "GT Boxes"
# ticked (OKS, Optical Flow, Re-ID, Correspondences). Every other figure in it (Tables 2-7,
# the pose estimator's mAP included) is on Cascade R-CNN detections.
GT_BOX_FIGURES = {("MOTA", 65.9), ("MOTA", 68.4), ("MOTA", 67.1), ("MOTA", 70.5),
                  ("id_switches", 6582), ("id_switches", 4419), ("id_switches", 4164),
                  ("id_switches", 3583)}


def test_validation_boxes_match_the_cited_paper_rows():
    checked, wrong = [], []
    for name in sorted(list_experiments()):
        if not name.startswith("correspondence"):
            continue
        cfg = compose(name)
        if not cfg.experiment.reproduces.startswith(PAPER):
            continue
        cited = {(key.removeprefix("val/"), float(value))
                 for key, value in cfg.experiment.paper_metrics.items()}
        if not cited:
            continue  # nothing to stand beside a paper number
        expected = ("gt",) if cited <= GT_BOX_FIGURES else ("detections", "detector")
        checked.append(name)
        if cfg.data.box_source not in expected:
            wrong.append(f"{name}: cites {sorted(cited)} but validates on {cfg.data.box_source} boxes")
    assert "correspondence_pose" in checked and len(checked) > 20, checked
    assert not wrong, "\n".join(wrong)
