"""W&B sweep files (``experiments/sweeps/*.yaml``): check them, and launch their runs.

A sweep file reproduces one paper table as a W&B grid sweep. Every grid point is one table
row: the parameter ``exp`` names the experiment, every other parameter is a dotted config
override. The W&B agent expands ``${args_no_hyphens}`` to ``exp=NAME key=value ...`` and runs
``python -m vidpose.sweeps`` with it, which turns that into ``vidpose train NAME key=value ...``
(the CLI takes the experiment as its first argument, which no W&B macro can produce).

The parameter is ``exp`` rather than ``experiment`` because W&B locks the config keys a sweep
sets: a sweep key ``experiment`` would stop the run from logging its ``experiment`` section.

:func:`check_sweep` expands the grid and composes every row, so a sweep that names a missing
experiment or an unknown key fails in ``make test`` instead of on the cluster.
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

import yaml

from vidpose.config import compose, experiments_dir, find_experiment, logged_metric_name
from vidpose.errors import ConfigError, InputError, VidposeError

EXPERIMENT_PARAM = "exp"
PROGRAM = "vidpose.sweeps"
ARGS_MACRO = "${args_no_hyphens}"
GOALS = ("maximize", "minimize")


def list_sweeps(root: Path | None = None) -> list[Path]:
    """The sweep files, ``<experiments>/sweeps/*.yaml``."""
    return sorted(((root or experiments_dir()) / "sweeps").glob("*.yaml"))


def wandb_args(point: dict[str, Any]) -> list[str]:
    """The ``${args_no_hyphens}`` expansion of one grid point: ``key=value`` as W&B writes it."""
    return [f"{key}={value}" for key, value in point.items()]


def train_argv(args: list[str]) -> list[str]:
    """``exp=NAME key=value ...`` (any order) -> ``["train", NAME, "key=value", ...]``."""
    prefix = f"{EXPERIMENT_PARAM}="
    names = [a[len(prefix):] for a in args if a.startswith(prefix)]
    if len(names) != 1:
        raise ConfigError(f"a sweep run needs exactly one '{prefix}NAME' argument, "
                          f"got {len(names)}: {' '.join(args)}")
    return ["train", names[0], *(a for a in args if not a.startswith(prefix))]


def _load(path: Path) -> dict[str, Any]:
    # PyYAML, not OmegaConf: W&B macros like ${env} are not OmegaConf interpolations.
    try:
        sweep = yaml.safe_load(path.read_text())
    except OSError as err:
        raise InputError(f"cannot read sweep file: {err.strerror}", file=str(path)) from None
    except yaml.YAMLError as err:
        raise InputError(f"not valid YAML: {err}", file=str(path)) from None
    if not isinstance(sweep, dict):
        raise InputError("expected a mapping at the top level", file=str(path))
    return sweep


def _check_header(sweep: dict[str, Any], file: str) -> None:
    """program, command, method and metric: the parts W&B needs besides the grid."""
    if sweep.get("program") != PROGRAM:
        raise InputError(f"expected '{PROGRAM}' (the launcher that calls `vidpose train`), "
                         f"got {sweep.get('program')!r}", file=file, field="program")
    command = sweep.get("command")
    if not isinstance(command, list) or "${program}" not in command or ARGS_MACRO not in command:
        raise InputError(f"expected a list holding '${{program}}' and '{ARGS_MACRO}' (other "
                         f"macros write --key=value, which `vidpose train` refuses)",
                         file=file, field="command")
    if sweep.get("method") != "grid":
        raise InputError(f"expected 'grid' (each paper table row is one grid point), got "
                         f"{sweep.get('method')!r}", file=file, field="method")
    metric = sweep.get("metric")
    if not isinstance(metric, dict) or not str(metric.get("name", "")).startswith("val/"):
        raise InputError("expected {name: val/<metric>, goal: maximize|minimize}",
                         file=file, field="metric")
    if metric.get("goal") not in GOALS:
        raise InputError(f"expected one of {GOALS}, got {metric.get('goal')!r}",
                         file=file, field="metric.goal")


def _choices(parameters: Any, file: str) -> dict[str, list[Any]]:
    """Each parameter's grid values, checked to be a plain ``value`` or ``values`` list."""
    if not isinstance(parameters, dict) or EXPERIMENT_PARAM not in parameters:
        raise InputError(f"expected a mapping with an '{EXPERIMENT_PARAM}' entry naming the "
                         f"experiment(s)", file=file, field="parameters")
    choices: dict[str, list[Any]] = {}
    for key, spec in parameters.items():
        field = f"parameters.{key}"
        if not isinstance(spec, dict) or set(spec) not in ({"value"}, {"values"}):
            raise InputError("expected exactly one of 'value: x' or 'values: [x, y, ...]' "
                             "(a grid cannot enumerate distributions or nested parameters)",
                             file=file, field=field)
        values = [spec["value"]] if "value" in spec else spec["values"]
        if not isinstance(values, list) or not values:
            raise InputError("'values' must be a non-empty list", file=file, field=field)
        if any(v is None for v in values):
            # W&B writes None as the text 'None', which the config reads as a string.
            raise InputError("a value is null; write the string 'null' instead",
                             file=file, field=field)
        choices[str(key)] = values
    return choices


def check_sweep(path: str | Path, root: Path | None = None) -> list[list[str]]:
    """Validate a sweep file; return the ``vidpose`` argv of every run its grid launches.

    Raises ``InputError`` naming the file, the grid point and the field when the file is
    malformed, names an experiment that does not exist, or an override does not compose.
    """
    path = Path(path)
    file = str(path)
    sweep = _load(path)
    _check_header(sweep, file)
    choices = _choices(sweep.get("parameters"), file)
    for name in choices[EXPERIMENT_PARAM]:
        try:
            find_experiment(str(name), root)
        except ConfigError as err:
            raise InputError(str(err), file=file, field=f"parameters.{EXPERIMENT_PARAM}") from None

    metric = sweep["metric"]["name"]
    runs = []
    for index, values in enumerate(itertools.product(*choices.values())):
        argv = train_argv(wandb_args(dict(zip(choices, values))))
        try:
            cfg = compose(argv[1], argv[2:], root)
        except ConfigError as err:
            raise InputError(f"`vidpose {' '.join(argv)}` does not compose: {err}",
                             file=file, record=index, field="parameters") from None
        # The sweep optimises the metric of the table: the row's monitor or a metric the
        # paper reports. Anything else is most likely a metric the method no longer logs.
        known = {cfg.experiment.monitor, *map(logged_metric_name, cfg.experiment.paper_metrics)}
        if metric not in known:
            raise InputError(f"{metric!r} is neither the monitor nor a paper metric of "
                             f"`vidpose {' '.join(argv)}` (those are {sorted(known)})",
                             file=file, record=index, field="metric.name")
        runs.append(argv)
    return runs


def main(argv: list[str] | None = None) -> int:
    """The W&B agent's command: ``exp=NAME k=v ...`` runs ``vidpose train NAME k=v ...``."""
    from vidpose import cli

    args = sys.argv[1:] if argv is None else argv
    try:
        train = train_argv(args)
    except VidposeError as err:
        print(f"vidpose sweep: error: {err}", file=sys.stderr)
        return 2
    return cli.main(train)


if __name__ == "__main__":
    sys.exit(main())
