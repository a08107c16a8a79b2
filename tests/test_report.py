"""`vidpose report` (paper-style table + plots from run folders) and the W&B sweep files."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

from vidpose.config import compose
from vidpose.errors import ConfigError, InputError
from vidpose.report import MISSING, Run, build_report, differing_keys, read_metrics, run_metrics
from vidpose.sweeps import check_sweep, list_sweeps, train_argv, wandb_args

# Run A (resnet18, monitor val/PCKh max): PCKh 30 -> 50 -> 45, loss 0.5 -> 0.2 -> 0.3.
CSV_A = """epoch,lr-Adam,step,train/loss_step,val/PCKh,val/PCKh/head_top,val/PCKh/nose,val/loss
,0.002,0,,,,,
0,,9,0.9,,,,
0,,9,,30.0,40.0,20.0,0.5
1,,19,0.8,,,,
1,,19,,50.0,60.0,40.0,0.2
2,,29,0.7,,,,
2,,29,,45.0,55.0,35.0,0.3
"""
# Run B (resnet50, monitor val/loss min): PCKh 20 -> 35 -> 40, loss 0.6 -> 0.25 -> 0.4.
CSV_B = """epoch,step,train/loss_step,val/PCKh,val/PCKh/head_top,val/PCKh/nose,val/loss
0,9,0.9,,,,
0,9,,20.0,30.0,10.0,0.6
1,19,,35.0,45.0,25.0,0.25
2,29,,40.0,50.0,30.0,0.4
"""
CSV_NO_VAL = """epoch,step,train/loss_step
0,9,0.9
0,19,0.8
"""


def make_run(root: Path, time: str, overrides: list[str], csv_text: str,
             paper: dict[str, float] | None = None) -> Path:
    """A run folder as `vidpose train` leaves it: composed config.yaml and csv/metrics.csv."""
    cfg = compose("simple_baseline", overrides)
    if paper is not None:
        cfg.experiment.paper_metrics = paper
    folder = root / "runs" / "simple_baseline" / time
    (folder / "csv").mkdir(parents=True)
    OmegaConf.save(cfg, folder / "config.yaml", resolve=True)
    (folder / "csv" / "metrics.csv").write_text(csv_text)
    return folder


def table(markdown: str, heading: str) -> list[dict[str, str]]:
    """The rows of the Markdown table under ``## heading``, as {column: cell}."""
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    split = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
    header, rows = split[0], split[2:]
    return [dict(zip(header, row)) for row in rows]


@pytest.fixture()
def two_runs(tmp_path) -> list[Path]:
    a = make_run(tmp_path, "20260101-000000",
                 [f"runs_dir={tmp_path}/a", "model.resnet=resnet18", "experiment.monitor=val/PCKh",
                  "experiment.monitor_mode=max"], CSV_A, paper={"PCKh": 70.4})
    b = make_run(tmp_path, "20260102-000000",
                 [f"runs_dir={tmp_path}/b", "logger.mode=disabled", "model.resnet=resnet50",
                  "experiment.monitor=val/loss", "experiment.monitor_mode=min"],
                 CSV_B, paper={"val/PCKh": 70.4})
    return [a, b]


@pytest.fixture()
def report(two_runs, tmp_path) -> tuple[Path, str]:
    out = build_report(two_runs, tmp_path / "out" / "report.md")
    return out, out.read_text()


def test_final_table_rows_differing_config_and_paper_numbers(report):
    _, md = report
    rows = table(md, "Final values")
    # runs_dir, logger.mode and the monitor differ too, but are noise: one config column.
    assert list(rows[0]) == ["#", "experiment", "run", "model.resnet", "val/PCKh", "val/loss",
                             "reproduces"]
    assert [(r["experiment"], r["run"], r["model.resnet"]) for r in rows] == [
        ("simple_baseline", "20260101-000000", "resnet18"),
        ("simple_baseline", "20260102-000000", "resnet50")]
    assert [r["val/PCKh"] for r in rows] == ["45.0 (paper 70.4)", "40.0 (paper 70.4)"]
    assert [r["val/loss"] for r in rows] == ["0.3", "0.4"]
    assert rows[0]["reproduces"].startswith("Xiao et al. 2018")


def test_best_values_follow_each_runs_monitor_mode(report):
    _, md = report
    rows = table(md, "Best values")
    assert [r["val/PCKh"] for r in rows] == ["50.0 (paper 70.4)", "40.0 (paper 70.4)"]
    assert [r["val/loss"] for r in rows] == ["0.2", "0.25"]  # losses: min
    assert [r["best epoch (monitor)"] for r in rows] == ["1 (val/PCKh)", "1 (val/loss)"]


def test_lower_is_better_for_losses_and_id_switches():
    run = Run(folder=Path("r"), name="x", reproduces="", monitor="val/mAP", monitor_mode="max",
              paper={}, config={})
    assert [run.mode(m) for m in ("val/mAP", "val/loss", "val/id_switches", "val/MOTA")] == [
        "max", "min", "min", "max"]


