"""``vidpose report RUN ...`` (``make report``): compare run folders in a paper-shaped
Markdown table and plots (``vidpose/report.py``)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="compare runs: Markdown table and plots "
                                   "(make report)")
    parser.add_argument("runs", nargs="+", help="run folders (runs/<experiment>/<time>)")
    parser.add_argument("--out", default="report/report.md", help="Markdown file (PNGs beside it)")


def handle(args: argparse.Namespace) -> None:
    from vidpose.report import build_report

    print(f"wrote {build_report([Path(run) for run in args.runs], Path(args.out))}")
