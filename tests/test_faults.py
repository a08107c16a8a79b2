"""Faults a training run meets, tried as a user meets them: SIGTERM, a full disk, truncated and
foreign checkpoints, a changed config on resume, a mistyped data root, a crash mid-epoch.
Each test asserts that nothing logged or checkpointed before the fault is lost.

One tiny Associative Embedding run (1 hourglass of 16 channels, 64x64 images, 6 batches an
epoch), stopped by SIGTERM in a subprocess, is shared by the tests of this module.
"""
from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from crashing import Crash

import vidpose.run.trainer as run_trainer
from vidpose.callbacks.checkpoint import AtomicCheckpointIO, atomic_write, read_checkpoint
from vidpose.cli import main
from vidpose.config import compose
from vidpose.errors import ConfigError, InputError
from vidpose.report import run_metrics
from vidpose.run import RUN_DIR_ENV, train
from vidpose.run.folders import plan_resume

EXP = "assoc_embedding"
VIDPOSE = [sys.executable, "-m", "vidpose.cli"]

pytestmark = pytest.mark.slow


def _tiny(tiny_synth: Path, runs: Path) -> list[str]:
    return ["data=synth_tiny", f"data.root={tiny_synth / 'coco'}", "data.dataset=coco",
            "data.input_size=[64,64]", "data.crowded_root=null", "data.num_workers=0",
            "data.batch_size=2", f"runs_dir={runs}", "logger.wandb=false",
            "trainer.progress_bar=false", "trainer.accelerator=cpu", "trainer.devices=1",
            "model.num_stacks=1", "model.channels=16", "model.depth=2",
            "trainer.limit_val_batches=1", "trainer.log_every_n_steps=1"]


