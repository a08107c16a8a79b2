"""``vidpose overfit [METHOD ...]`` (``make overfit``): the overfit proofs
(``vidpose/overfit.py``)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "overfit", help="overfit proofs: each trainable method learns 16 samples and is scored "
        "on them (make overfit); exit 1 when one misses its goal")
    parser.add_argument("methods", nargs="*",
                        help="methods to run (default all; see vidpose.overfit)")
    parser.add_argument("--tiny", type=Path, default=None,
                        help="the tiny synthetic set (vidpose data synth --preset tiny); default: "
                        "data/synth/tiny, generated there when missing")
    parser.add_argument("--work", type=Path, default=Path("data/overfit"),
                        help="scratch folder for the 16-sample data root and its runs (outside "
                        "runs/, which `make report` reads)")
    parser.add_argument("--precision", default=None,
                        help="train every proof in this trainer.precision (e.g. 32-true, "
                        "bf16-mixed) instead of auto, runs under <work>/runs-<precision>: "
                        "compare the two tables to check bf16's numerics")


def handle(args: argparse.Namespace) -> int:
    from vidpose.overfit import main

    return main(args.methods, args.tiny or Path("data/synth/tiny"), args.work,
                precision=args.precision)
