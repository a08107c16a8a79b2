"""The ``vidpose`` commands, one module each; ``vidpose.cli.main`` parses and dispatches.

A command module has ``register(subparsers)``, which adds its parser (``add_parser(name)``),
and ``handle(args) -> int | None``, which runs it (None: exit status 0). Modules import only
the standard library at the top: ``vidpose`` builds every parser on each start, so torch,
lightning and rich are imported inside ``handle``. Adding a command: write its module and
list it in ``COMMANDS``; ``summary.py`` is what train, eval and infer print under a run.
"""
from __future__ import annotations

# The modules `eval` and `list` are named as the user types them; they shadow the builtins
# in this file only, which calls neither.
from vidpose.commands import bench, config, data, eval, infer, list, overfit, report, results, track, train

# vidpose <name> -> its module, in the order `vidpose --help` lists them.
COMMANDS = {"train": train, "eval": eval, "infer": infer, "track": track, "report": report,
            "results": results, "list": list, "config": config, "data": data,
            "overfit": overfit, "bench": bench}
