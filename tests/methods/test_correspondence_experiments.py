"""The keypoint-correspondence experiments validate as the paper rows they cite do."""
from __future__ import annotations

from pathlib import Path

import pytest

from vidpose.config import compose, list_experiments
from vidpose.methods.correspondence import KeypointCorrespondence
from vidpose.run import train

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


@pytest.mark.slow
def test_the_no_refinement_row_applies_thresholds_calibrated_for_siamese_maps(
        quick_overrides, tracking_models):
    """Table 7 "w/o refinement": the thresholds stated for refined maps reach the Siamese
    maps mapped through the calibration the refinement run recorded."""
    shrink = ["trainer.limit_val_batches=1", "data.input_size=[64,48]"]
    cfg = compose("correspondence_t7_no_refinement", quick_overrides + shrink + tracking_models)
    assert not cfg.model.refinement and cfg.model.calibrated_thresholds
    result = train(cfg)
    runs = Path(tracking_models[0].removeprefix("runs_dir=")) / "correspondence_refinement"
    (checkpoint,) = runs.glob("*/checkpoints/last.ckpt")
    calibration = KeypointCorrespondence.load_from_checkpoint(str(checkpoint)).net.calibration
    affinity = calibration.siamese_threshold(cfg.model.affinity_threshold)
    track = calibration.siamese_threshold(cfg.model.track_threshold, "person")
    assert result.metrics["val/applied_affinity_threshold"] == pytest.approx(affinity, abs=1e-6)
    assert result.metrics["val/applied_track_threshold"] == pytest.approx(track, abs=1e-6)
    # The full row reads refined maps with the thresholds as set: nothing mapped to log.
    full = train(compose("correspondence_t7_full", quick_overrides + shrink + tracking_models))
    assert "val/applied_affinity_threshold" not in full.metrics
