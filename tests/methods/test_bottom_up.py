"""Bottom-up evaluation: COCO AP per validation set and decoder, from the `images` data module.

Ground truth fed back as predictions scores 100 on the normal and the crowded set (mmpose's
check); a decoder that shifts every joint scores less; results files and the summary table
name what they hold.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from vidpose.data_modules.images import ImageDataModule
from vidpose.methods.bottom_up import BottomUpEvaluation, metric_name, place_dropped_joints, to_image_pixels
from vidpose.pose import Pose


class GroundTruthDecoders(BottomUpEvaluation, L.LightningModule):
    """Returns each image's labelled persons ("truth") and the same persons 12 px off."""

    DECODERS = ("truth", "shifted")

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Linear(1, 1)

    def predict_poses(self, batch):
        truth, shifted = [], []
        for keypoints, count in zip(batch["keypoints"].numpy(), batch["num_persons"].tolist()):
            poses = [Pose(kps.astype(np.float64), score=1.0) for kps in keypoints[:count]]
            truth.append(poses)
            moved = []
            for pose in poses:
                kps = pose.keypoints.copy()
                kps[:, 0] += 12.0
                moved.append(Pose(kps, score=0.5))
            shifted.append(moved)
        return {"truth": truth, "shifted": shifted}


def _datamodule(tiny_synth, crowded: bool) -> ImageDataModule:
    cfg = {"dataset": "coco", "root": str(tiny_synth / "coco"), "input_size": [96, 128],
           "batch_size": 4, "num_workers": 0, "synth_preset": "tiny"}
    if crowded:
        cfg["crowded_root"] = str(tiny_synth / "ochuman")
    return ImageDataModule(cfg)


def test_metric_names():
    assert metric_name("val", "val", "rnn", "rnn") == "val/AP"
    assert metric_name("val", "val", "ae", "rnn") == "val/AP_ae"
    assert metric_name("val", "crowded", "ae", "rnn", "AP50") == "val/crowded_AP50_ae"


def test_poses_map_back_through_the_letterbox():
    affine = np.array([[0.5, 0.0, 4.0], [0.0, 0.5, -2.0]])
    pose = Pose(np.array([[14.0, 8.0, 0.9]] + [[0.0, 0.0, 0.0]] * 16), score=0.7)
    back = to_image_pixels([pose], affine)[0]
    assert back.keypoints[0].tolist() == pytest.approx([20.0, 20.0, 0.9])
    assert back.score == pytest.approx(0.7)


def test_ground_truth_scores_100_on_both_sets_and_shifts_score_less(tiny_synth, quiet_trainer,
                                                                     tmp_path):
    module, datamodule = GroundTruthDecoders(), _datamodule(tiny_synth, crowded=True)
    trainer = quiet_trainer()
    metrics = {k: float(v) for k, v in trainer.validate(module, datamodule=datamodule)[0].items()}
    metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    assert metrics["val/AP"] == pytest.approx(100.0)
    assert metrics["val/crowded_AP"] == pytest.approx(100.0)
    assert metrics["val/AP_shifted"] < 90.0 and metrics["val/crowded_AP_shifted"] < 90.0
    written = json.loads((tmp_path / "predictions" / "val" / "crowded_truth.json").read_text())
    image_ids = {frame.image_id for frame in datamodule.crowded_data.frames}
    assert written and {record["image_id"] for record in written} <= image_ids
    table = GroundTruthDecoders.summary_table(metrics)
    assert table.splitlines()[0] == "| COCO AP (%) | normal | crowded |"
    assert "| truth | 100.0 | 100.0 |" in table


def test_without_a_crowded_root_there_is_one_validation_set(tiny_synth):
    datamodule = _datamodule(tiny_synth, crowded=False)
    datamodule.setup("validate")
    assert [name for name, _ in datamodule.eval_sets()] == ["val"]
    assert len(datamodule.val_dataloader()) == 1
    assert GroundTruthDecoders.summary_table({"val/AP": 50.0}).splitlines() == [
        "| COCO AP (%) | normal |", "|---|---|", "| truth | 50.0 |", "| shifted | - |"]
    assert GroundTruthDecoders.summary_table({"val/f1": 0.5}) == ""


def _real_layout(source: Path, annotations: str, root: Path) -> Path:
    """A real fixture set copied into the COCO layout the data modules read (split `val`)."""
    (root / "annotations").mkdir(parents=True)
    shutil.copy(source / annotations, root / "annotations" / "person_keypoints_val.json")
    shutil.copytree(source, root / "val", ignore=shutil.ignore_patterns("*.json"))
    return root


def test_real_coco_and_ochuman_are_scored_through_the_same_path(fixtures, quiet_trainer, tmp_path):
    coco = _real_layout(fixtures / "coco", "test_coco.json", tmp_path / "coco")
    ochuman = _real_layout(fixtures / "ochuman", "test_ochuman.json", tmp_path / "ochuman")
    datamodule = ImageDataModule({"dataset": "coco", "root": str(coco), "synth_preset": None,
                                  "crowded_root": str(ochuman), "input_size": [256, 256],
                                  "batch_size": 4, "num_workers": 0})
    trainer = quiet_trainer()
    trainer.validate(GroundTruthDecoders(), datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert len(datamodule.val_data.frames) == 4 and len(datamodule.crowded_data.frames) == 3
    assert metrics["val/AP"] == pytest.approx(100.0)
    assert metrics["val/crowded_AP"] == pytest.approx(100.0)
    assert metrics["val/crowded_AP_shifted"] < 100.0


def test_a_dropped_joint_is_not_scored_where_its_weak_maximum_was():
    """pycocotools scores every joint of a detection by its coordinates, whatever its third
    value: a joint a decoder dropped (score 0) on the ground truth's joint would still count.
    ``place_dropped_joints`` moves it to the mean of the person's scored joints (issue 16
    point 15), so the detection's OKS, and its AP, fall."""
    truth = np.zeros((17, 3))
    truth[[0, 9], :] = [[50.0, 20.0, 2], [80.0, 90.0, 2]]  # nose, left wrist
    dropped = truth.copy()
    dropped[:, 2] = 0.0
    dropped[0, 2] = 0.9  # the wrist is at the truth but below tau: score 0
    placed = place_dropped_joints(dropped)
    assert placed[9].tolist() == [50.0, 20.0, 0.0] and placed[0].tolist() == [50.0, 20.0, 0.9]
    assert place_dropped_joints(np.zeros((17, 3))).tolist() == np.zeros((17, 3)).tolist()

    def ap(keypoints: np.ndarray) -> float:
        gt = COCO()
        gt.dataset = {"images": [{"id": 1, "width": 200, "height": 200}],
                      "categories": [{"id": 1, "name": "person"}],
                      "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                                       "keypoints": truth.ravel().tolist(), "num_keypoints": 2,
                                       "area": 2500.0, "bbox": [40, 10, 50, 90]}]}
        gt.createIndex()
        dt = gt.loadRes([{"image_id": 1, "category_id": 1, "score": 0.9,
                          "keypoints": keypoints.ravel().tolist()}])
        evaluation = COCOeval(gt, dt, "keypoints")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
        return float(evaluation.stats[0])

    assert ap(dropped) == pytest.approx(1.0)  # scored at its coordinates despite score 0
    assert ap(placed) < 0.5
