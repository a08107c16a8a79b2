"""W&B: one run per training, modes that mean what they say, runs grouped by paper table."""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
import wandb
from lightning.pytorch.loggers import WandbLogger
from wandb.proto import wandb_internal_pb2

from vidpose.cli import main
from vidpose.config import compose, wandb_group, wandb_tags
from vidpose.errors import ConfigError
from vidpose.run.trainer import _loggers, wandb_mode

SHRINK = ["trainer.max_steps=2", "trainer.limit_val_batches=1", "trainer.max_epochs=1",
          "data.input_size=[64,48]"]


def wandb_of(cfg, tmp_path) -> WandbLogger | None:
    found = [lg for lg in _loggers(cfg, tmp_path) if isinstance(lg, WandbLogger)]
    return found[0] if found else None


@pytest.mark.parametrize("env, overrides, expected", [
    (None, [], "offline"),
    ("offline", [], "offline"),
    ("online", [], "online"),
    ("disabled", [], "disabled"),  # was an offline run folder
    (None, ["logger.mode=disabled"], "disabled"),
    (None, ["logger.mode=online"], "online"),
    ("offline", ["logger.mode=online"], "offline"),  # the environment wins
    (None, ["logger.wandb=false"], "disabled"),
])
def test_wandb_mode(monkeypatch, env, overrides, expected):
    monkeypatch.delenv("WANDB_SWEEP_ID", raising=False)
    if env is None:
        monkeypatch.delenv("WANDB_MODE", raising=False)
    else:
        monkeypatch.setenv("WANDB_MODE", env)
    assert wandb_mode(compose("simple_baseline", overrides)) == expected


def test_disabled_makes_no_wandb_logger(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_of(compose("simple_baseline"), tmp_path) is None
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_of(compose("simple_baseline", ["logger.mode=disabled"]), tmp_path) is None
    assert wandb_of(compose("simple_baseline"), tmp_path) is not None


def test_a_sweep_agents_runs_log_online_unless_wandb_mode_says_otherwise(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SWEEP_ID", "abc123")
    # The command line sets no WANDB_MODE of its own that would hide the sweep.
    assert main(["list"]) == 0
    assert "WANDB_MODE" not in __import__("os").environ
    logger = wandb_of(compose("rnn_t4_ab"), tmp_path)
    assert logger._wandb_init["mode"] == "online" and not logger._offline
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_mode(compose("rnn_t4_ab")) == "offline"
    assert wandb_mode(compose("rnn_t4_ab", ["logger.mode=disabled"])) == "disabled"


def test_a_wrong_mode_is_one_line():
    with pytest.raises(ConfigError, match="logger.mode: 'onlin' is not one of"):
        wandb_mode(compose("simple_baseline", ["logger.mode=onlin"]))


@pytest.mark.parametrize("name, group, job_type, tags", [
    ("rnn_t4_ab", "rnn/table4", "rnn_decoder", ["rnn", "rnn:table4", "compact"]),
    ("rnn_t4_aa", "rnn/table4", "rnn_decoder", None),  # an alias of rnn_association
    ("rnn_f6_omega0p10", "rnn/fig6", "rnn_decoder", ["rnn", "rnn:fig6", "compact"]),
    ("memory_t1_capacity4", "memory/table1", "pose_memory",
     ["memory:table1", "cpn", "capacity", "compact"]),
    ("memory_t3_cpn_memory", "memory/table3", "pose_memory", None),
    ("correspondence_t7_full", "correspondence/table7", "correspondence_tracking", None),
    ("stm_t3_c1_pretrain", "stm/table3", "stm", None),
    ("assoc_embedding", "rnn/table1", "assoc_embedding", None),  # explicit experiment.group
    ("simple_baseline", "simple_baseline", "simple_baseline", None),  # no table: its own name
])
def test_runs_are_grouped_by_paper_table(tmp_path, name, group, job_type, tags):
    cfg = compose(name)
    logger = wandb_of(cfg, tmp_path)
    init = logger._wandb_init
    assert (init["group"], init["job_type"], init["name"]) == (group, job_type,
                                                              cfg.experiment.name)
    assert init["job_type"] == cfg.experiment.method
    if tags is not None:
        assert init["tags"] == tags
    assert wandb_group(cfg.experiment) == group and wandb_tags(cfg.experiment) == init["tags"]


def wandb_records(path: Path) -> list:
    """The records of an offline run's ``run-<id>.wandb`` (wandb's LevelDB-style log: a 7-byte
    file header, then 32 KiB blocks of records, each with a 7-byte header: crc32, length,
    type FULL=1 FIRST=2 MIDDLE=3 LAST=4), as wandb's protobuf Records."""
    data, pos, part, records = path.read_bytes(), 7, b"", []
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            break
        part += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(part)
            records.append(record)
            part = b""
    return records


@pytest.mark.slow
def test_a_prerequisite_and_its_run_are_two_wandb_runs(quick_overrides, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    args = quick_overrides + SHRINK + ["logger.wandb=true"]
    assert main(["train", "stm_t2_edges_finetune", *args]) == 0
    assert wandb.run is None  # finished: nothing left for the next training to log into
    runs = Path(compose("stm_t2_edges_finetune", args).runs_dir)
    ids = set()
    for name in ("stm_t2_edges_pretrain", "stm_t2_edges_finetune"):
        (run_dir,) = (runs / name).glob("*")
        (folder,) = (run_dir / "wandb").glob("offline-run-*")  # its own run, in its own folder
        run_id = (run_dir / "wandb_id.txt").read_text().strip()
        records = wandb_records(folder / f"run-{run_id}.wandb")
        kinds = [r.WhichOneof("record_type") for r in records]
        (run,) = [r.run for r in records if r.HasField("run")]
        assert (run.run_id, run.display_name, run.run_group, run.job_type) == (
            run_id, name, "stm/table2", "stm")
        assert list(run.tags) == ["stm", "stm:table2", "compact"]
        config = {item.key: json.loads(item.value_json) for item in run.config.update}
        assert config["experiment"]["name"] == name  # each run its own config
        monitor = compose(name, args).experiment.monitor
        assert any(r.metric.name == monitor and r.metric.summary.max
                   for r in records if r.HasField("metric"))  # the run table shows the best
        assert "exit" in kinds  # finished
        ids.add(run_id)
    assert len(ids) == 2


def test_make_sets_no_wandb_mode_that_would_hide_a_sweep():
    if shutil.which("make") is None:
        pytest.skip("no make")
    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    env["WANDB_SWEEP_ID"] = "abc123"
    shown = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(repo), "--eval",
         'wandb-mode-of-recipes: ; @echo "mode=[$$WANDB_MODE]"', "wandb-mode-of-recipes"],
        env=env, capture_output=True, text=True, check=True).stdout
    assert shown.strip() == "mode=[]"  # what `make train` hands vidpose: nothing
