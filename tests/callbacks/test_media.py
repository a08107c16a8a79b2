"""Pictures and tables after each validation (callbacks/media.py): a tiny validation whose
"method" writes the ground truth as its prediction files, as the methods write theirs."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import WandbLogger
from torch.utils.data import DataLoader

from vidpose.callbacks.media import ValidationMedia
from vidpose.config import compose
from vidpose.errors import ConfigError
from vidpose.evaluation.scoring import write_predictions
from vidpose.formats import read_coco, read_posetrack
from vidpose.formats.results import write_coco_results
from vidpose.pose import PoseDataset
from vidpose.run.trainer import _callbacks


class _Data(L.LightningDataModule):
    def __init__(self, val_data: PoseDataset) -> None:
        super().__init__()
        self.val_data = val_data

    def val_dataloader(self) -> DataLoader:
        return DataLoader(torch.zeros(1, 1))


class _GroundTruthAsPrediction(L.LightningModule):
    """Writes the split's ground truth as its predictions (every pose scored 1) where a
    method of the given kind writes them."""

    def __init__(self, bottom_up: bool, found: bool = True) -> None:
        super().__init__()
        self.bottom_up, self.found = bottom_up, found
        if bottom_up:
            self.DECODERS = ("ae",)

    def validation_step(self, batch, batch_idx) -> None:
        pass

    def on_validation_epoch_end(self) -> None:
        data = self.trainer.datamodule.val_data
        folder = Path(self.trainer.default_root_dir) / "predictions" / "val"
        frames = [dataclasses.replace(f, poses=[dataclasses.replace(p, score=1.0) for p in f.poses
                                                if not p.iscrowd and self.found])
                  for f in data.frames]
        if self.bottom_up:
            folder.mkdir(parents=True, exist_ok=True)
            write_coco_results(folder / "val_ae.json", frames)
        else:
            write_predictions(folder, data, {i: f.poses for i, f in enumerate(frames)})


def _validate(root: Path, data: PoseDataset, bottom_up: bool, frames: int = 3,
              found: bool = True) -> Path:
    """Run one validation with a W&B logger (offline); returns the W&B run folder."""
    logger = WandbLogger(project="vidpose-test", save_dir=str(root), mode="offline")
    trainer = L.Trainer(default_root_dir=str(root), logger=logger, callbacks=[ValidationMedia(frames)],
                        accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    trainer.validate(_GroundTruthAsPrediction(bottom_up, found), datamodule=_Data(data))
    run = Path(logger.experiment.dir).parent
    logger.experiment.finish()
    return run


def _tables(run: Path, name: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((run / "files" / "media" / "table" / "val")
                                                        .glob(f"{name}_*.table.json"))]


def test_posetrack_validation_logs_pictures_and_joint_and_video_tables(tiny_synth, tmp_path):
    data = read_posetrack(tiny_synth / "posetrack18" / "annotations" / "val")
    run = _validate(tmp_path, data, bottom_up=False)
    pictures = sorted((tmp_path / "media" / "val").glob("epoch0_step0_*.jpg"))
    assert [p.name for p in pictures] == [f"epoch0_step0_{k}.jpg" for k in range(3)]
    picture = cv2.imread(str(pictures[0]))
    assert picture.shape[0] == 256 and picture.shape[1] > 2 * 256  # enlarged, GT | prediction
    logged = sorted((run / "files" / "media" / "images" / "val").glob("media_*.jpg"))
    assert len(logged) == 3
    (joints,), (videos,) = _tables(run, "per_joint_AP"), _tables(run, "per_video")
    assert joints["columns"] == ["joint", "AP"] and joints["data"][-1] == ["total", 100.0]
    assert len(joints["data"]) == 16  # poseval's 15 joints and the total
    assert videos["columns"] == ["video", "frames", "mAP", "MOTA", "id_switches"]
    assert sorted(row[0] for row in videos["data"]) == sorted(data.videos())
    assert all(row[3] == 100.0 and row[4] == 0 for row in videos["data"])


def test_bottom_up_validation_logs_a_per_image_ap_table(tiny_synth, tmp_path):
    coco = tiny_synth / "coco"
    data = read_coco(coco / "annotations" / "person_keypoints_val.json", coco / "val")
    run = _validate(tmp_path, data, bottom_up=True, frames=2)
    assert len(list((tmp_path / "media" / "val").glob("*.jpg"))) == 2
    assert len(list((run / "files" / "media" / "images" / "val").glob("media_*.jpg"))) == 2
    (table,) = _tables(run, "per_image_AP")
    assert table["columns"] == ["image_id", "file_name", "persons", "AP"]
    with_persons = [row for row in table["data"] if row[2] > 0]
    assert with_persons and all(row[3] == 100.0 for row in with_persons)


def test_a_method_that_finds_nobody_is_pictured_too(tiny_synth, tmp_path):
    coco = tiny_synth / "coco"
    data = read_coco(coco / "annotations" / "person_keypoints_val.json", coco / "val")
    run = _validate(tmp_path, data, bottom_up=True, frames=2, found=False)
    assert json.loads((tmp_path / "predictions" / "val" / "val_ae.json").read_text()) == []
    assert len(list((tmp_path / "media" / "val").glob("*.jpg"))) == 2
    (table,) = _tables(run, "per_image_AP")
    assert len(table["data"]) == 2 and all(row[3] == 0.0 for row in table["data"])


def test_the_logger_media_knob_adds_the_callback(tiny_synth, tmp_path):
    base = ["data=synth_tiny", f"data.root={tiny_synth / 'posetrack18'}", "logger.wandb=false"]
    for media, expected in ((2, [2]), (0, [])):
        cfg = compose("simple_baseline", base + [f"logger.media={media}"])
        found = [c.frames for c in _callbacks(cfg, tmp_path) if isinstance(c, ValidationMedia)]
        assert found == expected
    with pytest.raises(ConfigError, match="logger.media"):
        ValidationMedia(-1)
