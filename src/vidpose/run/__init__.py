"""Train or evaluate an experiment: its model and data module, Trainer and run folder.

Every run owns one folder ``runs/<experiment>/<YYYYmmdd-HHMMSS>/`` (``folders.py``) holding
the resolved ``config.yaml``, ``checkpoints/`` (``last.ckpt`` plus the best on the monitored
metric), ``csv/`` (the CSV log), ``wandb/`` (the W&B run, offline unless configured) and
whatever the method writes (predictions, media). ``data.py`` prepares the data,
``trainer.py`` builds the Trainer, ``prerequisites.py`` resolves ``run:`` references.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import lightning as L
from omegaconf import DictConfig, OmegaConf

from vidpose.callbacks.checkpoint import atomic_write_text, read_checkpoint
from vidpose.config import to_dict
from vidpose.data_modules.sources import DATASET_SCHEMA, sample_schema
from vidpose.errors import ConfigError, InputError
from vidpose.methods import InferenceSettings, get_datamodule_cls, get_method, load_trained, trainable
from vidpose.run.data import ensure_data
from vidpose.run.folders import RUN_DIR_ENV, new_run_dir, plan_resume, record_finished
from vidpose.run.prerequisites import (
    inherited_overrides,
    missing_prerequisites,
    resolve_checkpoints,
    resolve_run_reference,
)
from vidpose.run.trainer import build_trainer, final_metrics, finish_wandb, start_wandb


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, float]


def _new_model(cfg: DictConfig) -> L.LightningModule:
    """The experiment's method built from its config (checkpoint references resolved)."""
    if cfg.data.dataset not in DATASET_SCHEMA:
        raise ConfigError(f"data.dataset: {cfg.data.dataset!r} is not one of {sorted(DATASET_SCHEMA)}")
    resolve_checkpoints(cfg)
    return get_method(cfg.experiment.method).model_cls(
        model=to_dict(cfg.model), data=to_dict(cfg.data), schema=sample_schema(cfg.data))


def build(cfg: DictConfig, *, init_weights: bool = True
          ) -> tuple[L.LightningModule, L.LightningDataModule]:
    """Model and data module; ``init_weights=False`` skips ``init_from`` (a resumed run's
    checkpoint holds every weight)."""
    spec = get_method(cfg.experiment.method)
    model = _new_model(cfg)
    datamodule = get_datamodule_cls(spec, cfg.experiment.datamodule)(to_dict(cfg.data))
    if cfg.init_from and init_weights:
        _init_weights(model, resolve_run_reference(str(cfg.init_from), Path(cfg.runs_dir)),
                      list(cfg.init_from_skip))
    return model, datamodule


def _first(names: list[str], count: int = 3) -> str:
    return ", ".join(names[:count]) + (f", ... ({len(names)} in all)" if len(names) > count else "")


def _init_weights(model: L.LightningModule, ckpt: Path, skip: Sequence[str] = ()) -> None:
    """Start ``model`` from every tensor of ``ckpt`` except those under the ``skip`` prefixes
    (``init_from_skip``), which keep their fresh initialisation.

    A tensor of the model that the checkpoint lacks or holds in another shape, or a tensor of
    the checkpoint the model has no place for, is an error naming the checkpoint and the first
    such tensors: a partial load would train on random weights without saying so.
    """
    state = read_checkpoint(ckpt, field="init_from", needs=())
    state = state.get("state_dict", state)
    own = model.state_dict()
    prefixes = tuple(str(p) for p in skip)
    unmatched = [p for p in prefixes if not any(k.startswith(p) for k in [*own, *state])]
    if unmatched:
        raise ConfigError(f"init_from_skip: {unmatched[0]!r} is the prefix of no tensor of the "
                          f"model or of {ckpt}")
    reinit = [k for k in own if k.startswith(prefixes)] if prefixes else []
    kept = [k for k in own if k not in set(reinit)]
    missing = [k for k in kept if k not in state]
    misshaped = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                 for k in kept if k in state and state[k].shape != own[k].shape]
    unused = [k for k in state if k not in own and not (prefixes and k.startswith(prefixes))]
    problems = [f"{len(found)} {what}{_first(found)})" for found, what in (
        (missing, "tensors of the model missing ("),
        (misshaped, "of another shape (checkpoint vs model: "),
        (unused, "with no place in the model (")) if found]
    if problems:
        raise InputError(f"does not fit this model: {'; '.join(problems)}. Train the checkpoint "
                         "with the same model settings, or list the parameter prefixes this "
                         "run re-initialises in init_from_skip", file=str(ckpt), field="init_from")
    model.load_state_dict({k: state[k] for k in kept}, strict=False)
    print(f"init_from: loaded {len(kept)}/{len(own)} tensors from {ckpt}"
          + (f"; re-initialised {len(reinit)} under {', '.join(prefixes)}" if prefixes else ""),
          flush=True)


