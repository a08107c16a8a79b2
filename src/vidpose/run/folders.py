"""Run folders ``runs/<experiment>/<YYYYmmdd-HHMMSS>/``: naming, resuming one, and the
``finished.yaml`` a finished training leaves in it."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import lightning as L
from omegaconf import DictConfig, OmegaConf

from vidpose.callbacks.checkpoint import RESUMABLE_KEYS, atomic_write_text, read_checkpoint
from vidpose.config import canonical_name
from vidpose.errors import ConfigError, InputError
from vidpose.machine import host
from vidpose.report import RESUME_RECORD, flatten, load_yaml, under

# Set by the launching process so that DDP workers, which re-run the same command, join
# the same run folder instead of making their own.
RUN_DIR_ENV = "VIDPOSE_RUN_DIR"


def new_run_dir(cfg: DictConfig, prefix: str = "") -> Path:
    """``runs/<experiment>/<prefix><YYYYmmdd-HHMMSS>[-n]``, or the launching process's
    folder in a DDP worker."""
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited:
        return Path(inherited)
    base = Path(cfg.runs_dir) / cfg.experiment.name
    stamp = prefix + time.strftime("%Y%m%d-%H%M%S")
    run_dir = base / stamp
    n = 1
    while run_dir.exists():
        run_dir = base / f"{stamp}-{n}"
        n += 1
    return run_dir


# What a resumed run may change: how long it trains, how it validates, logs and checkpoints,
# and on what hardware. Anything else (model, data, optimisation, seed) would make the
# checkpoint and the run's config.yaml disagree. A key matches an entry equal to or below it.
RESUMABLE_OVERRIDES = (
    "trainer.max_epochs", "trainer.max_steps", "trainer.max_time", "trainer.limit_train_batches",
    "trainer.limit_val_batches", "trainer.val_check_interval", "trainer.check_val_every_n_epoch",
    "trainer.num_sanity_val_steps", "trainer.log_every_n_steps",
    "trainer.checkpoint_every_n_steps", "trainer.progress_bar", "trainer.accelerator",
    "trainer.devices", "trainer.num_nodes", "logger", "data.num_workers", "runs_dir",
)


@dataclass
class ResumePlan:
    """Where a resumed run continues: its folder, config, checkpoint and attempt number."""

    run_dir: Path
    cfg: DictConfig  # the run's config.yaml with the resumable overrides applied
    checkpoint: Path
    step: int  # the checkpoint's global step
    attempt: int  # 1 for the first resume; its record is resume-<attempt>.yaml
    overrides: dict[str, Any]  # the resumable values changed on this resume


def _flat(cfg: DictConfig) -> dict[str, Any]:
    return flatten(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False))


def run_order(run_dir: Path) -> tuple[str, int]:
    """Run folders ``<YYYYmmdd-HHMMSS>[-n]`` in the order they were made (by name, not by
    file times or listing order)."""
    parts = run_dir.name.split("-")
    return "-".join(parts[:2]), int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0


def _checkpoints(run_dir: Path) -> list[Path]:
    """A run's checkpoint files in name order (temporary files of a cut write excluded)."""
    return sorted(p for p in (run_dir / "checkpoints").glob("*.ckpt") if not p.name.startswith("."))


def run_of(ckpt: Path, field: str) -> Path:
    """The run folder of a checkpoint ``<run>/checkpoints/<name>.ckpt`` (``--resume``,
    ``vidpose.load``), its config.yaml beside."""
    run_dir = ckpt.parent.parent
    if ckpt.parent.name != "checkpoints" or not (run_dir / "config.yaml").is_file():
        raise InputError("not a checkpoint inside a run folder (expected runs/<experiment>/"
                         "<time>/checkpoints/<name>.ckpt beside that run's config.yaml)",
                         file=str(ckpt), field=field)
    return run_dir


def newest_run(runs_dir: Path, experiment: str, holds: Callable[[Path], bool]) -> Path | None:
    """The newest run folder of ``experiment`` (an alias: its target's) for which ``holds``
    is true; eval/infer folders are skipped. None when there is none."""
    base = Path(runs_dir) / canonical_name(experiment)
    runs = [p for p in base.glob("*") if p.name[:1].isdigit() and p.is_dir() and holds(p)]
    return max(runs, key=run_order, default=None)


