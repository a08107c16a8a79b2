"""`vidpose bench` records each benchmark's figures; `vidpose results` puts issue 19's goals
against them on the results page."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidpose import bench
from vidpose.bench import (
    BENCH_GOALS,
    BenchGoal,
    goal_rows,
    load_records,
    missing_records,
    performance_section,
    record,
    run_all,
)
from vidpose.cli import main
from vidpose.errors import InputError

FAKE = '''
def run(quick=False):
    print("fake table")
    return {"a_over_plain_c16": 1.1 if quick else 1.2, "b_over_plain_c16": 0.9,
            "undefined": float("nan")}
'''


@pytest.fixture
def fake_benchmark(tmp_path, monkeypatch):
    path = tmp_path / "bench_fake.py"
    path.write_text(FAKE)
    monkeypatch.setattr(bench, "discover", lambda: {"fake": path})
    return path


def test_a_full_run_records_its_figures_with_date_and_machine(tmp_path, fake_benchmark, capsys):
    records = tmp_path / "records"
    figures = run_all(records=records)
    assert figures["fake"]["a_over_plain_c16"] == 1.2
    assert f"recorded {records / 'fake.json'}" in capsys.readouterr().out
    data = json.loads((records / "fake.json").read_text())
    assert data["benchmark"] == "fake"
    # A figure that is not a number is left out rather than written as invalid JSON.
    assert data["figures"] == {"a_over_plain_c16": 1.2, "b_over_plain_c16": 0.9}
    assert {"cpu", "cores", "torch", "python"} <= set(data["machine"])
    assert data["date"].endswith("Z")
    assert load_records(records) == {"fake": data}


def test_a_quick_run_records_nothing(tmp_path, fake_benchmark):
    records = tmp_path / "records"
    run_all(quick=True, records=records)
    assert not records.exists()


def test_a_broken_record_names_its_file_and_field(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="bad.json.*not JSON"):
        load_records(tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps({"benchmark": "x", "date": "d",
                                                   "machine": {}}))
    with pytest.raises(InputError, match="figures"):
        load_records(tmp_path)
    assert load_records(tmp_path / "absent") == {}


def test_goals_expand_their_glob_and_say_met_missed_or_not_measured(tmp_path):
    goals = (BenchGoal("fake", "*_over_plain_c16", "overhead", "<=", 1.15),
             BenchGoal("other", "ratio", "speed-up", ">=", 3.0))
    path = record(tmp_path, "fake", {"a_over_plain_c16": 1.2, "b_over_plain_c16": 0.9,
                                     "a_over_plain_c1": 5.0})
    records = load_records(tmp_path)
    rows = [(g.benchmark, name, value, status) for g, name, value, status
            in goal_rows(records, goals)]
    assert rows == [("fake", "a_over_plain_c16", 1.2, "missed"),
                    ("fake", "b_over_plain_c16", 0.9, "met"),
                    ("other", "ratio", None, "not measured")]
    assert path == tmp_path / "fake.json"


def test_every_goal_names_a_benchmark_that_exists():
    assert {g.benchmark for g in BENCH_GOALS} <= set(bench.discover())
    assert set(missing_records({})) == {g.benchmark for g in BENCH_GOALS}


def test_the_results_page_shows_the_goals_against_the_recorded_figures(tmp_path, capsys):
    records = tmp_path / "bench"
    record(records, "pose_memory", {"simple_baseline_vanilla_over_plain_c16": 1.08,
                                    "cpn_coda_over_plain_c16": 1.30,
                                    "cpn_coda_over_plain_c1": 0.97})
    out = tmp_path / "RESULTS.md"
    assert main(["results", "--no-train", "--runs-dir", str(tmp_path / "runs"),
                 "--bench-dir", str(records), "--out", str(out)]) == 0
    text = out.read_text()
    performance = text.split("## Performance (issue 19)", 1)[1].split("\n## ", 1)[0]
    assert "| pose_memory | `simple_baseline_vanilla_over_plain_c16` | <= 1.15 | 1.08 | met |" \
        in performance
    assert "| pose_memory | `cpn_coda_over_plain_c16` | <= 1.15 | 1.30 | missed |" in performance
    assert "c1`" not in performance  # capacity 1 is not a goal's figure
    assert "| posetrack_eval | `poseval_over_cli` | >= 40 | - | not measured |" in performance
    assert "- pose_memory: " in performance  # where and when it ran


def test_a_page_without_records_says_how_to_make_them():
    lines = performance_section({}, Path("runs/bench"))
    assert lines[-1] == "No benchmark recorded yet: `make bench` records them."