def test_per_part_table_holds_final_values(report):
    _, md = report
    rows = table(md, "val/PCKh per part (final)")
    assert [(r["head_top"], r["nose"]) for r in rows] == [("55.0", "35.0"), ("50.0", "30.0")]


def test_pngs_are_written_beside_the_markdown_and_linked(report):
    out, md = report
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert sorted(links) == ["report_final.png", "report_val_PCKh.png", "report_val_loss.png"]
    for name in links:
        png = out.parent / name
        assert png.stat().st_size > 1000
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_without_val_metrics_is_listed_with_dashes(two_runs, tmp_path):
    empty = make_run(tmp_path, "20260103-000000", ["model.resnet=resnet34"], CSV_NO_VAL)
    md = build_report([two_runs[0], empty], tmp_path / "r.md").read_text()
    final, best = table(md, "Final values"), table(md, "Best values")
    assert final[1]["model.resnet"] == "resnet34"
    assert final[1]["val/PCKh"] == MISSING  # no paper numbers recorded in this run
    assert final[1]["val/loss"] == MISSING
    assert best[1]["best epoch (monitor)"] == MISSING


def test_only_a_run_without_val_metrics_gives_no_plots(tmp_path):
    empty = make_run(tmp_path, "20260103-000000", [], CSV_NO_VAL)
    out = build_report([empty], tmp_path / "r.md")
    assert "nothing to plot" in out.read_text()
    assert not list(tmp_path.glob("*.png"))


