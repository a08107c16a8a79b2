"""``vidpose bench`` (``make bench``): run the benchmarks and record their figures
(``vidpose/bench.py``)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="run the benchmarks (make bench)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", nargs="*", help="benchmark names to run")
    parser.add_argument("--records", type=Path, default=Path("runs/bench"),
                        help="where a full-size run records each benchmark's figures for the "
                        "results page (default runs/bench; --quick records nothing)")


def handle(args: argparse.Namespace) -> None:
    from vidpose.bench import run_all

    run_all(quick=args.quick, only=args.only, records=args.records)