def _losses(run_dir: Path) -> dict[int, float]:
    log = run_metrics(run_dir, prefix="train/")["train/loss_step"]
    assert len(set(log.steps.tolist())) == len(log.steps), "a step logged twice"
    return dict(zip(log.steps.tolist(), log.values.tolist()))


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("vidpose:")]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def stopped(tiny_synth, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path, list[str]]:
    """A run that SIGTERM stopped mid-training: (its process, its folder, its overrides)."""
    runs = tmp_path_factory.mktemp("faults") / "runs"
    args = _tiny(tiny_synth, runs) + ["trainer.max_steps=200", "trainer.max_epochs=100",
                                      "trainer.checkpoint_every_n_steps=1000"]
    proc = subprocess.Popen(VIDPOSE + ["train", EXP, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # Wait until the CSV log (rows are written at once) shows the first validation (so a
    # best-*.ckpt exists) and two more steps, then stop the run the way a scheduler does.
    deadline, rows = time.monotonic() + 300, None
    while time.monotonic() < deadline and proc.poll() is None:
        logs = list((runs / EXP).glob("*/csv/metrics.csv"))
        text = logs[0].read_text() if logs else ""
        if rows is None and "val/AP" in text.partition("\n")[0]:
            rows = text.count("\n")
        if rows is not None and text.count("\n") >= rows + 2:
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    (run_dir,) = (runs / EXP).iterdir()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), run_dir, args


def test_sigterm_saves_last_ckpt_and_resume_keeps_the_history(stopped, tmp_path):
    proc, run_dir, args = stopped
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert "SIGTERM" in _one_line(proc.stderr)
    # No periodic checkpoint was due: last.ckpt is SIGTERM's, at the step the log reached.
    step = read_checkpoint(run_dir / "checkpoints" / "last.ckpt", field="t")["global_step"]
    before = _losses(run_dir)
    assert step >= 2 and sorted(before) == list(range(step))

    # Resume as the README says (no original ARGS; runs_dir only locates the run here).
    run = tmp_path / run_dir.name
    shutil.copytree(run_dir, run)
    runs = tmp_path / "runs" / EXP
    runs.mkdir(parents=True)
    run = Path(shutil.move(str(run), runs))
    config, log = (run / "config.yaml").read_bytes(), (run / "csv" / "metrics.csv").read_bytes()
    resumed = subprocess.run(VIDPOSE + ["train", EXP, f"runs_dir={tmp_path / 'runs'}",
                                        f"trainer.max_steps={step + 2}", "--resume", "last"],
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (run / "config.yaml").read_bytes() == config  # never rewritten
    assert (run / "csv" / "metrics.csv").read_bytes() == log  # the first attempt's log kept
    record = (run / "resume-1.yaml").read_text()
    assert f"step: {step}" in record and "trainer.max_steps" in record
    after = _losses(run)
    assert sorted(after) == list(range(step + 2))  # one curve: every step, once
    assert all(after[s] == before[s] for s in before)
    assert read_checkpoint(run / "checkpoints" / "last.ckpt", field="t")["global_step"] == step + 2


def test_full_disk_while_saving_keeps_the_previous_last(stopped, tmp_path):
    _, run_dir, args = stopped
    run = tmp_path / "runs" / EXP / run_dir.name
    shutil.copytree(run_dir, run)
    last = run / "checkpoints" / "last.ckpt"
    good = last.read_bytes()

    def small_files() -> None:  # a disk with room for the logs but not for a checkpoint
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(good) // 2, len(good) // 2))

    proc = subprocess.run(VIDPOSE + ["train", EXP, f"runs_dir={tmp_path / 'runs'}",
                                     "trainer.checkpoint_every_n_steps=1", "--resume", "last"],
                          capture_output=True, text=True, timeout=600, preexec_fn=small_files)
    assert proc.returncode == 2
    line = _one_line(proc.stderr)
    assert str(last) in line and "could not write" in line and "previous file is kept" in line
    assert last.read_bytes() == good
    assert not [p for p in last.parent.iterdir() if p.name.startswith(".")]  # no temp file left


def test_truncated_last_falls_back_to_the_newest_checkpoint_that_loads(stopped, tmp_path, capsys):
    _, run_dir, args = stopped
    run = tmp_path / "runs" / EXP / run_dir.name
    shutil.copytree(run_dir, run)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 3])  # a copy cut short
    (best,) = run.glob("checkpoints/best-*.ckpt")
    plan = plan_resume(compose(EXP, [f"runs_dir={tmp_path / 'runs'}"]), "last")
    assert plan.checkpoint == best and plan.run_dir == run
    assert plan.step == read_checkpoint(best, field="t")["global_step"]
    warning = capsys.readouterr().err
    assert str(last) in warning and str(best) in warning and "truncated" in warning
    # Nothing loads: one line naming the file.
    best.write_text("not a checkpoint\n")
    with pytest.raises(InputError, match="no other checkpoint of this run loads"):
        plan_resume(compose(EXP, [f"runs_dir={tmp_path / 'runs'}"]), "last")


def test_bad_checkpoint_files_are_one_line_everywhere(stopped, tmp_path, capsys):
    _, run_dir, args = stopped
    text = tmp_path / "notes.ckpt"
    text.write_text("hello\n")
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes((run_dir / "checkpoints" / "last.ckpt").read_bytes()[:5000])
    quick = [a for a in args if not a.startswith("runs_dir=")] + [f"runs_dir={tmp_path / 'runs'}"]
    for bad in (text, cut):
        assert main(["eval", EXP, *quick, "--ckpt", str(bad)]) == 2
        assert capsys.readouterr().err.startswith(f"vidpose: error: {bad}: field 'CKPT': not a ")
        assert main(["track", "--exp", EXP, "--ckpt", str(bad), "--video", str(tmp_path),
                     "--out", str(tmp_path / "out"), *quick]) == 2
        assert f"{bad}: field 'CKPT'" in capsys.readouterr().err
        assert main(["train", EXP, *quick, f"init_from={bad}"]) == 2
        assert f"{bad}: field 'init_from': not a readable checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "runs" / EXP).exists() or not list((tmp_path / "runs" / EXP).iterdir())
    # --resume PATH takes only a checkpoint inside a run folder.
    loose = tmp_path / "loose.ckpt"
    shutil.copy(run_dir / "checkpoints" / "last.ckpt", loose)
    assert main(["train", EXP, *quick, "--resume", str(loose)]) == 2
    assert "not a checkpoint inside a run folder" in capsys.readouterr().err


