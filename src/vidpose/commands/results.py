"""``vidpose results`` (``make results``): the results page docs/RESULTS.md
(``vidpose/results.py``)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "results", help="the results page (make results): train each of its experiments' "
        "compact recipe that has no finished run, then write docs/RESULTS.md (ours beside the "
        "paper's numbers, each table's claim and whether our runs show it)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/results"),
                        help="where the page's runs live (default runs/results)")
    parser.add_argument("--out", type=Path, default=Path("docs/RESULTS.md"), help="the page")
    parser.add_argument("--bench-dir", type=Path, default=Path("runs/bench"),
                        help="vidpose bench's records the performance section reads (default "
                        "runs/bench; benchmarks without one are run first)")
    parser.add_argument("--no-train", action="store_true",
                        help="write the page from the finished runs and benchmark records only, "
                        "training and benchmarking nothing")


def handle(args: argparse.Namespace) -> int:
    from vidpose.results import main

    return main(args.runs_dir, args.out, train=not args.no_train, bench_dir=args.bench_dir)
