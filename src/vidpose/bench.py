"""`make bench`: run every script in benchmarks/ and print its figures.

Each benchmark module has `run(quick: bool) -> dict[str, float]` and prints its own table;
figures are ratios measured within one run, never absolute seconds compared across runs.
"""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any, Callable

from vidpose.errors import ConfigError


def best_time(fn: Callable[[], Any], repeats: int) -> float:
    """Fastest of ``repeats`` timed calls after one warm-up call, in seconds."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def benchmarks_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "benchmarks"


def discover() -> dict[str, Path]:
    return {p.stem.removeprefix("bench_"): p for p in sorted(benchmarks_dir().glob("bench_*.py"))}


def run_all(quick: bool = False, only: list[str] | None = None) -> dict[str, dict[str, float]]:
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
    return results
