"""`vidpose report RUN_DIR... --out report.md`: compare runs the way a paper table does.

Each run folder (``runs/<experiment>/<time>/``, see ``run/folders.py``) gives its composed
``config.yaml`` and its Lightning CSV log ``csv/metrics.csv``, joined with the logs of its
resumes (``csv/resume-<n>/metrics.csv``, each resumed from the step its ``resume-<n>.yaml``
records): a resume's rows replace the earlier attempts' rows from that step on. The report
is one Markdown file: rows are runs, labelled by experiment and by the config values that
differ between the runs compared; columns are the ``val/*`` metrics, final (last logged) and
best, with the paper's number beside ours where the experiment records one
(``experiment.paper_metrics``).
Metrics logged per part (``val/AP/head_top``) get one breakdown table per metric. PNG plots
(each metric over the epochs, final metrics per run) are written next to it and linked.
"""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from omegaconf import DictConfig, OmegaConf

from vidpose.config import logged_metric_name
from vidpose.errors import InputError

CONFIG_FILE = "config.yaml"
CSV_LOG = Path("csv") / "metrics.csv"
MISSING = "—"
# Metric names (parts of) where less is better.
LOWER_IS_BETTER = ("loss", "switches")
# Keys that say where or how a run was stored, logged or described, not what was trained:
# their differences are noise in a comparison (the name, paper numbers and `reproduces`
# have their own columns). A key matches an entry equal to it or nested below it.
NOISE = (
    "runs_dir", "logger", "data.root", "data.val_root", "data.num_workers", "trainer.progress_bar",
    "trainer.log_every_n_steps", "trainer.checkpoint_every_n_steps",
    "experiment.name", "experiment.method", "experiment.description", "experiment.reproduces",
    "experiment.open_values", "experiment.paper_metrics", "experiment.tags", "experiment.group",
    "experiment.monitor", "experiment.monitor_mode",
)


@dataclass
class MetricLog:
    """One logged metric: the epoch, step and value of every row that holds it, in order."""

    epochs: np.ndarray
    steps: np.ndarray
    values: np.ndarray


@dataclass
class Run:
    folder: Path
    name: str
    reproduces: str
    monitor: str
    monitor_mode: str
    paper: dict[str, float]  # val/<metric> -> the paper's number
    config: dict[str, Any]  # dotted key -> value
    metrics: dict[str, MetricLog] = field(default_factory=dict)  # val/* only

    def mode(self, metric: str) -> str:
        """'max' or 'min': the monitor's own mode, else min for losses and error counts
        (ID switches) and max otherwise."""
        if metric == self.monitor:
            return self.monitor_mode
        return "min" if any(word in metric for word in LOWER_IS_BETTER) else "max"

    def final(self, metric: str) -> float | None:
        log = self.metrics.get(metric)
        return float(log.values[-1]) if log is not None else None

    def best(self, metric: str) -> tuple[float, int] | None:
        """(best value, its epoch), or None when the metric was never logged."""
        log = self.metrics.get(metric)
        if log is None or np.isnan(log.values).all():
            return None
        pick = np.nanargmin if self.mode(metric) == "min" else np.nanargmax
        i = int(pick(log.values))
        return float(log.values[i]), int(log.epochs[i])


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> {dotted.key: leaf}; a list or an empty mapping is one leaf."""
    if isinstance(value, dict) and value:
        return {dotted: leaf for key, item in value.items()
                for dotted, leaf in flatten(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def under(key: str, prefixes: Iterable[str]) -> bool:
    """Whether the dotted ``key`` is one of ``prefixes`` or nested below one."""
    return any(key == p or key.startswith(f"{p}.") for p in prefixes)


def load_yaml(path: Path) -> Any:
    """``path`` read by OmegaConf; ``InputError`` naming the file when it is not valid YAML."""
    try:
        return OmegaConf.load(path)
    except Exception as err:  # yaml.YAMLError and OmegaConf's own
        raise InputError(f"not valid YAML: {str(err).splitlines()[0]}", file=str(path)) from None


def _number(text: str, file: Path, line: int, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"not a number: {text!r}", file=str(file), record=f"line {line}",
                         field=column) from None


def read_metrics(path: Path, prefix: str = "val/") -> dict[str, MetricLog]:
    """The ``prefix`` metrics of a Lightning CSVLogger file (sparse rows: one metric group each)."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return {}  # created, nothing logged yet
    header, body = rows[0], rows[1:]
    for column in ("epoch", "step"):
        if column not in header:
            raise InputError("not a Lightning CSV log: no such column", file=str(path), field=column)
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise InputError(f"expected {len(header)} columns, found {len(row)}",
                             file=str(path), record=f"line {line}")
    epoch_col, step_col = header.index("epoch"), header.index("step")
    logs: dict[str, MetricLog] = {}
    for col, name in enumerate(header):
        if not name.startswith(prefix):
            continue
        filled = [(line, row) for line, row in enumerate(body, start=2) if row[col] != ""]
        if not filled:
            continue
        logs[name] = MetricLog(
            epochs=np.array([_number(r[epoch_col], path, n, "epoch") for n, r in filled], dtype=int),
            steps=np.array([_number(r[step_col], path, n, "step") for n, r in filled], dtype=int),
            values=np.array([_number(r[col], path, n, name) for n, r in filled], dtype=float),
        )
    return logs


