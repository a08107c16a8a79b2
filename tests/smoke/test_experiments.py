"""Every experiment file builds and trains for two steps on the tiny synthetic set.

The experiment's own compact config is kept; only data, run folder and step counts shrink
(the lightning-hydra-template way: tests shrink the config, no special code paths).
"""
from __future__ import annotations

import re

import pytest

from vidpose.config import canonical_name, compose, list_experiments
from vidpose.errors import InputError
from vidpose.run import train

SHRINK = ["trainer.max_steps=2", "trainer.limit_val_batches=1", "trainer.max_epochs=1",
          "data.input_size=[64,48]"]


# An alias composes its target's config (tests/test_config.py): the target's run covers it.
@pytest.mark.parametrize("name", sorted(n for n in list_experiments() if canonical_name(n) == n))
def test_experiment_runs_two_steps(name, quick_overrides, request):
    overrides = quick_overrides + SHRINK
    cfg = compose(name, overrides)
    if cfg.experiment.method == "correspondence_tracking":
        # Tracking experiments validate trained models once: no training, no checkpoint.
        result = train(compose(name, overrides + request.getfixturevalue("tracking_models")))
        assert not (result.run_dir / "checkpoints").exists()
        assert {"val/MOTA", "val/mAP", "val/id_switches"} <= set(result.metrics)
        return
    if cfg.experiment.datamodule == "images":
        # Bottom-up experiments read COCO-layout images and score the crowded split too;
        # the RNN decoders decode the features of a two-step AE trained once.
        overrides += request.getfixturevalue("image_overrides")
        if cfg.experiment.method == "rnn_decoder":
            overrides += request.getfixturevalue("ae_features")
    # Fine-tuning experiments start from their pre-training run (tested once below).
    if str(cfg.init_from or "").startswith("run:"):
        overrides.append("init_from=null")
    result = train(compose(name, overrides))
    assert (result.run_dir / "checkpoints" / "last.ckpt").is_file()
    assert any(k.startswith("train/loss") for k in result.metrics)


def full_load(out: str) -> bool:
    """Whether a run printed that init_from loaded every tensor of the model."""
    found = re.search(r"init_from: loaded (\d+)/(\d+) tensors from \S+\n", out)
    return bool(found) and found.group(1) == found.group(2)


def test_fine_tuning_starts_from_the_newest_pretraining_run(quick_overrides, tiny_synth, capsys):
    """The paper's chain: pre-training on COCO-layout images validated on PoseTrack18 videos
    (data.val_root), fine-tuning on the videos; every tensor of the pre-training loads."""
    with pytest.raises(InputError, match="train it first"):
        train(compose("stm_t3_c1_finetune", quick_overrides + SHRINK))
    coco = [f"data.root={tiny_synth / 'coco'}", "data.dataset=coco",
            f"data.val_root={tiny_synth / 'posetrack18'}", "data.val_dataset=posetrack18",
            "data.clip_length=2", "trainer.max_steps=-1", "trainer.limit_train_batches=1"]
    pre = train(compose("stm_t3_c1_pretrain", quick_overrides + SHRINK + coco))
    assert "val/f1" in pre.metrics  # scored on the PoseTrack18 videos
    capsys.readouterr()
    train(compose("stm_t3_c1_finetune", quick_overrides + SHRINK + ["data.clip_length=2"]))
    assert full_load(capsys.readouterr().out)