def _loadable_checkpoint(run_dir: Path, first: Path, fallback: bool) -> tuple[Path, int]:
    """(checkpoint, its global step): ``first`` when it loads, else (with ``fallback``) the
    run's checkpoint that loads with the highest step, said on stderr."""
    def step_of(path: Path) -> int:
        return int(read_checkpoint(path, field="RESUME", needs=RESUMABLE_KEYS)["global_step"])

    try:
        return first, step_of(first)
    except InputError as err:
        if not fallback:
            raise
        problem = err
    loadable = []
    for path in _checkpoints(run_dir):
        if path != first:
            try:
                step = step_of(path)
            except InputError:
                continue
            loadable.append((step, path.name, path))
    if not loadable:
        raise InputError(f"{problem.reason}; no other checkpoint of this run loads either",
                         file=problem.file, field="RESUME")
    step, _, path = max(loadable)
    print(f"vidpose: warning: {problem}; resuming from {path} (step {step}) instead",
          file=sys.stderr, flush=True)
    return path, step


def plan_resume(cfg: DictConfig, resume: str, overrides: list[str] | None = None) -> ResumePlan:
    """The run ``resume`` names (``last``: the experiment's newest) and how to continue it.

    The run continues from its own ``config.yaml``. ``cfg`` is the current command line's
    config, ``overrides`` that command line's ``key=value`` items: the keys they name, and
    those whose value differs from the experiment's defaults, must either be in
    ``RESUMABLE_OVERRIDES`` (applied, and recorded in ``resume-<n>.yaml``) or equal the run's
    value; anything else is a ``ConfigError`` naming the key. The checkpoint is read before
    anything is written.
    """
    from vidpose.config import compose, validated

    name = str(cfg.experiment.name)
    if resume == "last":
        run_dir = newest_run(Path(cfg.runs_dir), name,
                             lambda p: (p / "config.yaml").is_file() and bool(_checkpoints(p)))
        if run_dir is None:  # runs that stopped before their first checkpoint are skipped
            raise ConfigError(f"RESUME=last: no run of '{name}' with a checkpoint under "
                              f"{Path(cfg.runs_dir) / name}/")
        first, fallback = run_dir / "checkpoints" / "last.ckpt", True
        if not first.is_file():
            first = _checkpoints(run_dir)[-1]
    else:
        first, fallback = Path(resume), False
        run_dir = run_of(first, "RESUME")
    config_path = run_dir / "config.yaml"
    saved = load_yaml(config_path)
    if OmegaConf.select(saved, "experiment.name") != name:
        raise ConfigError(f"RESUME: {config_path} is a run of "
                          f"{OmegaConf.select(saved, 'experiment.name')!r}, not of {name!r}")
    saved = validated(saved, str(config_path))
    given, default, old = _flat(cfg), _flat(compose(name)), _flat(saved)
    named = [item.split("=", 1)[0] for item in overrides or [] if "=" in item]
    changed = {k: v for k, v in given.items() if default.get(k, v) != v or k not in default
               or under(k, named)}
    applied = {}
    for key, value in changed.items():
        if under(key, RESUMABLE_OVERRIDES):
            if old.get(key) != value:
                applied[key] = value
                OmegaConf.update(saved, key, value, force_add=False)
        elif key in old and old[key] != value:
            raise ConfigError(f"RESUME: {key} cannot change when a run is resumed (the run has "
                              f"{old[key]!r}, the command line gives {value!r}); only trainer "
                              "limits, logging and devices can. Start a new run instead")
    ckpt, step = _loadable_checkpoint(run_dir, first, fallback)
    done = [int(m.group(1)) for p in run_dir.glob("resume-*.yaml")
            if (m := RESUME_RECORD.fullmatch(p.name))]
    # DDP workers re-run the command after the launching process wrote its record.
    attempt = max(done, default=0) + (0 if os.environ.get(RUN_DIR_ENV) else 1)
    return ResumePlan(run_dir, saved, ckpt, step, max(attempt, 1), applied)


# Written into a run folder when its training (or, for a pipeline that trains nothing, its
# validation) returns: that the run finished, how long it took and on what machine.
# `vidpose results` skips experiments with a finished run and sums these times.
FINISHED_FILE = "finished.yaml"


def machine(trainer: L.Trainer) -> dict[str, Any]:
    """What a run trained on: the accelerator (the GPU's name, or cpu), the host (CPU,
    cores, versions), Lightning's version and the precision it used."""
    import torch

    device = trainer.strategy.root_device
    accelerator = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    return {"accelerator": accelerator, "devices": int(trainer.num_devices), **host(),
            "lightning": str(L.__version__), "precision": str(trainer.precision)}


def record_finished(run_dir: Path, trainer: L.Trainer, seconds: float, attempt: int) -> None:
    """``finished.yaml``: this attempt's wall time added to what an earlier finished attempt
    recorded (a resume of a finished run trains on; interrupted attempts record nothing)."""
    path = run_dir / FINISHED_FILE
    before = float(OmegaConf.load(path).get("wall_s", 0.0)) if path.is_file() else 0.0
    record = {"wall_s": round(before + seconds, 1), "attempt": attempt,
              "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": machine(trainer)}
    atomic_write_text(path, OmegaConf.to_yaml(record))

