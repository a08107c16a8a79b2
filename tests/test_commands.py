"""One module per `vidpose` command, and the layers the commands sit on top of."""
from __future__ import annotations

import ast
from pathlib import Path

from vidpose.cli import _parser
from vidpose.commands import COMMANDS

SRC = Path(__file__).resolve().parents[1] / "src" / "vidpose"


def test_every_command_is_a_module_that_registers_its_parser_and_handles_it():
    subparsers = next(action for action in _parser()._actions if action.dest == "command")
    assert list(subparsers.choices) == list(COMMANDS)
    for name, module in COMMANDS.items():
        assert module.__name__ == f"vidpose.commands.{name}"
        assert callable(module.register) and callable(module.handle), name


def test_tracking_imports_nothing_from_the_methods_the_runs_or_the_commands():
    above = ("vidpose.methods", "vidpose.run", "vidpose.commands", "vidpose.cli")
    found = []
    for path in sorted((SRC / "tracking").glob("*.py")):
        # Any depth of the AST: an import inside a function reaches up all the same.
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            found += [f"tracking/{path.name}: {name}" for name in names
                      if any(name == top or name.startswith(f"{top}.") for top in above)]
    assert found == []
