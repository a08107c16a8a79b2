"""``vidpose list``: the experiments and the paper rows they reproduce."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser("list", help="list experiments and the paper rows they reproduce")


def handle(args: argparse.Namespace) -> None:
    from omegaconf import OmegaConf
    from rich.console import Console
    from rich.table import Table

    from vidpose.config import alias_target, chain, experiments_dir, list_experiments

    table = Table(title="vidpose experiments (make train EXP=<name>)")
    for column in ("name", "method", "scale", "reproduces"):
        table.add_column(column, overflow="fold")
    root = experiments_dir()
    experiments = list_experiments(root)
    for name, path in experiments.items():
        # An alias (a paper row that is another experiment's configuration) shows its own
        # row, its target's method and scale, and whose runs it shares.
        target = alias_target(path, root)
        # The experiment section as its chain of bases gives it (no validation: fast).
        merged = OmegaConf.merge(*(part for _, part in chain(experiments[target or name], root)))
        raw = merged.get("experiment", {}) or {}
        reproduces = str(raw.get("reproduces", ""))
        if target is not None:
            own = OmegaConf.merge(*(part for _, part in chain(path, root)))
            reproduces = f"alias of {target}: {own.get('reproduces', '')}"
        table.add_row(name, str(raw.get("method", "?")), str(raw.get("scale", "compact")),
                      reproduces)
    Console(width=max(120, Console().width)).print(table)
