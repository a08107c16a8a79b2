"""``run:<experiment>`` references: the checkpoints a config reads from other experiments'
runs, and which of those experiments have no run yet."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, read_write

from vidpose.config import canonical_name
from vidpose.errors import InputError
from vidpose.report import under
from vidpose.run.folders import newest_run

# Config keys that may name another experiment's checkpoint as run:<experiment>.
CHECKPOINT_KEYS = (("data", "detector"), ("model", "pose_estimator"), ("model", "correspondence"),
                   ("model", "features"))
# What a prerequisite run inherits from the command line of the run that needs it: where the
# data and runs live, how to train and log; never model keys (each experiment has its own).
INHERITED_OVERRIDES = ("data", "trainer", "logger", "runs_dir", "seed", "experiment.scale",
                       "debug")


def resolve_run_reference(value: str, runs_dir: Path, field: str = "init_from") -> Path:
    """A checkpoint path, or ``run:<experiment>`` (in any of ``CHECKPOINT_KEYS``,
    ``init_from`` or a command's option ``field``): the last.ckpt of its newest run (an
    alias's runs are its target's)."""
    if not value.startswith("run:"):
        return Path(value)
    experiment = canonical_name(value[len("run:"):])
    run = newest_run(runs_dir, experiment, lambda p: (p / "checkpoints" / "last.ckpt").is_file())
    if run is None:
        raise InputError(f"no run of experiment {experiment!r} with a last.ckpt under "
                         f"{runs_dir / experiment}: train it first (make train EXP={experiment})",
                         file=str(runs_dir / experiment), field=field)
    return run / "checkpoints" / "last.ckpt"


def resolve_checkpoints(cfg: DictConfig) -> None:
    """``run:<experiment>`` in the ``CHECKPOINT_KEYS`` -> that experiment's newest last.ckpt
    (in place)."""
    for section, key in CHECKPOINT_KEYS:
        value = cfg[section].get(key)
        if value and str(value).startswith("run:"):
            path = resolve_run_reference(str(value), Path(cfg.runs_dir), f"{section}.{key}")
            with read_write(cfg[section]):  # frozen model configs are read-only
                cfg[section][key] = str(path)


def missing_prerequisites(cfg: DictConfig) -> list[str]:
    """Experiments this config names as ``run:<experiment>`` that have no run yet."""
    values = [cfg[section].get(key) for section, key in CHECKPOINT_KEYS] + [cfg.init_from]
    names = [str(v)[len("run:"):] for v in values if v and str(v).startswith("run:")]
    missing = []
    for name in dict.fromkeys(names):
        try:
            resolve_run_reference(f"run:{name}", Path(cfg.runs_dir))
        except InputError:
            missing.append(name)
    return missing


def inherited_overrides(overrides: list[str]) -> list[str]:
    """The command-line overrides a prerequisite run shares (``INHERITED_OVERRIDES``)."""
    return [o for o in overrides if under(o.split("=", 1)[0], INHERITED_OVERRIDES)]
