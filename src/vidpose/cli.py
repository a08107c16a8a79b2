"""`vidpose <command> ...`: the one entry point (the Makefile calls it).

Each command (train, eval, infer, track, report, results, list, config, data, overfit,
bench) is a module of ``vidpose.commands``, listed in its ``COMMANDS``.

Errors about the user's input (unknown experiment, bad key, malformed file) print one
readable line and exit with status 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import os
import sys

from vidpose.commands import COMMANDS
from vidpose.errors import VidposeError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidpose", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS.values():
        command.register(subparsers)
    return parser


def _parse(argv: list[str]) -> argparse.Namespace:
    # `eval posetrack|coco` has options of its own, not an experiment's.
    args = COMMANDS["eval"].parse_file_evaluation(argv)
    if args is not None:
        return args
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # Overrides may also follow the options (vidpose infer EXP --ckpt X key=value).
    if extra:
        if hasattr(args, "overrides") and all("=" in arg and not arg.startswith("-")
                                              for arg in extra):
            args.overrides += extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _report(err: VidposeError) -> int:
    """The error as one line on stderr (a message that spans lines is joined), status 2."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    print(f"vidpose: error: {text}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # No WANDB_MODE default here: logger.mode=auto logs offline, and online under a sweep
    # agent (run.trainer.wandb_mode); a WANDB_MODE set here would hide the sweep from its runs.
    os.environ.setdefault("WANDB_SILENT", "true")
    args = _parse(argv)
    try:
        return COMMANDS[args.command].handle(args) or 0
    except VidposeError as err:
        return _report(err)


if __name__ == "__main__":
    sys.exit(main())
