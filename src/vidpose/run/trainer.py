"""The Trainer of a run: its loggers (CSV, W&B), callbacks and Lightning arguments."""
from __future__ import annotations

import os
import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from omegaconf import DictConfig

from vidpose.callbacks.checkpoint import AtomicCheckpointIO, LastCheckpoint, atomic_write_text
from vidpose.callbacks.distribution import trainer_kwargs
from vidpose.callbacks.media import ValidationMedia
from vidpose.callbacks.rng_state import RNGStateCallback
from vidpose.config import TrainerConfig, to_dict, wandb_group, wandb_tags
from vidpose.errors import ConfigError
from vidpose.methods import get_method

TRAINER_KEYS = {f.name for f in fields(TrainerConfig)}  # the rest of trainer.* is Lightning's


def _loggers(cfg: DictConfig, run_dir: Path, attempt: int = 0) -> list[Logger]:
    loggers: list[Logger] = []
    if cfg.logger.csv:
        # Every logged row goes to disk at once: a kill -9 loses no row a checkpoint covers.
        # Resume n logs to csv/resume-<n>/ (report joins them), never over earlier rows.
        loggers.append(CSVLogger(save_dir=str(run_dir), name="csv", flush_logs_every_n_steps=1,
                                 version=f"resume-{attempt}" if attempt else ""))
    mode = wandb_mode(cfg)
    if mode != "disabled":
        info = cfg.experiment
        id_file = run_dir / "wandb_id.txt"
        run_id = id_file.read_text().strip() if id_file.is_file() else None
        loggers.append(WandbLogger(
            project=cfg.logger.project, entity=cfg.logger.entity, name=info.name,
            group=wandb_group(info), job_type=info.method, tags=wandb_tags(info),
            save_dir=str(run_dir), mode=mode, id=run_id,
            resume="allow" if run_id else None, config=to_dict(cfg),
        ))
    return loggers


WANDB_MODES = ("auto", "offline", "online", "disabled")


def wandb_mode(cfg: DictConfig) -> str:
    """How the run logs to W&B: ``offline``, ``online`` or ``disabled`` (no W&B run at all).

    ``logger.wandb=false``, ``logger.mode=disabled`` or ``WANDB_MODE=disabled`` disable it;
    otherwise ``WANDB_MODE``, when set, wins; ``logger.mode=auto`` (the default) is online
    under a sweep agent (``WANDB_SWEEP_ID`` is set: the sweep must see its runs' metrics),
    offline everywhere else.
    """
    mode = str(cfg.logger.mode)
    if mode not in WANDB_MODES:
        raise ConfigError(f"logger.mode: {mode!r} is not one of {list(WANDB_MODES)}")
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if not cfg.logger.wandb or mode == "disabled" or env == "disabled":
        return "disabled"
    if env:
        return "online" if env in ("online", "run") else "offline"  # wandb's "dryrun": offline
    if mode == "auto":
        return "online" if os.environ.get("WANDB_SWEEP_ID") else "offline"
    return mode


def start_wandb(trainer: L.Trainer, cfg: DictConfig, run_dir: Path) -> None:
    """Start the run's W&B run now (rank zero): its id goes to ``wandb_id.txt`` (a resume
    continues it), and the monitored metric gets its summary (max or min) and the x axis."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            atomic_write_text(run_dir / "wandb_id.txt", run.id)
            if getattr(run, "url", None):  # online only: where the run's page is
                atomic_write_text(run_dir / "wandb_url.txt", run.url)
            info = cfg.experiment
            # The run table and sweeps then show the best value, not the last one logged
            # (Lightning's WandbLogger already put every metric on trainer/global_step).
            run.define_metric(info.monitor, step_metric="trainer/global_step",
                              summary=info.monitor_mode)


def finish_wandb(trainer: L.Trainer | None, failed: bool) -> None:
    """End the W&B run of this training, so that the next training of the same process (the
    run after its prerequisite) starts a run of its own instead of logging into this one."""
    for logger in trainer.loggers if trainer is not None else ():
        run = getattr(logger, "_experiment", None) if isinstance(logger, WandbLogger) else None
        if run is not None and hasattr(run, "finish"):
            run.finish(exit_code=1 if failed else 0)


def _callbacks(cfg: DictConfig, run_dir: Path) -> list[L.Callback]:
    ckpt_dir = run_dir / "checkpoints"
    info = cfg.experiment
    safe = info.monitor.replace("/", "_")
    callbacks: list[L.Callback] = [
        # Best on the experiment's metric.
        ModelCheckpoint(dirpath=ckpt_dir, monitor=info.monitor, mode=info.monitor_mode,
                        save_top_k=1, auto_insert_metric_name=False,
                        filename=f"best-epoch{{epoch}}-step{{step}}-{safe}{{{info.monitor}:.3f}}"),
        # last.ckpt every few optimizer steps and at each epoch end: a crash loses at most
        # checkpoint_every_n_steps steps.
        LastCheckpoint(str(ckpt_dir), cfg.trainer.checkpoint_every_n_steps),
        RNGStateCallback(),
    ]
    if cfg.logger.wandb or cfg.logger.csv:
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    if cfg.logger.media:
        callbacks.append(ValidationMedia(cfg.logger.media))  # pictures and tables of each validation
    if cfg.trainer.progress_bar:
        callbacks.append(RichProgressBar())
    return callbacks


def build_trainer(cfg: DictConfig, run_dir: Path, attempt: int = 0, **extra: Any) -> L.Trainer:
    """The Trainer of a run folder; ``attempt`` n > 0 is the n-th resume (its own CSV log)."""
    # Lightning warnings about what the suite does on purpose: frozen feature extractors
    # (the RNN decoder's AE) stay in eval mode, and checkpoints of manually optimised
    # methods hold the state after the step.
    for message in (r"Found \d+ module\(s\) in eval mode at the start of training",
                    r"Using ModelCheckpoint with manual optimization and every_n_train_steps"):
        warnings.filterwarnings("ignore", message=message)
    t = cfg.trainer
    optional = {k: t[k] for k in ("limit_train_batches", "limit_val_batches",
                                  "val_check_interval", "gradient_clip_val", "max_time")
                if t[k] is not None}
    for key in ("limit_train_batches", "limit_val_batches", "val_check_interval"):
        value = optional.get(key)
        if isinstance(value, float) and value.is_integer() and value > 1:
            optional[key] = int(value)  # 5.0 from YAML means five batches, not 500%
    # precision=auto depends on the CPU and on the method (its FP32_REASON)
    device = trainer_kwargs(t, get_method(cfg.experiment.method).model_cls)
    callbacks = _callbacks(cfg, run_dir) + device.pop("callbacks", [])
    # Lightning's own arguments (fast_dev_run, overfit_batches, profiler, detect_anomaly, ...),
    # as given: config.compose checked their names against Trainer.__init__.
    passthrough = {k: v for k, v in to_dict(t).items() if k not in TRAINER_KEYS}
    return L.Trainer(
        default_root_dir=str(run_dir),
        max_epochs=t.max_epochs, max_steps=t.max_steps,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        num_sanity_val_steps=t.num_sanity_val_steps, log_every_n_steps=t.log_every_n_steps,
        accumulate_grad_batches=t.accumulate_grad_batches, deterministic=t.deterministic,
        enable_progress_bar=t.progress_bar, logger=_loggers(cfg, run_dir, attempt),
        callbacks=callbacks, plugins=[AtomicCheckpointIO()], **device, **optional,
        **passthrough, **extra,
    )


def final_metrics(trainer: L.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}