def test_resume_refuses_a_changed_model_and_keeps_config_yaml(stopped, tmp_path):
    _, run_dir, args = stopped
    run = tmp_path / "runs" / EXP / run_dir.name
    shutil.copytree(run_dir, run)
    saved = (run / "config.yaml").read_bytes()
    runs = f"runs_dir={tmp_path / 'runs'}"
    with pytest.raises(ConfigError, match=r"model.channels cannot change .* 16.* 32"):
        plan_resume(compose(EXP, [runs, "model.channels=32"]), "last")
    # The run's own values repeated, and limits and logging changed, are fine.
    again = args + ["trainer.max_steps=7", "data.num_workers=1"]
    plan = plan_resume(compose(EXP, again), "last", again)
    assert plan.overrides == {"trainer.max_steps": 7, "data.num_workers": 1}
    assert plan.cfg.model.channels == 16 and plan.cfg.trainer.max_steps == 7
    assert (run / "config.yaml").read_bytes() == saved and not list(run.glob("resume-*"))


def test_mid_epoch_resume_repeats_the_uninterrupted_run_step_by_step(tiny_synth, tmp_path,
                                                                      monkeypatch):
    # 6 batches an epoch, last.ckpt every 2 steps, a crash after step 9: resumed from step 8,
    # two batches into the second epoch, with augmentation on.
    limits = ["trainer.max_steps=11", "trainer.max_epochs=5", "trainer.checkpoint_every_n_steps=2",
              "trainer.limit_val_batches=0"]
    args = _tiny(tiny_synth, tmp_path / "runs") + limits
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    whole = train(compose(EXP, _tiny(tiny_synth, tmp_path / "whole") + limits))
    original = run_trainer._callbacks
    monkeypatch.setattr(run_trainer, "_callbacks", lambda c, d: original(c, d) + [Crash(9)])
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(compose(EXP, args))
    monkeypatch.setattr(run_trainer, "_callbacks", original)
    resumed = train(compose(EXP, [f"runs_dir={tmp_path / 'runs'}"]), resume="last")
    expected, got = _losses(whole.run_dir), _losses(resumed.run_dir)
    assert sorted(got) == sorted(expected) == list(range(11))
    np.testing.assert_allclose([got[s] for s in range(11)], [expected[s] for s in range(11)],
                               rtol=1e-6)


def test_a_mistyped_real_data_root_is_not_filled_with_synthetic_data(tmp_path, capsys):
    # The user meant real PoseTrack18 under /data but forgot data=posetrack18: the synthetic
    # preset of the experiment must not write a synthetic set into their data folder.
    root = tmp_path / "data" / "posetrack18"
    assert main(["train", "simple_baseline", f"data.root={root}", f"runs_dir={tmp_path / 'runs'}",
                 "logger.wandb=false"]) == 2
    err = capsys.readouterr().err
    assert f"{root}: field 'data.root'" in err and "data=posetrack18" in err
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


def test_a_run_that_fails_before_its_first_step_leaves_no_folder(tiny_synth, tmp_path, capsys):
    # A real-data root that exists but holds no annotations fails inside fit (data setup).
    empty = tmp_path / "coco"
    empty.mkdir()
    args = [a for a in _tiny(tiny_synth, tmp_path / "runs") if not a.startswith("data.root")]
    assert main(["train", EXP, *args, "data=coco", f"data.root={empty}",
                 "experiment.scale=compact"]) == 2
    assert str(empty) in capsys.readouterr().err
    assert not list((tmp_path / "runs").glob(f"{EXP}/*"))


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)
    good = path.read_bytes()

    def full_disk(handle):
        handle.write(b"partial")
        raise OSError(28, "No space left on device")

    kept = r"could not write \(No space left on device\); the previous file is kept"
    with pytest.raises(InputError, match=kept):
        atomic_write(path, full_disk)
    assert path.read_bytes() == good and sorted(os.listdir(tmp_path)) == ["last.ckpt"]
