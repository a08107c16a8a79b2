"""The STM experiment files: the paper's schedule, one keypoint layout, every table row."""
from __future__ import annotations

import pytest

from vidpose.config import compose, list_experiments

STM = sorted(name for name in list_experiments() if name.startswith("stm_"))


@pytest.mark.parametrize("scale", ["compact", "paper"])
def test_pre_training_runs_5_epochs_at_paper_scale_and_one_layout_throughout(scale):
    for name in STM:
        cfg = compose(name, [f"experiment.scale={scale}"])
        # COCO pre-training and PoseTrack18 fine-tuning predict the same channels.
        assert cfg.data.keypoint_schema == "posetrack18", name
        if scale == "paper" and not cfg.init_from:  # a pre-training (Sec. 3.3: 5 epochs)
            assert cfg.trainer.max_epochs == 5, name


def test_tables_1_and_2_have_every_row():
    rows = {}
    for name in STM:
        cfg = compose(name)
        rows[cfg.experiment.reproduces] = (name, cfg)
    for loss in ("cc", "mse", "focal"):
        for dataset in ("MS-COCO_VValidation", "PoseTrack18_VValidation"):
            assert f"Dufour et al., Table 1, {loss} loss ({dataset} rows)" in rows
    for model in ("Focal Loss pre-trained", "Focal Loss fine-tuned 30 epochs"):
        for dataset in ("MS-COCO Validation", "PoseTrack18 Validation"):
            assert f"Dufour et al., Table 2, {model} ({dataset} row)" in rows
    # The PoseTrack18 rows of pre-trained models validate on video clips; the fine-tuned
    # model's MS-COCO row trains on video clips and validates on single-image sequences.
    for reproduces, (name, cfg) in rows.items():
        if "Table 3" in reproduces:
            continue
        videos_in_val = "PoseTrack18" in reproduces
        fine_tuned = "fine-tuned" in reproduces
        if cfg.experiment.datamodule == "sequences":
            assert cfg.data.sequence.val_videos == videos_in_val, name
            assert cfg.data.sequence.train_videos == fine_tuned, name
        else:  # clips: videos in both
            assert videos_in_val and fine_tuned, name
        assert set(cfg.experiment.paper_metrics) == {"pixel_precision", "pixel_recall", "pixel_f1"}


def test_the_map_augmentation_strengths_are_declared_ours():
    for name in STM:
        cfg = compose(name)
        augmentation = cfg.data.map_augmentation
        for key in ("jitter", "rand", "baits"):
            if augmentation[key] > 0:
                assert f"{key} = " in " ".join(cfg.experiment.open_values.split()), name
