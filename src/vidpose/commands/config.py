"""``vidpose config EXP`` (``make config``): an experiment's resolved config as a tree, or
with ``--diff OTHER`` the keys whose values differ from another experiment's."""
from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "config", help="print an experiment's resolved config (make config EXP=...), or with "
        "--diff what differs from another experiment's")
    parser.add_argument("experiment")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value or group=name (this experiment's)")
    parser.add_argument("--diff", metavar="OTHER_EXP", default=None,
                        help="show only the keys whose values differ from OTHER_EXP's (as it ships)")


def config_tree(cfg: dict[str, Any], label: str) -> Any:
    """The resolved config as a rich Tree: one branch per section, ``key: value`` leaves."""
    from rich.markup import escape
    from rich.tree import Tree

    def add(node: Tree, mapping: dict[str, Any]) -> None:
        for key, value in mapping.items():
            if isinstance(value, dict) and value:
                add(node.add(f"[bold]{escape(str(key))}[/bold]"), value)
            else:
                node.add(f"{escape(str(key))}: [cyan]{escape(repr(value))}[/cyan]")

    tree = Tree(f"[bold]{escape(label)}[/bold]")
    add(tree, cfg)
    return tree


def handle(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from vidpose.config import compose, to_dict
    from vidpose.report import flatten

    this = to_dict(compose(args.experiment, args.overrides))
    console = Console(width=max(120, Console().width))
    if args.diff is None:
        label = " ".join([args.experiment, *args.overrides])
        console.print(config_tree(this, f"{label} ({this['experiment']['method']})"))
        return
    other = flatten(to_dict(compose(args.diff)))
    mine = flatten(this)
    # Keys of both, in this config's order then the other's own (a different method's model).
    keys = list(mine) + [key for key in other if key not in mine]
    missing = "(absent)"
    differing = [key for key in keys if mine.get(key, missing) != other.get(key, missing)]
    table = Table(title=f"{args.experiment} vs {args.diff}: {len(differing)} keys differ")
    for column in ("key", args.experiment, args.diff):
        table.add_column(column, overflow="fold")
    for key in differing:
        table.add_row(key, *(escape(repr(side[key])) if key in side else missing
                             for side in (mine, other)))
    console.print(table)
