"""`vidpose results` (make results): the results page from run folders, no real training here
except one shrunk run that checks what a finished run records."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from functools import partial
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from vidpose.cli import main
from vidpose.config import alias_target, compose, experiments_dir, list_experiments
from vidpose.results import (
    COUNT_EXACT,
    EXPERIMENTS,
    GOALS,
    LEFT_OUT,
    NO_RUN,
    NOT_MEASURABLE,
    NOT_SHOWN,
    SHOWN,
    TABLES,
    Comparison,
    Figure,
    Goal,
    Measured,
    PaperTable,
    finished_run,
    goal_status,
    page,
    persons_counted_exactly,
    train_experiment,
    train_missing,
    verdict,
    write_page,
)
from vidpose.run import train
from vidpose.run.folders import FINISHED_FILE
from vidpose.run.prerequisites import missing_prerequisites

MEMORY, BASELINE = "memory_t3_simple_baseline_memory", "memory_t3_simple_baseline_baseline"
MACHINE = {"accelerator": "cpu", "devices": 1, "cpu": "Test CPU 9000", "cores": 2,
           "torch": "2.0", "lightning": "2.0", "python": "3.11", "precision": "bf16-mixed"}


def fake_run(runs: Path, experiment: str, stamp: str, metrics: dict[str, float],
             paper: dict[str, float] | None = None, wall_s: float | None = 60.0) -> Path:
    """A run folder as `vidpose train` leaves it: config.yaml, csv/metrics.csv (one earlier
    validation, then the final one) and, when it finished, finished.yaml."""
    folder = runs / experiment / stamp
    (folder / "csv").mkdir(parents=True)
    config = {"experiment": {"name": experiment, "monitor": "val/mAP", "monitor_mode": "max",
                             "paper_metrics": paper or {}}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    names = sorted(metrics)
    rows = ["epoch,step," + ",".join(names),
            "0,9," + ",".join("0.5" for _ in names),  # an earlier validation: not the final
            "1,19," + ",".join(str(metrics[n]) for n in names)]
    (folder / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
    if wall_s is not None:
        (folder / FINISHED_FILE).write_text(yaml.safe_dump(
            {"wall_s": wall_s, "attempt": 0, "machine": MACHINE}))
    return folder


TABLE = PaperTable(
    "memory/table3", "Table 3", "The memory improves mAP and lowers the ID switches.",
    (MEMORY, BASELINE), ("val/mAP", "val/id_switches"),
    (Comparison(Figure(MEMORY, "val/mAP"), Figure(BASELINE, "val/mAP")),
     Comparison(Figure(MEMORY, "val/id_switches"), Figure(BASELINE, "val/id_switches"), "min")),
)


def section(markdown: str, heading: str) -> str:
    return markdown.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]


def test_the_page_shows_ours_beside_the_paper_and_the_verdict_follows_the_direction(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, MEMORY, "20260101-000000", {"val/mAP": 55.0, "val/id_switches": 10},
             paper={"mAP": 75.0})
    fake_run(runs, BASELINE, "20260101-000000", {"val/mAP": 50.0, "val/id_switches": 12},
             paper={"val/mAP": 72.4})
    measured = Measured.load(runs, (MEMORY, BASELINE))
    assert verdict(TABLE, measured)[0] == SHOWN
    text = page(measured, runs, tables=(TABLE,), goals=(), experiments=(MEMORY, BASELINE))
    table = section(text, "memory/table3")
    assert "The memory improves mAP" in table
    assert f"| {MEMORY} | 55.0 (paper 75.0) | 10.0 | 1 min 00 s |" in table
    assert f"| {BASELINE} | 50.0 (paper 72.4) | 12.0 |" in table
    assert "**Verdict: shown.**" in table

    # More ID switches with the memory: the "min" comparison fails, so the claim is not shown.
    fake_run(runs, MEMORY, "20260102-000000", {"val/mAP": 55.0, "val/id_switches": 13})
    measured = Measured.load(runs, (MEMORY, BASELINE))
    state, said = verdict(TABLE, measured)
    assert state == NOT_SHOWN
    assert said == [f"- {MEMORY} val/mAP 55.0 > {BASELINE} val/mAP 50.0: yes",
                    f"- {MEMORY} val/id_switches 13.0 < {BASELINE} val/id_switches 12.0: no"]
    # A lower mAP (the "max" direction) flips it too; equal is not better.
    fake_run(runs, MEMORY, "20260103-000000", {"val/mAP": 50.0, "val/id_switches": 1})
    assert verdict(TABLE, Measured.load(runs, (MEMORY, BASELINE)))[0] == NOT_SHOWN


def test_missing_runs_are_marked_and_unlogged_numbers_are_not_measurable(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, MEMORY, "20260101-000000", {"val/mAP": 55.0, "val/id_switches": 10})
    # Not finished (interrupted: no finished.yaml): as good as no run.
    fake_run(runs, BASELINE, "20260101-000000", {"val/mAP": 50.0}, wall_s=None)
    measured = Measured.load(runs, (MEMORY, BASELINE))
    assert verdict(TABLE, measured)[0] == NO_RUN
    text = page(measured, runs, tables=(TABLE,), goals=(), experiments=(MEMORY, BASELINE))
    assert f"| {BASELINE} | — (paper 72.4) | — | — | {NO_RUN} |" in text  # the file's number
    assert f"no run yet: {BASELINE}." in text

    fake_run(runs, BASELINE, "20260102-000000", {"val/mAP": 50.0})  # no ID switches logged
    assert verdict(TABLE, Measured.load(runs, (MEMORY, BASELINE)))[0] == NOT_MEASURABLE
    fake_run(runs, BASELINE, "20260103-000000", {"val/mAP": 50.0, "val/id_switches": math.nan})
    assert verdict(TABLE, Measured.load(runs, (MEMORY, BASELINE)))[0] == NOT_MEASURABLE


def test_train_missing_skips_finished_runs_and_trains_the_rest(tmp_path):
    runs = tmp_path / "runs"
    done = fake_run(runs, MEMORY, "20260101-000000", {"val/mAP": 55.0})
    fake_run(runs, BASELINE, "20260101-000000", {"val/mAP": 50.0}, wall_s=None)  # interrupted
    trained, lines = [], []

    def train_one(name: str, runs_dir: Path) -> Path:
        trained.append(name)
        if name == "simple_baseline":
            raise RuntimeError("out of\nmemory")
        return fake_run(runs_dir, name, "20260105-000000", {"val/mAP": 1.0})

    failed = train_missing(runs, (MEMORY, BASELINE, "simple_baseline"), train_one, lines.append)
    assert trained == [BASELINE, "simple_baseline"]
    assert failed == ["simple_baseline"]
    assert lines[0] == f"[1/3] {MEMORY}: skipped, finished run {done}"
    assert lines[1] == f"[2/3] {BASELINE}: training ..."
    assert lines[2].startswith(f"[2/3] {BASELINE}: trained in ")
    assert lines[4].startswith("[3/3] simple_baseline: FAILED after ")
    assert lines[4].endswith(": out of memory")
    assert finished_run(runs, BASELINE).name == "20260105-000000"
    # Everything finished now but the failed one: a second pass trains only that.
    trained.clear()
    train_missing(runs, (MEMORY, BASELINE, "simple_baseline"), train_one, lines.append)
    assert trained == ["simple_baseline"]


def test_the_page_names_its_total_run_time_and_machine(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, MEMORY, "20260101-000000", {"val/mAP": 55.0}, wall_s=3600.0)
    baseline = fake_run(runs, BASELINE, "20260101-000000", {"val/mAP": 50.0}, wall_s=1805.0)
    # A run made elsewhere says how in its finished.yaml's note; the page repeats it.
    record = yaml.safe_load((baseline / FINISHED_FILE).read_text())
    (baseline / FINISHED_FILE).write_text(yaml.safe_dump({**record, "note": "made on a GPU"}))
    out = write_page(runs, tmp_path / "docs" / "RESULTS.md", tables=(TABLE,), goals=(),
                     experiments=(MEMORY, BASELINE, "simple_baseline"), left_out={})
    text = out.read_text()
    assert "Total run time: **1 h 30 min** (5405 s)" in text
    assert "the sum of the 2 runs' own training wall times" in text
    assert "CPU Test CPU 9000 (2 cores), torch 2.0" in text
    assert "no run yet: simple_baseline." in text
    assert f"- {MEMORY}: `{runs / MEMORY / '20260101-000000'}`, 1 h 00 min, precision bf16-mixed\n" \
        in text
    assert f"`{baseline}`, 30 min 05 s, precision bf16-mixed; made on a GPU\n" in text


def test_goals_compare_with_a_number_or_another_run(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, MEMORY, "20260101-000000", {"val/MOTA": 31.0, "val/id_switches": 4},
             wall_s=700.0)
    fake_run(runs, BASELINE, "20260101-000000", {"val/MOTA": 20.0, "val/id_switches": 5},
             wall_s=600.0)
    measured = Measured.load(runs, (MEMORY, BASELINE))
    mota = Goal(MEMORY, "MOTA >= 30", (Figure(MEMORY, "val/MOTA"),), ">=", 30.0)
    assert goal_status(mota, measured) == (31.0, 30.0, "met")
    fewer = Goal(MEMORY, "no more switches", (Figure(MEMORY, "val/id_switches"),), "<=",
                 Figure(BASELINE, "val/id_switches"))
    assert goal_status(fewer, measured) == (4.0, 5.0, "met")
    both = Goal(MEMORY, "<= 20 min together", (Figure(MEMORY, "wall_s"),
                                               Figure(BASELINE, "wall_s")), "<=", 1200.0)
    assert goal_status(both, measured) == (1300.0, 1200.0, "missed")
    # A time goal is a CPU budget: a run made on a GPU does not meet or miss it.
    measured.machines[BASELINE] = {**MACHINE, "accelerator": "NVIDIA H200"}
    assert goal_status(both, measured) == (
        1300.0, 1200.0, "not measured: trained on NVIDIA H200, the goal is a 2-core CPU's")
    assert goal_status(mota, measured)[2] == "met"
    measured.machines[BASELINE] = dict(MACHINE)
    absent = Goal("simple_baseline", "mAP", (Figure("simple_baseline", "val/mAP"),), ">=", 70.0)
    assert goal_status(absent, measured)[2] == NO_RUN
    text = page(measured, runs, tables=(), goals=(mota, fewer, both), experiments=(MEMORY,))
    assert "Total run time: **11 min 40 s** (700 s), the sum of the 1 runs'" in text
    assert f"| {MEMORY} | no more switches | <= {BASELINE} (5) | 4 | met |" in text
    assert f"| {MEMORY} | <= 20 min together | <= 1200.0 | 1300.0 | missed |" in text


def test_persons_counted_exactly_counts_annotated_persons_per_image():
    truth = {"images": [{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}],
             "annotations": [{"image_id": 1, "num_keypoints": 5}, {"image_id": 1, "num_keypoints": 3},
                             {"image_id": 2, "num_keypoints": 4},
                             {"image_id": 2, "num_keypoints": 0},  # no keypoints: not counted
                             {"image_id": 3, "iscrowd": 1, "num_keypoints": 2}]}
    predictions = [{"image_id": 1}, {"image_id": 1}, {"image_id": 2}, {"image_id": 2},
                   {"image_id": 4}]
    # image 1: 2 = 2; image 2: 2 != 1; image 3: 0 = 0; image 4: 1 != 0
    assert persons_counted_exactly(predictions, truth) == 50.0


def test_the_declared_page_names_real_experiments_each_after_what_it_reads():
    known = list_experiments()
    root = experiments_dir()
    assert len(EXPERIMENTS) == len(set(EXPERIMENTS)) <= 25
    for name in EXPERIMENTS:
        assert name in known and alias_target(known[name], root) is None, name
    shown = {r for t in TABLES for r in t.rows} | {
        f.experiment for t in TABLES for c in t.comparisons for f in (c.better, c.worse)}
    shown |= {f.experiment for g in GOALS for f in g.figures}
    assert shown <= set(EXPERIMENTS)
    for i, name in enumerate(EXPERIMENTS):  # prerequisites come first in the training order
        runs = Path("/nonexistent")
        needed = missing_prerequisites(compose(name, [f"runs_dir={runs}"]))
        assert set(needed) <= set(EXPERIMENTS[:i]), (name, needed)
    assert not set(LEFT_OUT) & {t.group for t in TABLES}


def test_results_without_training_writes_a_page_of_missing_runs(tmp_path, capsys):
    out = tmp_path / "RESULTS.md"
    assert main(["results", "--no-train", "--runs-dir", str(tmp_path / "runs"),
                 "--bench-dir", str(tmp_path / "bench"), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    text = out.read_text()
    assert f"0 of {len(EXPERIMENTS)} experiments finished" in text
    # Paper numbers come from the experiment files when there is no run.
    assert "| rnn_association | — (paper 58.7) | — (paper 56.6) | — (paper 37.8) |" in text
    assert text.count(f"**Verdict: {NO_RUN}.**") == len(TABLES)


def test_a_finished_training_records_its_wall_time_and_machine(quick_overrides):
    cfg = compose("simple_baseline", quick_overrides + [
        "trainer.max_steps=2", "trainer.limit_val_batches=1", "trainer.max_epochs=1",
        "data.input_size=[64,48]"])
    result = train(cfg)
    record = yaml.safe_load((result.run_dir / FINISHED_FILE).read_text())
    assert record["wall_s"] > 0 and record["attempt"] == 0
    assert record["machine"]["accelerator"] == "cpu"
    assert {"cpu", "cores", "torch", "lightning", "precision"} <= set(record["machine"])
    assert finished_run(Path(cfg.runs_dir), "simple_baseline") == result.run_dir


def test_make_report_reads_run_folders_not_the_results_and_smoke_experiment_folders(tmp_path):
    """`make report`'s default RUNS: runs/results/<exp> and runs/smoke/<exp> sit where run
    folders do (runs/<exp>/<time>) but are not runs; passing them failed the whole report."""
    repo = Path(__file__).resolve().parents[1]
    shutil.copy(repo / "Makefile", tmp_path / "Makefile")
    run = fake_run(tmp_path / "runs", MEMORY, "20260101-000000", {"val/mAP": 1.0})
    fake_run(tmp_path / "runs" / "results", MEMORY, "20260101-000000", {"val/mAP": 1.0})
    fake_run(tmp_path / "runs" / "smoke", MEMORY, "20260101-000000", {"val/mAP": 1.0})
    # Under `make test` this make is a sub-make: without --no-print-directory (and the
    # parent's MAKEFLAGS) it prints "make[1]: Entering directory ..." around the command.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    done = subprocess.run(["make", "--no-print-directory", "-n", "report", "STAMP="],
                          cwd=tmp_path, text=True, capture_output=True, check=True, env=env)
    assert done.stdout.split() == [".venv/bin/vidpose", "report",
                                   str(run.relative_to(tmp_path)), "--out", "report/report.md"]


@pytest.mark.slow
def test_results_trains_through_vidpose_trains_path_prerequisites_included(quick_overrides,
                                                                            tmp_path):
    """The real training path, shrunk: the fine-tune trains its pre-training first (a
    prerequisite), both finish with a record, and the page reads them."""
    runs = tmp_path / "results"
    shrink = (*quick_overrides, "trainer.max_epochs=1", "trainer.limit_train_batches=2",
              "trainer.limit_val_batches=1", "trainer.check_val_every_n_epoch=1",
              "data.input_size=[64,48]")
    lines = []
    failed = train_missing(runs, ("stm_t3_c1_finetune",),
                           partial(train_experiment, overrides=shrink), lines.append)
    assert failed == [], lines
    pretrain = finished_run(runs, "stm_t3_c1_pretrain")
    finetune = finished_run(runs, "stm_t3_c1_finetune")
    assert pretrain is not None and finetune is not None
    text = write_page(runs, tmp_path / "RESULTS.md").read_text()
    table = section(text, "stm/table3")
    assert f"`{finetune.name}`" in table and f"`{pretrain.name}`" in table
    assert f"**Verdict: {NO_RUN}.**" not in table
    assert "| stm_t3_c1_finetune | — (paper 29.4) |" not in table  # its F1 was logged
    assert f"2 of {len(EXPERIMENTS)} experiments finished" in text


def test_the_decoders_count_is_read_from_its_predictions_and_the_val_annotations(
        quick_overrides, image_overrides, tmp_path):
    """The flagship's count goal: its written val predictions against the split its config
    validates on (here: one person too many on the first image, the rest exact)."""
    cfg = compose("rnn_association", quick_overrides + image_overrides + ["model.features=null"])
    folder = fake_run(tmp_path / "runs", "rnn_association", "20260101-000000", {"val/AP": 1.0})
    OmegaConf.save(cfg, folder / "config.yaml", resolve=True)
    truth = json.loads((Path(cfg.data.root) / "annotations" / "person_keypoints_val.json")
                       .read_text())
    predictions = [{"image_id": a["image_id"]} for a in truth["annotations"]
                   if not a.get("iscrowd") and a.get("num_keypoints", 1) > 0]
    predictions.append({"image_id": truth["images"][0]["id"]})
    (folder / "predictions" / "val").mkdir(parents=True)
    (folder / "predictions" / "val" / "val_rnn.json").write_text(json.dumps(predictions))
    measured = Measured.load(tmp_path / "runs", ("rnn_association",))
    images = len(truth["images"])
    assert measured.value(Figure("rnn_association", COUNT_EXACT)) == 100.0 * (images - 1) / images