RESUME_RECORD = re.compile(r"resume-(\d+)\.yaml")


def _resumed_step(record: Path) -> int:
    value = OmegaConf.select(load_yaml(record), "step")
    if not isinstance(value, int):
        raise InputError(f"expected the step the resume started from, got {value!r}",
                         file=str(record), field="step")
    return value


def run_metrics(folder: Path, prefix: str = "val/") -> dict[str, MetricLog]:
    """A run's logged ``prefix`` metrics over all its attempts, in step order.

    Attempt 0 is ``csv/metrics.csv``; resume n logged ``csv/resume-<n>/metrics.csv`` from the
    step its ``resume-<n>.yaml`` records. The steps an attempt logged after the step a later
    attempt (one that logged anything) resumed from were trained again by that one, whose
    rows are the run's: they stand for the weights that were kept.
    """
    attempts = [(0, folder / CSV_LOG, 0)]
    for record in folder.glob("resume-*.yaml"):
        match = RESUME_RECORD.fullmatch(record.name)
        if match:
            n = int(match.group(1))
            log = folder / "csv" / f"resume-{n}" / "metrics.csv"
            attempts.append((n, log, _resumed_step(record)))
    attempts.sort()  # by attempt number, never by listing order
    logs = [(read_metrics(path, prefix) if path.is_file() else {}, start)
            for _, path, start in attempts]
    joined: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for i, (log, _) in enumerate(logs):
        later = [start for other, start in logs[i + 1:] if other]
        end = min(later, default=None)
        for name, metric in log.items():
            keep = np.ones(len(metric.steps), bool) if end is None else metric.steps < end
            joined.setdefault(name, []).append((metric.epochs[keep], metric.steps[keep],
                                                metric.values[keep]))
    return {name: MetricLog(*(np.concatenate(column) for column in zip(*parts)))
            for name, parts in joined.items()}


def started(folder: Path) -> bool:
    """Whether a run folder got as far as logging or checkpointing (a run killed before its
    first step, e.g. by kill -9 during set-up, leaves only its config.yaml)."""
    return (folder / CSV_LOG).is_file() or any((folder / "checkpoints").glob("*.ckpt"))


def load_run(folder: Path) -> Run:
    """Read one run folder; ``InputError`` naming the folder and what it lacks otherwise."""
    if not folder.is_dir():
        raise InputError("no such run folder", file=str(folder))
    missing = [str(p) for p in (Path(CONFIG_FILE), CSV_LOG) if not (folder / p).is_file()]
    if missing:
        raise InputError(f"not a run folder: missing {' and '.join(missing)}", file=str(folder))
    config_path = folder / CONFIG_FILE
    cfg = load_yaml(config_path)
    if not isinstance(cfg, DictConfig) or not OmegaConf.select(cfg, "experiment.name"):
        raise InputError("expected a composed experiment config", file=str(config_path),
                         field="experiment.name")
    tree = OmegaConf.to_container(cfg, resolve=False)
    info = tree["experiment"]
    paper = {}
    for key, value in (info.get("paper_metrics") or {}).items():
        if not isinstance(value, (int, float)):
            raise InputError(f"expected a number, got {value!r}", file=str(config_path),
                             field=f"experiment.paper_metrics.{key}")
        paper[logged_metric_name(str(key))] = float(value)
    return Run(
        folder=folder, name=str(info["name"]), reproduces=str(info.get("reproduces") or ""),
        monitor=str(info.get("monitor") or ""), monitor_mode=str(info.get("monitor_mode") or "max"),
        paper=paper, config=flatten(tree), metrics=run_metrics(folder),
    )


