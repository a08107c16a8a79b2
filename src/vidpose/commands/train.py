"""``vidpose train EXP [key=value ...]`` (``make train``): train an experiment, after the runs
it reads a checkpoint of (``run:<experiment>``)."""
from __future__ import annotations

import argparse
import sys

from vidpose.commands.summary import print_metrics, print_summary


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train an experiment (make train EXP=...)")
    parser.add_argument("experiment")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value or group=name")
    parser.add_argument("--resume", help="'last' or a checkpoint path: continue that run")


def handle(args: argparse.Namespace) -> int | None:
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from vidpose.config import compose
    from vidpose.run import train, train_prerequisites

    cfg = compose(args.experiment, args.overrides)
    if not args.resume:
        for needed in train_prerequisites(cfg, args.overrides):
            print_metrics(needed.run_dir, needed.metrics)
    try:
        result = train(cfg, resume=args.resume, overrides=args.overrides)
    except SIGTERMException:
        # Lightning stopped between two batches and LastCheckpoint saved last.ckpt.
        print("vidpose: stopped by SIGTERM; checkpoints/last.ckpt holds the last step: "
              "continue with --resume last (make train ... RESUME=last)", file=sys.stderr)
        return 143  # 128 + SIGTERM, what a shell reports for a terminated job
    print_metrics(result.run_dir, result.metrics)
    print_summary(cfg, result.metrics, result.run_dir)
    return None
