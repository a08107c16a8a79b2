"""`make bench`: run every script in benchmarks/ and print its figures.

Each benchmark module has `run(quick: bool) -> dict[str, float]` and prints its own table;
figures are ratios measured within one run, never absolute seconds compared across runs.
A full-size run also records each benchmark's figures, with the date and the machine, as
``<records>/<name>.json`` (default ``runs/bench/``): ``vidpose results`` puts them on the
results page beside the learning results. Quick runs record nothing (their sizes are a smoke
test's, not the figures' own).
"""
from __future__ import annotations

import fnmatch
import importlib.util
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from vidpose.errors import ConfigError, InputError
from vidpose.formats.jsonio import dump_json
from vidpose.machine import host

DEFAULT_RECORDS = Path("runs/bench")


def best_time(fn: Callable[[], Any], repeats: int) -> float:
    """Fastest of ``repeats`` timed calls after one warm-up call, in seconds."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def discover() -> dict[str, Path]:
    """The benchmark scripts, ``benchmarks/bench_<name>.py``, by name."""
    scripts = (Path(__file__).resolve().parents[2] / "benchmarks").glob("bench_*.py")
    return {p.stem.removeprefix("bench_"): p for p in sorted(scripts)}


def record(records: Path, name: str, figures: dict[str, float]) -> Path:
    """Write one benchmark's figures with the date and the machine: ``<records>/<name>.json``."""
    path = Path(records) / f"{name}.json"
    # A figure that is not a finite number (nothing to time on this machine) is left out.
    finite = {k: float(v) for k, v in figures.items() if math.isfinite(float(v))}
    dump_json(path, {"benchmark": name, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "machine": host(), "figures": finite})
    return path


def load_records(records: Path) -> dict[str, dict]:
    """Every recorded benchmark under ``records`` by name (none when the folder is absent)."""
    found = {}
    for path in sorted(Path(records).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except ValueError as err:
            raise InputError(f"not JSON ({err}); delete it and run `make bench` again",
                             file=str(path)) from None
        for field in ("benchmark", "date", "machine", "figures"):
            if not isinstance(data, dict) or field not in data:
                raise InputError("not a benchmark record; delete it and run `make bench` "
                                 "again", file=str(path), field=field)
        found[data["benchmark"]] = data
    return found


def run_all(quick: bool = False, only: list[str] | None = None,
            records: Path | None = DEFAULT_RECORDS) -> dict[str, dict[str, float]]:
    found = discover()
    unknown = set(only or []) - set(found)
    if unknown:
        raise ConfigError(f"unknown benchmark(s) {sorted(unknown)}; known: {sorted(found)}")
    results = {}
    for name, path in found.items():
        if only and name not in only:
            continue
        spec = importlib.util.spec_from_file_location(f"vidpose_bench_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        print(f"\n== {name} ({path.name}) ==", flush=True)
        results[name] = module.run(quick=quick)
        if records is not None and not quick:
            print(f"recorded {record(records, name, results[name])}", flush=True)
    return results


@dataclass(frozen=True)
class BenchGoal:
    """A goal on recorded figures: every figure of ``benchmark`` whose name matches
    ``figures`` (a glob) compared with ``target`` by ``op`` (">=" or "<=")."""

    benchmark: str
    figures: str
    text: str
    op: str
    target: float
    note: str = ""


BENCH_GOALS: tuple[BenchGoal, ...] = (
    BenchGoal("pose_memory", "*_over_plain_c16",
              "memory module per crop over the plain backbone, capacity 16", "<=", 1.15,
              "the paper: 0.7 -> 0.6 fps, 1.17x, on a GPU"),
    BenchGoal("posetrack_eval", "poseval_over_cli",
              "official poseval's time over `vidpose eval posetrack`'s, whole process, "
              "PoseTrack18 val-sized set", ">=", 40.0,
              "poseval's 14.3 s measured in issue 19 on this kind of machine"),
    BenchGoal("training", "*_bf16_nhwc_over_fp32",
              "training steps/s, bf16 + channels_last over fp32", ">=", 3.0,
              "set for CPUs with AMX (Intel Xeon: 0.57 -> 0.14 s); with AVX512-BF16 alone "
              "(AMD EPYC) issue 19 measured 2x on a ResNet-50"),
    BenchGoal("training", "*_loader_over_step",
              "data loader over the training step (the loader never the bottleneck)", ">=", 2.0),
    BenchGoal("rnn", "matcher_over_scipy_*",
              "Hungarian matching time over scipy's", "<=", 1.0),
)


def goal_rows(records: dict[str, dict], goals: tuple[BenchGoal, ...] = BENCH_GOALS
              ) -> list[tuple[BenchGoal, str, float | None, str]]:
    """(goal, figure, value, status) per matched figure; one "not measured" row per goal
    whose benchmark has no record. Status: met, missed or not measured."""
    rows = []
    for goal in goals:
        figures = records.get(goal.benchmark, {}).get("figures", {})
        names = [n for n in figures if fnmatch.fnmatchcase(n, goal.figures)]
        if not names:
            rows.append((goal, goal.figures, None, "not measured"))
        for name in names:
            value = figures[name]
            met = value >= goal.target if goal.op == ">=" else value <= goal.target
            rows.append((goal, name, value, "met" if met else "missed"))
    return rows


def performance_section(records: dict[str, dict], records_dir: Path) -> list[str]:
    """Markdown lines: where each benchmark ran, and issue 19's goals against its figures."""
    lines = [f"Figures recorded by `make bench` (`vidpose bench`) under `{records_dir}/`: "
             "ratios measured within one run of each benchmark, not times compared across "
             "runs. Run `make bench` again to refresh them.", ""]
    if not records:
        return lines + ["No benchmark recorded yet: `make bench` records them."]
    for name, data in sorted(records.items()):
        m = data["machine"]
        lines.append(f"- {name}: {data['date']}, CPU {m.get('cpu', '?')} "
                     f"({m.get('cores', '?')} cores), torch {m.get('torch', '?')}, "
                     f"Python {m.get('python', '?')}")
    lines += ["", "| benchmark | figure | goal | measured | status |", "|---|---|---|---|---|"]
    for goal, name, value, status in goal_rows(records):
        shown = "-" if value is None else f"{value:.2f}"
        lines.append(f"| {goal.benchmark} | `{name}` | {goal.op} {goal.target:g} | {shown} "
                     f"| {status} |")
    return lines + ["", "What each goal is:", ""] + [
        f"- `{goal.benchmark}` `{goal.figures}`: {goal.text}, {goal.op} {goal.target:g}"
        + (f" ({goal.note})" if goal.note else "") + "." for goal in BENCH_GOALS]


def missing_records(records: dict[str, dict], goals: tuple[BenchGoal, ...] = BENCH_GOALS
                    ) -> list[str]:
    """The benchmarks the goals read that have no record, in discovery order."""
    wanted = {g.benchmark for g in goals}
    return [name for name in discover() if name in wanted and name not in records]