def test_folder_that_is_not_a_run_is_named_with_what_it_lacks(two_runs, tmp_path):
    bare = tmp_path / "not_a_run"
    bare.mkdir()
    with pytest.raises(InputError, match="missing config.yaml and csv/metrics.csv") as err:
        build_report([two_runs[0], bare], tmp_path / "r.md")
    assert err.value.file == str(bare)
    (bare / "config.yaml").write_text((two_runs[0] / "config.yaml").read_text())
    (bare / "checkpoints").mkdir()
    (bare / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(InputError, match=r"missing csv/metrics\.csv$"):
        build_report([bare], tmp_path / "r.md")
    with pytest.raises(InputError, match="no such run folder"):
        build_report([tmp_path / "absent"], tmp_path / "r.md")
    with pytest.raises(InputError, match="no run folders"):
        build_report([], tmp_path / "r.md")


def test_a_run_killed_before_its_first_step_is_skipped(two_runs, tmp_path, capsys):
    # kill -9 during set-up leaves config.yaml alone: `make report` (runs/*/*) goes on.
    orphan = two_runs[0].parent / "20990101-000000"
    orphan.mkdir()
    (orphan / "config.yaml").write_text((two_runs[0] / "config.yaml").read_text())
    out = build_report([*two_runs, orphan], tmp_path / "r.md")
    assert f"{orphan}: skipped" in capsys.readouterr().out
    assert orphan.name not in out.read_text()
    with pytest.raises(InputError, match="none of the run folders given got to its first step"):
        build_report([orphan], tmp_path / "r.md")


def test_resumed_attempts_join_into_one_curve(tmp_path):
    # Attempt 0 logged steps 0-6 and checkpointed at 4; resume 1 went on from 4 (it trained
    # 4-6 again, and those rows are the ones whose weights were kept) and logged 4-7;
    # resume 2 started from 8 but was killed before logging: it hides nothing.
    run = tmp_path / "run"
    (run / "csv" / "resume-1").mkdir(parents=True)
    (run / "csv" / "metrics.csv").write_text(
        "epoch,step,train/loss_step\n" + "".join(f"0,{s},{s}.0\n" for s in range(7)))
    (run / "csv" / "resume-1" / "metrics.csv").write_text(
        "epoch,step,train/loss_step\n" + "".join(f"0,{s},{s}.5\n" for s in range(4, 8)))
    (run / "resume-1.yaml").write_text("checkpoint: last.ckpt\nstep: 4\noverrides: {}\n")
    (run / "resume-2.yaml").write_text("checkpoint: last.ckpt\nstep: 8\noverrides: {}\n")
    log = run_metrics(run, prefix="train/")["train/loss_step"]
    np.testing.assert_array_equal(log.steps, range(8))
    np.testing.assert_allclose(log.values, [0, 1, 2, 3, 4.5, 5.5, 6.5, 7.5])
    (run / "resume-2.yaml").write_text("step: [8]\n")
    with pytest.raises(InputError, match="resume-2.yaml: field 'step'"):
        run_metrics(run)


def test_bad_csv_value_names_file_line_and_column(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,val/PCKh\n0,9,12.5\n1,19,abc\n")
    with pytest.raises(InputError, match=r"record line 3: field 'val/PCKh': not a number"):
        read_metrics(path)
    path.write_text("step,val/PCKh\n9,12.5\n")
    with pytest.raises(InputError, match="field 'epoch'"):
        read_metrics(path)


def test_read_metrics_keeps_only_filled_val_rows(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(CSV_A)
    logs = read_metrics(path)
    assert sorted(logs) == ["val/PCKh", "val/PCKh/head_top", "val/PCKh/nose", "val/loss"]
    np.testing.assert_array_equal(logs["val/PCKh"].epochs, [0, 1, 2])
    np.testing.assert_array_equal(logs["val/PCKh"].steps, [9, 19, 29])
    np.testing.assert_allclose(logs["val/loss"].values, [0.5, 0.2, 0.3])


def test_differing_keys_compare_only_keys_every_run_has():
    def run(config: dict) -> Run:
        return Run(Path("r"), "x", "", "val/f1", "max", {}, config)

    runs = [run({"model.a": 1, "model.only_here": 1, "logger.mode": "offline", "seed": 0}),
            run({"model.a": 2, "logger.mode": "online", "seed": 0})]
    assert differing_keys(runs) == ["model.a"]


def test_every_shipped_sweep_names_existing_experiments_and_composes():
    sweeps = list_sweeps()
    assert sweeps, "experiments/sweeps/ holds no sweep file"
    for path in sweeps:
        runs = check_sweep(path)
        assert runs and all(argv[0] == "train" for argv in runs)
        assert "wandb sweep" in path.read_text()  # the launch instructions are in the file


def test_backbone_sweep_expands_to_the_four_table_rows():
    path = next(p for p in list_sweeps() if p.stem == "simple_baseline_backbone_input_size")
    assert check_sweep(path) == [
        ["train", "simple_baseline", "model.resnet=resnet18", "data.input_size=[128, 96]"],
        ["train", "simple_baseline", "model.resnet=resnet18", "data.input_size=[256, 192]"],
        ["train", "simple_baseline", "model.resnet=resnet50", "data.input_size=[128, 96]"],
        ["train", "simple_baseline", "model.resnet=resnet50", "data.input_size=[256, 192]"],
    ]


def _write_sweep(tmp_path: Path, parameters: dict) -> Path:
    sweep = yaml.safe_load(list_sweeps()[0].read_text())
    sweep["parameters"] = parameters
    path = tmp_path / "bad_sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def test_sweep_naming_a_missing_experiment_fails(tmp_path):
    path = _write_sweep(tmp_path, {"exp": {"values": ["simple_baseline", "stm_table9_config42"]}})
    with pytest.raises(InputError, match="unknown experiment 'stm_table9_config42'") as err:
        check_sweep(path)
    assert err.value.file == str(path) and err.value.field == "parameters.exp"


def test_sweep_with_an_override_that_does_not_compose_fails(tmp_path):
    path = _write_sweep(tmp_path, {"exp": {"value": "simple_baseline"},
                                   "model.resnet": {"values": ["resnet18"]},
                                   "model.backbon": {"values": ["resnet50"]}})
    with pytest.raises(InputError, match="record 0.*model.backbon"):
        check_sweep(path)


def test_sweep_metric_must_be_the_monitor_or_a_paper_metric(tmp_path):
    path = _write_sweep(tmp_path, {"exp": {"value": "simple_baseline"}})
    sweep = yaml.safe_load(path.read_text())
    sweep["metric"]["name"] = "val/no_such_metric"
    path.write_text(yaml.safe_dump(sweep))
    with pytest.raises(InputError, match="field 'metric.name'.*val/no_such_metric"):
        check_sweep(path)


def test_sweep_refuses_null_values_and_distributions(tmp_path):
    path = _write_sweep(tmp_path, {"exp": {"value": "simple_baseline"},
                                   "trainer.max_time": {"value": None}})
    with pytest.raises(InputError, match="'null'"):
        check_sweep(path)
    path = _write_sweep(tmp_path, {"exp": {"value": "simple_baseline"},
                                   "model.lr": {"min": 1e-4, "max": 1e-2}})
    with pytest.raises(InputError, match="parameters.model.lr"):
        check_sweep(path)


def test_agent_arguments_become_a_vidpose_train_command_line():
    assert train_argv(["model.resnet=resnet50", "exp=simple_baseline", "seed=3"]) == [
        "train", "simple_baseline", "model.resnet=resnet50", "seed=3"]
    with pytest.raises(ConfigError, match="exactly one 'exp=NAME'"):
        train_argv(["model.resnet=resnet50"])


def test_our_expansion_matches_wandbs_args_no_hyphens():
    utils = pytest.importorskip("wandb.sdk.launch.sweeps.utils")
    point = {"exp": "simple_baseline", "data.input_size": [256, 192], "trainer.deterministic": True,
             "model.lr": 0.001}
    command = {"args": {key: {"value": value} for key, value in point.items()}}
    expanded = utils.create_sweep_command_args(command)
    assert expanded["args_no_hyphens"] == wandb_args(point)
