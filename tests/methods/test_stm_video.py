"""`vidpose infer`: STM online over whole videos, PoseTrack18 detections, keypoint scores."""
from __future__ import annotations

import json
from pathlib import Path

from vidpose.cli import main
from vidpose.metrics.posetrack import evaluate_posetrack

SHRINK = ["trainer.max_steps=2", "trainer.limit_val_batches=1", "trainer.max_epochs=1",
          "data.input_size=[64,80]", "init_from=null"]


def test_infer_writes_detections_for_every_frame_of_every_video(quick_overrides, tmp_path, capsys):
    args = quick_overrides + SHRINK
    assert main(["train", "stm_t3_c1_finetune", *args]) == 0
    ckpt = next((tmp_path / "runs" / "stm_t3_c1_finetune").glob("*/checkpoints/last.ckpt"))
    out = tmp_path / "infer"
    assert main(["infer", "stm_t3_c1_finetune", *args, "--ckpt", str(ckpt), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "val/f1" in printed and "val/recall" in printed
    root = next(a.split("=", 1)[1] for a in quick_overrides if a.startswith("data.root="))
    gt_dir = Path(root) / "annotations" / "val"
    files = sorted((out / "predictions" / "val").glob("*.json"))
    assert [f.name for f in files] == sorted(p.name for p in gt_dir.glob("*.json"))
    for file in files:
        gt = json.loads((gt_dir / file.name).read_text())
        pred = json.loads(file.read_text())
        assert [im["id"] for im in pred["images"]] == [im["id"] for im in gt["images"]]
        # Every annotation is one detected joint with its score.
        for ann in pred["annotations"]:
            assert sum(1 for s in ann["scores"] if s > 0) == 1
    assert (out / "predictions" / "val" / "recall_over_time.png").stat().st_size > 1000
    # The files are valid PoseTrack18 results: the evaluator reads them.
    assert evaluate_posetrack(gt_dir, out / "predictions" / "val").num_videos == len(files)


def test_infer_refuses_experiments_without_video_inference(quick_overrides, tmp_path, capsys):
    ckpt = tmp_path / "x.ckpt"
    ckpt.write_bytes(b"0")
    assert main(["infer", "simple_baseline", *quick_overrides, "--ckpt", str(ckpt)]) == 2
    assert "STM" in capsys.readouterr().err