def train(cfg: DictConfig, resume: str | None = None, overrides: list[str] | None = None
          ) -> RunResult:
    """Fit the experiment; with ``resume`` continue the run it names (``last`` or a
    checkpoint path) from its own config, changed only by the resumable ones of the command
    line's ``overrides`` (see :func:`plan_resume`).

    A new run that stops before its first optimizer step (bad data, a wrong key found late,
    Ctrl-C during setup) removes its folder again, so that no empty run is left for
    ``report`` or ``RESUME=last`` to trip on.
    """
    plan = plan_resume(cfg, resume, overrides) if resume else None  # checks the checkpoint first
    if plan is not None:
        cfg, run_dir, ckpt_path = plan.cfg, plan.run_dir, plan.checkpoint
        print(f"Resuming {run_dir} from {ckpt_path.name} (step {plan.step})"
              + (f" with {plan.overrides}" if plan.overrides else ""), flush=True)
    else:
        run_dir, ckpt_path = new_run_dir(cfg), None
    ensure_data(cfg, progress=cfg.trainer.progress_bar)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    resolve_checkpoints(cfg)  # the run's config.yaml names the checkpoints it used
    model, datamodule = build(cfg, init_weights=plan is None)
    fits = trainable(model)
    if plan is not None and not fits:
        raise ConfigError(f"RESUME: {cfg.experiment.name!r} trains nothing (it evaluates trained "
                          "models), so there is no run to continue")
    inherited = os.environ.get(RUN_DIR_ENV)
    created = inherited is None and not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    if inherited is None:
        if plan is None:
            atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        else:  # config.yaml stays the run's own; what this resume changed goes beside it
            record = {"checkpoint": str(ckpt_path), "step": plan.step, "overrides": plan.overrides}
            atomic_write_text(run_dir / f"resume-{plan.attempt}.yaml", OmegaConf.to_yaml(record))
    started, attempt = time.monotonic(), plan.attempt if plan else 0
    try:
        trainer = _fit_or_validate(cfg, run_dir, model, datamodule, fits, ckpt_path, attempt)
    except BaseException:
        if created and model.global_step == 0:  # its W&B run has ended: the folder may go
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    if trainer.is_global_zero and not trainer.interrupted:
        record_finished(run_dir, trainer, time.monotonic() - started, attempt)
    return RunResult(run_dir, final_metrics(trainer))


def _fit_or_validate(cfg: DictConfig, run_dir: Path, model: L.LightningModule,
                     datamodule: L.LightningDataModule, fit: bool, ckpt_path: Path | None = None,
                     attempt: int = 0) -> L.Trainer:
    """Fit ``model`` (a pipeline of trained models, or an evaluation: one validation pass) in
    ``run_dir``, which DDP workers (started inside fit; they re-run the command) join through
    ``RUN_DIR_ENV``. The W&B run ends with it, failed or not."""
    inherited = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    trainer = None
    try:
        trainer = build_trainer(cfg, run_dir, attempt)
        if trainer.is_global_zero:
            start_wandb(trainer, cfg, run_dir)
            print(f"Run folder: {run_dir}", flush=True)
        if fit:
            trainer.fit(model, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
        else:
            trainer.validate(model, datamodule=datamodule)
    except BaseException:
        finish_wandb(trainer, failed=True)
        raise
    finally:
        if inherited is None:
            os.environ.pop(RUN_DIR_ENV, None)
    finish_wandb(trainer, failed=False)
    return trainer


def load_model(cfg: DictConfig, ckpt: str | None) -> L.LightningModule:
    """The model to run, in eval mode: rebuilt from ``ckpt``, or, for methods that train
    nothing (a pipeline of trained models named in the config), built from the config alone.

    No data is read or generated here: a model needs none of the config's data roots, and
    ``vidpose track`` on the user's own video must not render the synthetic set first.
    """
    if not ckpt:
        if trainable(get_method(cfg.experiment.method).model_cls):
            raise ConfigError(f"--ckpt: {cfg.experiment.name!r} is a trained "
                              f"{cfg.experiment.method} model; name its checkpoint "
                              "(e.g. runs/<exp>/<run>/checkpoints/last.ckpt)")
        return _new_model(cfg).eval()
    resolve_checkpoints(cfg)
    model = load_trained(cfg.experiment.method, ckpt, "CKPT")
    # Inference knobs (memory capacity, tracker, box source) take the experiment's values,
    # overrides included, rather than the training run's.
    if isinstance(model, InferenceSettings):
        model.use_settings(to_dict(cfg.model), to_dict(cfg.data))
    return model


def train_prerequisites(cfg: DictConfig, overrides: list[str]) -> list[RunResult]:
    """Train, first, every experiment ``cfg`` reads a checkpoint of and that has no run.

    ``make train EXP=rnn_association`` on a fresh machine thus trains the AE whose features
    the decoder reads, then the decoder. A prerequisite gets the same data, trainer, logger
    and runs settings from the command line, and its own prerequisites first.
    """
    from vidpose.config import compose

    results = []
    for name in missing_prerequisites(cfg):
        print(f"{cfg.experiment.name} reads a trained {name!r}, which has no run under "
              f"{cfg.runs_dir}/{name}: training {name} first.", flush=True)
        needed = compose(name, inherited_overrides(overrides))
        results += train_prerequisites(needed, overrides)
        results.append(train(needed))
    return results


def evaluate(cfg: DictConfig, ckpt: str | None) -> RunResult:
    """Validate a checkpoint (or a pipeline of trained models) on the validation data."""
    spec = get_method(cfg.experiment.method)
    model = load_model(cfg, ckpt)  # checks the checkpoint before any data is generated
    ensure_data(cfg, progress=cfg.trainer.progress_bar)
    datamodule = get_datamodule_cls(spec, cfg.experiment.datamodule)(to_dict(cfg.data))
    run_dir = new_run_dir(cfg, prefix="eval-")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    trainer = _fit_or_validate(cfg, run_dir, model, datamodule, fit=False)
    return RunResult(run_dir, final_metrics(trainer))
