"""`vidpose infer`: STM online over whole videos, PoseTrack18 detections, keypoint scores."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from vidpose.cli import main
from vidpose.data_modules.datasets import as_data_config
from vidpose.data_modules.sources import load_split
from vidpose.data_modules.transforms import letterbox
from vidpose.methods import stm_video
from vidpose.methods.stm import STMSkeletons
from vidpose.metrics.posetrack import evaluate_posetrack

SHRINK = ["trainer.max_steps=2", "trainer.limit_val_batches=1", "trainer.max_epochs=1",
          "data.input_size=[64,80]", "init_from=null"]


def _train_and_infer(name: str, args: list[str], tmp_path, capsys):
    """`vidpose train` then `vidpose infer` ``name``: (what infer printed, its --out folder)."""
    assert main(["train", name, *args]) == 0
    ckpt = next((tmp_path / "runs" / name).glob("*/checkpoints/last.ckpt"))
    out = tmp_path / "infer"
    assert main(["infer", name, *args, "--ckpt", str(ckpt), "--out", str(out)]) == 0
    return capsys.readouterr().out, out


def test_infer_writes_detections_for_every_frame_of_every_video(quick_overrides, tmp_path, capsys):
    printed, out = _train_and_infer("stm_t3_c1_finetune", quick_overrides + SHRINK, tmp_path, capsys)
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


def test_infer_scores_the_maps_of_the_variants_without_keypoints(quick_overrides, tmp_path, capsys):
    """Tables 1-2 (skeleton map, edges): pixel P/R/F1 over whole videos, no keypoint files."""
    printed, out = _train_and_infer("stm_t2_edges_pretrain_posetrack", quick_overrides + SHRINK,
                                    tmp_path, capsys)
    assert "val/pixel_f1" in printed and "val/f1 " not in printed
    assert not list((out / "predictions" / "val").glob("*.json"))


def test_infer_pixel_scores_are_100_for_the_ground_truth_maps(tiny_synth):
    """Fed its own ground-truth maps with the segmentation left empty, a video scores 100."""
    cfg = as_data_config({"root": str(tiny_synth / "posetrack18"), "synth_preset": None,
                          "input_size": [64, 80], "sigma": 1.5})
    data = load_split(cfg, "val")
    model = STMSkeletons({"variant": "edges", "resnet": "resnet18", "key_dim": 8,
                          "value_dim": 16, "decoder_dim": 8}, {"heatmap_stride": 4})

    def ground_truth(frames):
        start = next(i for i, f in enumerate(frames) if f.is_labeled and f.poses)
        image = stm_video.read_image(data, frames[start])
        _, affine = letterbox(image[None], (64, 80))
        for frame in frames[start:]:
            maps = (stm_video._ground_truth_maps(model, frame, affine, cfg) if frame.poses
                    else torch.zeros(model.num_maps, 16, 20))
            maps[0] = 0.0  # no person segmentation: it must not count
            yield maps

    videos = iter(data.videos().values())  # infer_split streams them in this order
    model.stream = lambda images, first: ground_truth(next(videos))
    scores = stm_video.infer_split(model, data, cfg, Path("unused"), progress=False)
    assert set(scores) == {"pixel_precision", "pixel_recall", "pixel_f1"}
    assert scores["pixel_recall"] == 100.0 and scores["pixel_precision"] == 100.0
    assert not np.isnan(scores["pixel_f1"])
