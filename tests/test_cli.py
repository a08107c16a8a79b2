"""The commands as a user types them: list, bad names, data synth/preview, train, eval, resume."""
from __future__ import annotations

import json
import subprocess
import sys

import lightning as L
import pytest
import torch
from crashing import Crash

import vidpose.run.trainer as run_trainer
from vidpose.cli import main
from vidpose.config import compose
from vidpose.run import RUN_DIR_ENV, train

SMALL = ["model.resnet=resnet18", "model.deconv_filters=32", "data.input_size=[64,48]",
         "experiment.scale=compact"]


def test_list_shows_experiments_with_their_rows(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "simple_baseline" in out and "Xiao" in out
    # The method comes from the experiment's bases (_base/stm.yaml) when the file omits it.
    stm_row = next(line for line in out.splitlines() if "stm_t1_focal" in line)
    assert " stm " in stm_row and "?" not in stm_row


def test_list_shows_aliases_with_their_own_rows(capsys):
    """One configuration, several paper rows: the duplicates are aliases (issue 16 point 16)."""
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 4}
    for alias, target in (("rnn_t3_learned", "rnn_t1_ours"), ("rnn_t7_h2_learned", "rnn_t1_ours"),
                          ("rnn_t4_aa", "rnn_association"), ("rnn_t5_loop2", "rnn_association"),
                          ("rnn_t7_h2_random", "rnn_t3_random")):
        assert f"alias of {target}" in rows[alias] and " rnn_decoder " in rows[alias]
    assert "alias of" not in rows["rnn_t1_ours"] and "alias of" not in rows["rnn_t3_random"]


def test_unknown_experiment_exits_2_with_one_line():
    proc = subprocess.run([sys.executable, "-m", "vidpose.cli", "train", "simple_baselin"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "simple_baseline" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_key_exits_2_naming_it(capsys):
    assert main(["train", "simple_baseline", "trainer.max_epoch=1"]) == 2
    err = capsys.readouterr().err
    assert "trainer.max_epoch" in err and "trainer.max_epochs" in err


def test_data_synth_and_preview(tmp_path, capsys):
    out = tmp_path / "tiny"
    assert main(["data", "synth", "--preset", "tiny", "--out", str(out), "--seed", "3"]) == 0
    assert (out / "manifest.json").is_file()
    assert any((out / "posetrack18" / "annotations" / "val").glob("*.json"))
    png = tmp_path / "sheet.png"
    assert main(["data", "preview", "--root", str(out), "--out", str(png), "-n", "4"]) == 0
    assert png.stat().st_size > 1000
    maps = tmp_path / "map_augmentation.png"
    assert main(["data", "map-augmentation", "--root", str(out), "--out", str(maps)]) == 0
    assert maps.stat().st_size > 1000


def test_train_then_eval_writes_a_run_folder(quick_overrides, tmp_path, capsys):
    args = quick_overrides + SMALL + ["trainer.max_epochs=1", "trainer.limit_train_batches=3"]
    assert main(["train", "simple_baseline", *args]) == 0
    run_dir = next((tmp_path / "runs" / "simple_baseline").iterdir())
    assert (run_dir / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert list((run_dir / "checkpoints").glob("best-*.ckpt"))
    assert (run_dir / "csv" / "metrics.csv").read_text().count("val/mAP") >= 1
    assert list((run_dir / "predictions" / "val").glob("*.json"))
    out = capsys.readouterr().out
    assert "val/mAP" in out
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert main(["eval", "simple_baseline", *args, "--ckpt", str(ckpt)]) == 0
    assert "val/mAP" in capsys.readouterr().out
    assert main(["eval", "simple_baseline", *args, "--ckpt", str(tmp_path / "nope.ckpt")]) == 2
    # The written prediction files score with `vidpose eval posetrack` as the run logged them.
    report = tmp_path / "report" / "report.md"
    assert main(["report", str(run_dir), "--out", str(report)]) == 0
    assert "val/mAP" in report.read_text() and list(report.parent.glob("*.png"))
    assert main(["report", str(tmp_path / "not_a_run"), "--out", str(report)]) == 2


def test_eval_coco_scores_ground_truth_as_100(fixtures, tmp_path, capsys):
    gt = fixtures / "coco" / "test_coco.json"
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in json.loads(gt.read_text())["annotations"] if a.get("num_keypoints", 0) > 0]
    (tmp_path / "results.json").write_text(json.dumps(results))
    out = tmp_path / "coco.json"
    assert main(["eval", "coco", "--gt", str(gt), "--pred", str(tmp_path / "results.json"),
                 "--out", str(out)]) == 0
    assert "AP   100.0" in capsys.readouterr().out
    assert json.loads(out.read_text())["AP"] == 100.0
    assert main(["eval", "coco", "--gt", str(gt), "--pred", str(tmp_path / "none.json")]) == 2


class _FirstStep(L.Callback):
    def __init__(self) -> None:
        self.first: int | None = None

    def on_train_batch_start(self, trainer, *args) -> None:
        if self.first is None:
            self.first = trainer.global_step


def test_resume_last_continues_from_the_saved_step(quick_overrides, tmp_path, monkeypatch):
    # An epoch of 10 batches, last.ckpt every 2 steps, a crash at step 5: mid-epoch.
    args = quick_overrides + SMALL + ["trainer.max_steps=8", "trainer.max_epochs=5",
                                      "trainer.limit_train_batches=10",
                                      "trainer.checkpoint_every_n_steps=2",
                                      "data.max_train_samples=40", "data.batch_size=4"]
    cfg = compose("simple_baseline", args)
    original = run_trainer._callbacks
    monkeypatch.setattr(run_trainer, "_callbacks", lambda c, d: original(c, d) + [Crash(5)])
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg)
    run_dir = next((tmp_path / "runs" / "simple_baseline").iterdir())
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert saved["global_step"] == 4

    first = _FirstStep()
    monkeypatch.setattr(run_trainer, "_callbacks", lambda c, d: original(c, d) + [first])
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    result = train(compose("simple_baseline", args), resume="last")
    assert result.run_dir == run_dir  # same folder, not a new run
    assert first.first == 4
    final = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert final["global_step"] == 8


def test_one_last_checkpoint_per_run(quick_overrides, tmp_path):
    # Two epochs of 3 steps with a step interval of 2: last.ckpt must be the final state,
    # written by one callback (no last-v1.ckpt beside it).
    args = quick_overrides + SMALL + ["trainer.max_epochs=2", "trainer.limit_train_batches=3",
                                      "trainer.checkpoint_every_n_steps=2"]
    result = train(compose("simple_baseline", args))
    names = sorted(p.name for p in (result.run_dir / "checkpoints").iterdir())
    assert "last.ckpt" in names and not [n for n in names if n.startswith("last-")]
    assert torch.load(result.run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 6


def test_overrides_may_follow_the_options(capsys):
    assert main(["eval", "simple_baseline", "--ckpt", "nope.ckpt", "trainer.max_epochs=1"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "simple_baseline", "--ckpt", "nope.ckpt", "--bogus"])