def differing_keys(runs: list[Run]) -> list[str]:
    """Dotted keys every run has, whose values are not all equal (noise keys left out).

    A key only some runs have (another method's model section) is not compared: the
    experiment name already tells those rows apart.
    """
    shared = set.intersection(*(set(r.config) for r in runs))
    return [k for k in runs[0].config if k in shared and not under(k, NOISE)
            and any(r.config[k] != runs[0].config[k] for r in runs[1:])]


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"


def _value_cell(value: Any) -> str:
    return "null" if value is None else str(value)


def _escape(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _ours(value: float | None, paper: float | None) -> str:
    ours = MISSING if value is None else _fmt(value)
    return ours if paper is None else f"{ours} (paper {_fmt(paper)})"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(_escape(h) for h in header) + " |",
            "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(_escape(c) for c in row) + " |" for row in rows)]


def _headline_metrics(runs: list[Run]) -> list[str]:
    """``val/<name>`` metrics logged by any run or given by a paper; monitors first."""
    names = {m for r in runs for m in r.metrics if m.count("/") == 1}
    names |= {m for r in runs for m in r.paper if m.count("/") == 1}
    monitors = {r.monitor for r in runs}
    return sorted(names, key=lambda m: (m not in monitors, m))


def _part_families(runs: list[Run]) -> dict[str, list[str]]:
    """``val/AP`` -> its parts (``head_top``, ...) in logged order, for per-part metrics."""
    families: dict[str, dict[str, None]] = {}  # parts as ordered-set keys
    for metric in (m for run in runs for m in run.metrics if m.count("/") >= 2):
        family, part = metric.rsplit("/", 1)
        families.setdefault(family, {})[part] = None
    return {family: list(parts) for family, parts in families.items()}


def _labels(runs: list[Run], keys: list[str]) -> list[str]:
    """Legend labels: name and differing values; the folder added where two still clash."""
    labels = [r.name + (f" ({', '.join(_value_cell(r.config[k]) for k in keys)})" if keys else "")
              for r in runs]
    return [f"{label} [{r.folder.name}]" if labels.count(label) > 1 else label
            for label, r in zip(labels, runs)]


def _slug(metric: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", metric).strip("_")


def plot_curves(runs: list[Run], metric: str, labels: list[str], path: Path) -> Path:
    """``metric`` over the epochs, one line per run (over steps when a run validated more
    than once per epoch, so that its points do not stack)."""
    logs = [(r.metrics.get(metric), f"C{i}", f"#{i + 1} {label}")
            for i, (r, label) in enumerate(zip(runs, labels))]
    by_step = any(len(np.unique(log.epochs)) < len(log.epochs)
                  for log, _, _ in logs if log is not None)
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    for log, color, label in logs:
        if log is not None:
            x = log.steps if by_step else log.epochs
            ax.plot(x, log.values, marker="o", markersize=3, color=color, label=label)
    ax.set(xlabel="step" if by_step else "epoch", ylabel=metric, title=metric)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def plot_finals(runs: list[Run], metrics: list[str], labels: list[str], path: Path) -> Path:
    """One panel per metric, one bar per run (its final value)."""
    cols = min(len(metrics), 3)
    rows = math.ceil(len(metrics) / cols)
    fig = Figure(figsize=(3.2 * cols, 2.8 * rows + 0.3 * len(runs)))
    colors = [f"C{i}" for i in range(len(runs))]
    for k, metric in enumerate(metrics):
        ax = fig.add_subplot(rows, cols, k + 1)
        heights = [r.final(metric) for r in runs]
        ax.bar(np.arange(len(runs)), [np.nan if v is None else v for v in heights], color=colors)
        ax.set_xticks(np.arange(len(runs)), [f"#{i + 1}" for i in range(len(runs))])
        ax.set_title(metric, fontsize="medium")
    handles = [fig.axes[0].patches[i] for i in range(len(runs))]
    fig.legend(handles, [f"#{i + 1} {label}" for i, label in enumerate(labels)],
               loc="lower center", fontsize="small")
    fig.tight_layout(rect=(0, 0.3 * len(runs) / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=100)
    return path


def build_report(run_dirs: list[Path], out: Path) -> Path:
    """Write the Markdown report of ``run_dirs`` to ``out`` (PNGs beside it); return ``out``."""
    if not run_dirs:
        raise InputError("no run folders given (expected runs/<experiment>/<time> folders)")
    # `make report` globs runs/*/*: a run that never started (killed during set-up) is
    # skipped, said once, rather than failing the whole report.
    skipped = [Path(d) for d in run_dirs if Path(d, CONFIG_FILE).is_file() and not started(Path(d))]
    for folder in skipped:
        print(f"vidpose: warning: {folder}: skipped, the run stopped before its first step")
    run_dirs = [Path(d) for d in run_dirs if Path(d) not in skipped]
    if not run_dirs:
        raise InputError("none of the run folders given got to its first step")
    runs = [load_run(Path(d)) for d in run_dirs]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    keys = differing_keys(runs)
    metrics = _headline_metrics(runs)
    labels = _labels(runs, keys)

    def ids(i: int, run: Run) -> list[str]:
        return [f"#{i + 1}", run.name, run.folder.name] + [_value_cell(run.config[k]) for k in keys]

    id_header = ["#", "experiment", "run"] + keys
    lines = [
        "# vidpose report", "",
        f"{len(runs)} run(s). *Final* is the last logged value, *best* the best over the logged "
        "validations (the experiment's monitor_mode for its monitor; min for losses and ID "
        "switches; max for the rest). `(paper x)` is the number the experiment's paper reports for that metric; "
        f"{MISSING} means not logged (yet).", "",
        "## Final values", "",
        *_table(id_header + metrics + ["reproduces"],
                [ids(i, r) + [_ours(r.final(m), r.paper.get(m)) for m in metrics] + [r.reproduces]
                 for i, r in enumerate(runs)]),
        "", "## Best values", "",
    ]
    best_rows = []
    for i, run in enumerate(runs):
        best = {m: run.best(m) for m in {*metrics, run.monitor}}  # (value, epoch) or None
        cells = [_ours(best[m] and best[m][0], run.paper.get(m)) for m in metrics]
        when = MISSING if best[run.monitor] is None else f"{best[run.monitor][1]} ({run.monitor})"
        best_rows.append(ids(i, run) + cells + [when])
    lines += _table(id_header + metrics + ["best epoch (monitor)"], best_rows)

    for family, parts in _part_families(runs).items():
        lines += ["", f"## {family} per part (final)", ""]
        lines += _table(["#", "experiment", "run"] + parts,
                        [ids(i, r)[:3] + [_ours(r.final(f"{family}/{p}"), None) for p in parts]
                         for i, r in enumerate(runs)])

    plotted = [m for m in metrics if any(m in r.metrics for r in runs)]
    if plotted:
        lines += ["", "## Curves", ""]
        for metric in plotted:
            png = out.with_name(f"{out.stem}_{_slug(metric)}.png")
            plot_curves(runs, metric, labels, png)
            lines += [f"![{metric}]({png.name})", ""]
        png = plot_finals(runs, plotted, labels, out.with_name(f"{out.stem}_final.png"))
        lines += ["## Final metrics per run", "", f"![final metrics per run]({png.name})"]
    else:
        lines += ["", "No validation metrics logged yet: nothing to plot."]

    lines += ["", "## Runs", ""]
    lines += [f"- #{i + 1} `{r.folder}`: {r.name}, monitor {r.monitor} ({r.monitor_mode})"
              for i, r in enumerate(runs)]
    out.write_text("\n".join(lines) + "\n")
    return out
