"""`vidpose train` trains, first, the experiments whose checkpoints a config reads (run:<exp>)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from vidpose.cli import main
from vidpose.config import compose
from vidpose.errors import InputError
from vidpose.run.prerequisites import inherited_overrides, missing_prerequisites, resolve_run_reference

SHRINK = ["trainer.max_steps=2", "trainer.limit_val_batches=1", "trainer.max_epochs=1",
          "data.input_size=[64,48]"]


def test_a_prerequisite_inherits_data_trainer_logger_and_runs_settings_only():
    overrides = ["data=synth_tiny", "data.root=/x", "trainer.max_steps=2", "runs_dir=/r",
                 "logger.wandb=false", "seed=3", "model.lr=0.1", "init_from=null",
                 "experiment.scale=paper", "experiment.monitor=val/AP", "database.x=1"]
    assert inherited_overrides(overrides) == [
        "data=synth_tiny", "data.root=/x", "trainer.max_steps=2", "runs_dir=/r",
        "logger.wandb=false", "seed=3", "experiment.scale=paper"]


def test_train_runs_a_missing_prerequisite_first_and_only_once(quick_overrides, capsys):
    args = quick_overrides + SHRINK
    cfg = compose("stm_t2_edges_finetune", args)
    assert missing_prerequisites(cfg) == ["stm_t2_edges_pretrain"]
    assert main(["train", "stm_t2_edges_finetune", *args]) == 0
    out = capsys.readouterr().out
    assert "reads a trained 'stm_t2_edges_pretrain', which has no run" in out
    assert re.search(r"init_from: loaded (\d+)/\1 tensors", out)  # every tensor
    runs = Path(cfg.runs_dir)
    assert len(list((runs / "stm_t2_edges_pretrain").glob("*/checkpoints/last.ckpt"))) == 1
    assert missing_prerequisites(compose("stm_t2_edges_finetune", args)) == []
    assert main(["train", "stm_t2_edges_finetune", *args]) == 0
    assert "which has no run" not in capsys.readouterr().out
    assert len(list((runs / "stm_t2_edges_pretrain").glob("*/checkpoints/last.ckpt"))) == 1


def test_the_flagship_trains_the_ae_then_the_decoder_and_prints_its_table(
        quick_overrides, image_overrides, capsys):
    args = quick_overrides + image_overrides + [
        "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]
    assert main(["train", "rnn_association", *args]) == 0
    out = capsys.readouterr().out
    assert "reads a trained 'assoc_embedding', which has no run" in out
    table = out[out.index("| COCO AP (%) | normal | crowded |"):].splitlines()
    assert table[2].startswith("| RNN decoder | ") and table[3].startswith("| AE grouping | ")
    runs = Path(compose("rnn_association", args).runs_dir)
    run_dir = next((runs / "rnn_association").glob("*"))
    # Under the table: how to read it, the paper's numbers and where the run is.
    notes = "\n".join(table[table.index("How to read it:"):])
    assert "val/AP 58.7" in notes and "val/crowded_AP_ae 32.1" in notes
    assert f"Run folder: {run_dir};" in notes
    written = sorted(p.name for p in (run_dir / "predictions" / "val").glob("*.json"))
    assert written == ["crowded_ae.json", "crowded_rnn.json", "val_ae.json", "val_rnn.json"]
    # The checkpoint carries the AE: it evaluates with no AE run around.
    for ae_run in (runs / "assoc_embedding").glob("*/checkpoints/*.ckpt"):
        ae_run.unlink()
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert main(["eval", "rnn_association", *args, "model.features=null",
                 "--ckpt", str(ckpt)]) == 0
    assert "| AE grouping | " in capsys.readouterr().out


def test_a_run_reference_is_the_newest_run_in_the_order_runs_were_made(tmp_path):
    for name in ("20260101-120000-2", "20260101-120000-10", "eval-20270101-000000"):
        (tmp_path / "centernet" / name / "checkpoints").mkdir(parents=True)
        (tmp_path / "centernet" / name / "checkpoints" / "last.ckpt").write_bytes(b"")
    newest = tmp_path / "centernet" / "20260101-120000-10" / "checkpoints" / "last.ckpt"
    assert resolve_run_reference("run:centernet", tmp_path, "--detector") == newest
    with pytest.raises(InputError, match="field '--detector': no run of experiment 'stm'"):
        resolve_run_reference("run:stm", tmp_path, "--detector")
