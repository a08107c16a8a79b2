"""Smoke runs in one word: debug=smoke (make smoke EXP=...) and Lightning's own Trainer flags."""
from __future__ import annotations

from pathlib import Path

import pytest

from vidpose.cli import main
from vidpose.config import compose, list_experiments
from vidpose.data_modules.config import DATASETS as SYNTH_DATASETS
from vidpose.errors import ConfigError
from vidpose.run import train
from vidpose.run.prerequisites import inherited_overrides

# One experiment of each method family at the paper scale too (whose blocks the group follows).
PAPER_SCALE = ("simple_baseline", "centernet", "rnn_association", "memory_t2_coda",
               "stm_t3_c1_pretrain", "correspondence_t7_full", "correspondence_siamese")


@pytest.mark.slow  # ~100 composes: 10-50 s on two shared cores
def test_the_smoke_group_shrinks_every_experiment_at_either_scale():
    runs = [(name, "compact") for name in list_experiments()] + [(n, "paper") for n in PAPER_SCALE]
    for name, scale in runs:
        cfg = compose(name, ["debug=smoke", f"experiment.scale={scale}"])
        t = cfg.trainer
        assert (t.max_steps, t.max_epochs, t.limit_val_batches, t.max_time) == (2, 1, 1, None)
        assert cfg.runs_dir == "runs/smoke" and not cfg.logger.wandb
        assert cfg.data.synth_preset == "tiny"
        for key in ("root", "val_root", "crowded_root"):
            root = cfg.data.get(key)
            if root:  # each synthetic root moved to the tiny set of the same layout
                assert Path(root).parent.name == "tiny" and Path(root).name in SYNTH_DATASETS


def test_smoke_on_real_data_shrinks_the_run_and_keeps_the_data():
    cfg = compose("simple_baseline", ["data=posetrack18", "data.root=/data/posetrack18",
                                      "debug=smoke"])
    assert (cfg.data.root, cfg.data.synth_preset, cfg.trainer.max_steps) == (
        "/data/posetrack18", None, 2)


def test_a_prerequisite_is_smoke_run_too():
    assert inherited_overrides(["debug=smoke", "model.lr=1"]) == ["debug=smoke"]


@pytest.mark.parametrize("override, message", [
    ("trainer.fast_dev_rn=true", "unknown key 'trainer.fast_dev_rn' (did you mean "
                                 "'trainer.fast_dev_run'?)"),
    ("trainer.overfit_batch=2", "(did you mean 'trainer.overfit_batches'?)"),
    ("trainer.max_epoch=2", "(did you mean 'trainer.max_epochs'?)"),
    ("trainer.logger=false", "'trainer.logger' is set by the run itself (from logger.*)"),
])
def test_a_wrong_trainer_key_is_a_did_you_mean_line(capsys, override, message):
    assert main(["train", "simple_baseline", override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vidpose: error: command-line overrides: ") and message in err
    assert len(err.splitlines()) == 1


def test_lightnings_flags_pass_through():
    cfg = compose("simple_baseline", ["trainer.fast_dev_run=true", "trainer.overfit_batches=2",
                                      "trainer.profiler=simple", "trainer.detect_anomaly=true"])
    assert (cfg.trainer.fast_dev_run, cfg.trainer.overfit_batches, cfg.trainer.profiler,
            cfg.trainer.detect_anomaly) == (True, 2, "simple", True)
    with pytest.raises(ConfigError, match="trainer.benchmarks"):
        compose("simple_baseline", ["trainer.benchmarks=true"])


@pytest.mark.slow  # ~14 s on two shared cores
def test_a_fast_dev_run_trains_one_batch(quick_overrides):
    cfg = compose("simple_baseline", quick_overrides + ["trainer.fast_dev_run=true",
                                                        "data.input_size=[64,48]"])
    result = train(cfg)
    assert "train/loss" in result.metrics
    assert (result.run_dir / "config.yaml").read_text().count("fast_dev_run: true") == 1
