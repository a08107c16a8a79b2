"""Build Trainer, loggers and callbacks from a config; fit, validate, resume.

Every run owns one folder ``runs/<experiment>/<YYYYmmdd-HHMMSS>/`` holding the resolved
``config.yaml``, ``checkpoints/`` (``last.ckpt`` plus the best on the monitored metric),
``csv/`` (the CSV log), ``wandb/`` (the W&B run, offline unless configured) and whatever
the method writes (predictions, media).
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf, read_write

from vidpose.callbacks.checkpoint import (RESUMABLE_KEYS, AtomicCheckpointIO, LastCheckpoint,
                                          atomic_write_text, read_checkpoint)
from vidpose.callbacks.distribution import trainer_kwargs
from vidpose.callbacks.media import ValidationMedia
from vidpose.callbacks.rng_state import RNGStateCallback
from vidpose.config import TrainerConfig, canonical_name, to_dict, wandb_group, wandb_tags
from vidpose.data_modules.sources import DATASET_SCHEMA, sample_schema
from vidpose.errors import ConfigError, InputError
from vidpose.machine import cpu_model
from vidpose.methods import get_datamodule_cls, get_method

# Set by the launching process so that DDP workers, which re-run the same command, join
# the same run folder instead of making their own.
RUN_DIR_ENV = "VIDPOSE_RUN_DIR"
SYNTH_DATASETS = ("posetrack18", "coco", "ochuman")
TRAINER_KEYS = {f.name for f in fields(TrainerConfig)}  # the rest of trainer.* is Lightning's


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, float]


def ensure_data(cfg: DictConfig, *, progress: bool = True) -> None:
    """Generate the synthetic data set when the config points at one that is missing.

    ``data.root`` (and ``data.crowded_root``, when set) of a synthetic experiment is
    ``<out>/<layout>``; ``<out>/manifest.json`` is written last, so a half-written set (a
    crash mid-generation) is generated again. Data is generated only into a folder named
    after the preset (``data/synth/<preset>/<layout>``): any other root without a manifest
    is taken for a real data set, whose mistyped path must be an error, not a synthetic set
    written into the user's data folder.
    """
    roots = [("data.root", Path(cfg.data.root))]
    for key in ("val_root", "crowded_root"):
        if cfg.data.get(key):
            roots.append((f"data.{key}", Path(cfg.data[key])))
    preset = cfg.data.synth_preset
    for field, root in roots:
        if not preset:
            if not root.exists():
                raise InputError("data root not found; set data.root to your dataset folder "
                                 "(or data.synth_preset to generate synthetic data there)",
                                 file=str(root), field=field)
            continue
        if root.name not in SYNTH_DATASETS:
            raise ConfigError(f"{field}: a synthetic root must end in one of {SYNTH_DATASETS} "
                              f"(got {root}); set data.synth_preset=null for real data")
        out = root.parent
        if (out / "manifest.json").is_file():
            continue
        if out.name != preset:
            raise InputError(f"no synthetic set here ({out / 'manifest.json'} missing), and "
                             f"synthetic data '{preset}' is only generated into a folder named "
                             f"'{preset}' (.../{preset}/{root.name}); for real data select it "
                             f"(data={root.name} data.root=...)", file=str(root), field=field)
        from vidpose.synth import synthesize

        print(f"Generating synthetic data '{preset}' into {out.resolve()} (once) ...", flush=True)
        synthesize(out, preset=preset, seed=int(cfg.seed), progress=progress)


def _new_model(cfg: DictConfig) -> L.LightningModule:
    """The experiment's method built from its config (checkpoint references resolved)."""
    if cfg.data.dataset not in DATASET_SCHEMA:
        raise ConfigError(f"data.dataset: {cfg.data.dataset!r} is not one of {sorted(DATASET_SCHEMA)}")
    resolve_checkpoints(cfg)
    return get_method(cfg.experiment.method).model_cls(
        model=to_dict(cfg.model), data=to_dict(cfg.data),
        schema=sample_schema(cfg.data))


def build(cfg: DictConfig, *, init_weights: bool = True
          ) -> tuple[L.LightningModule, L.LightningDataModule]:
    """Model and data module; ``init_weights=False`` skips ``init_from`` (a resumed run's
    checkpoint holds every weight)."""
    spec = get_method(cfg.experiment.method)
    model = _new_model(cfg)
    datamodule = get_datamodule_cls(spec, cfg.experiment.datamodule)(to_dict(cfg.data))
    if cfg.init_from and init_weights:
        _init_weights(model, resolve_init_from(str(cfg.init_from), Path(cfg.runs_dir)),
                      list(cfg.init_from_skip))
    return model, datamodule


def resolve_init_from(value: str, runs_dir: Path) -> Path:
    """A checkpoint path, or ``run:<experiment>``: the last.ckpt of its newest run (an
    alias's runs are its target's)."""
    if not value.startswith("run:"):
        return Path(value)
    experiment = canonical_name(value[len("run:"):])
    runs = sorted(p for p in (runs_dir / experiment).glob("*/checkpoints/last.ckpt")
                  if not p.parts[-3].startswith("eval-"))
    if not runs:
        raise InputError(f"no run of experiment {experiment!r} with a last.ckpt under "
                         f"{runs_dir / experiment}: train it first (make train EXP={experiment})",
                         file=str(runs_dir / experiment), field="init_from")
    return runs[-1]


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
    problems = []
    missing = [k for k in kept if k not in state]
    if missing:
        problems.append(f"{len(missing)} tensors of the model missing ({_first(missing)})")
    misshaped = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                 for k in kept if k in state and state[k].shape != own[k].shape]
    if misshaped:
        problems.append(f"{len(misshaped)} of another shape (checkpoint vs model: "
                        f"{_first(misshaped)})")
    unused = [k for k in state if k not in own and not (prefixes and k.startswith(prefixes))]
    if unused:
        problems.append(f"{len(unused)} with no place in the model ({_first(unused)})")
    if problems:
        raise InputError(f"does not fit this model: {'; '.join(problems)}. Train the checkpoint "
                         "with the same model settings, or list the parameter prefixes this "
                         "run re-initialises in init_from_skip", file=str(ckpt), field="init_from")
    model.load_state_dict({k: state[k] for k in kept}, strict=False)
    print(f"init_from: loaded {len(kept)}/{len(own)} tensors from {ckpt}"
          + (f"; re-initialised {len(reinit)} under {', '.join(prefixes)}" if prefixes else ""),
          flush=True)


def new_run_dir(cfg: DictConfig) -> Path:
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited:
        return Path(inherited)
    base = Path(cfg.runs_dir) / cfg.experiment.name
    stamp = time.strftime("%Y%m%d-%H%M%S")
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
RESUME_RECORD = re.compile(r"resume-(\d+)\.yaml")


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
    from vidpose.report import flatten

    return flatten(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False))


def _run_order(run_dir: Path) -> tuple[str, int]:
    """Run folders ``<YYYYmmdd-HHMMSS>[-n]`` in the order they were made (by name, not by
    file times or listing order)."""
    parts = run_dir.name.split("-")
    return "-".join(parts[:2]), int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0


def _checkpoints(run_dir: Path) -> list[Path]:
    """A run's checkpoint files in name order (temporary files of a cut write excluded)."""
    return sorted(p for p in (run_dir / "checkpoints").glob("*.ckpt") if not p.name.startswith("."))


def _run_of(ckpt: Path) -> Path:
    """The run folder of a checkpoint given to ``--resume``; only ``<run>/checkpoints/*.ckpt``."""
    run_dir = ckpt.parent.parent
    if ckpt.parent.name != "checkpoints" or not (run_dir / "config.yaml").is_file():
        raise InputError("not a checkpoint inside a run folder (expected runs/<experiment>/"
                         "<time>/checkpoints/<name>.ckpt beside that run's config.yaml)",
                         file=str(ckpt), field="RESUME")
    if not ckpt.is_file():
        raise InputError("checkpoint to resume from not found", file=str(ckpt), field="RESUME")
    return run_dir


def newest_run(runs_dir: Path, experiment: str) -> Path:
    """The newest run folder of ``experiment`` that holds a checkpoint (runs that stopped
    before their first checkpoint, and eval/infer folders, are skipped)."""
    base = runs_dir / experiment
    runs = [p for p in base.glob("*") if p.is_dir() and p.name[:1].isdigit()
            and (p / "config.yaml").is_file() and _checkpoints(p)]
    if not runs:
        raise ConfigError(f"RESUME=last: no run of '{experiment}' with a checkpoint under "
                          f"{base}/")
    return max(runs, key=_run_order)


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
        run_dir = newest_run(Path(cfg.runs_dir), name)
        first, fallback = run_dir / "checkpoints" / "last.ckpt", True
        if not first.is_file():
            first = _checkpoints(run_dir)[-1]
    else:
        first, fallback = Path(resume), False
        run_dir = _run_of(first)
    config_path = run_dir / "config.yaml"
    try:
        saved = OmegaConf.load(config_path)
    except Exception as err:  # yaml.YAMLError and OmegaConf's own
        raise InputError(f"not valid YAML: {str(err).splitlines()[0]}",
                         file=str(config_path)) from None
    if OmegaConf.select(saved, "experiment.name") != name:
        raise ConfigError(f"RESUME: {config_path} is a run of "
                          f"{OmegaConf.select(saved, 'experiment.name')!r}, not of {name!r}")
    saved = validated(saved, str(config_path))
    given, default, old = _flat(cfg), _flat(compose(name)), _flat(saved)
    named = [item.split("=", 1)[0] for item in overrides or [] if "=" in item]
    changed = {k: v for k, v in given.items() if default.get(k, v) != v or k not in default
               or any(k == n or k.startswith(f"{n}.") for n in named)}
    applied = {}
    for key, value in changed.items():
        if any(key == r or key.startswith(f"{r}.") for r in RESUMABLE_OVERRIDES):
            if old.get(key) != value:
                applied[key] = value
        elif key in old and old[key] != value:
            raise ConfigError(f"RESUME: {key} cannot change when a run is resumed (the run has "
                              f"{old[key]!r}, the command line gives {value!r}); only trainer "
                              "limits, logging and devices can. Start a new run instead")
    for key, value in applied.items():
        OmegaConf.update(saved, key, value, force_add=False)
    ckpt, step = _loadable_checkpoint(run_dir, first, fallback)
    done = [int(m.group(1)) for p in run_dir.glob("resume-*.yaml")
            if (m := RESUME_RECORD.fullmatch(p.name))]
    # DDP workers re-run the command after the launching process wrote its record.
    attempt = max(done, default=0) + (0 if os.environ.get(RUN_DIR_ENV) else 1)
    return ResumePlan(run_dir, saved, ckpt, step, max(attempt, 1), applied)


def csv_version(attempt: int) -> str:
    """The CSV log folder of an attempt under ``<run>/csv/``: the first run writes
    ``csv/metrics.csv``, resume n ``csv/resume-<n>/metrics.csv`` (``report`` joins them), so a
    resume never rewrites what was logged before it."""
    return "" if attempt == 0 else f"resume-{attempt}"


def _loggers(cfg: DictConfig, run_dir: Path, attempt: int = 0) -> list[Logger]:
    loggers: list[Logger] = []
    if cfg.logger.csv:
        # Every logged row goes to disk at once: a kill -9 loses no row a checkpoint covers.
        loggers.append(CSVLogger(save_dir=str(run_dir), name="csv", version=csv_version(attempt),
                                 flush_logs_every_n_steps=1))
    mode = wandb_mode(cfg)
    if mode != "disabled":
        info = cfg.experiment
        id_file = run_dir / "wandb_id.txt"
        run_id = id_file.read_text().strip() if id_file.is_file() else None
        logger = WandbLogger(
            project=cfg.logger.project, entity=cfg.logger.entity, name=info.name,
            group=wandb_group(info), job_type=info.method, tags=wandb_tags(info),
            save_dir=str(run_dir), mode=mode, id=run_id,
            resume="allow" if run_id else None, config=to_dict(cfg),
        )
        loggers.append(logger)
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


def _start_wandb(trainer: L.Trainer, cfg: DictConfig, run_dir: Path) -> None:
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


def _finish_wandb(trainer: L.Trainer | None, failed: bool) -> None:
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


# Lightning warnings that describe what the suite does on purpose: frozen feature extractors
# (the RNN decoder's AE) stay in eval mode, and checkpoints of manually optimised methods
# hold the state after the step.
for _message in (r"Found \d+ module\(s\) in eval mode at the start of training",
                 r"Using ModelCheckpoint with manual optimization and every_n_train_steps"):
    warnings.filterwarnings("ignore", message=_message)


def build_trainer(cfg: DictConfig, run_dir: Path, attempt: int = 0, **extra: Any) -> L.Trainer:
    """The Trainer of a run folder; ``attempt`` n > 0 is the n-th resume (its own CSV log)."""
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


def _final_metrics(trainer: L.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}


# Written into a run folder when its training (or, for a pipeline that trains nothing, its
# validation) returns: that the run finished, how long it took and on what machine.
# `vidpose results` skips experiments with a finished run and sums these times.
FINISHED_FILE = "finished.yaml"


def machine(trainer: L.Trainer) -> dict[str, Any]:
    """What a run trained on: accelerator (the GPU's name, or cpu), CPU model and cores,
    library versions and the precision Lightning used."""
    import platform

    import torch

    device = trainer.strategy.root_device
    accelerator = (torch.cuda.get_device_name(device) if device.type == "cuda" else device.type)
    return {"accelerator": accelerator, "devices": int(trainer.num_devices),
            "cpu": cpu_model(), "cores": os.cpu_count(), "torch": str(torch.__version__),
            "lightning": str(L.__version__), "python": platform.python_version(),
            "precision": str(trainer.precision)}


def _record_finished(run_dir: Path, trainer: L.Trainer, seconds: float, attempt: int) -> None:
    """``finished.yaml``: this attempt's wall time added to what an earlier finished attempt
    recorded (a resume of a finished run trains on; interrupted attempts record nothing)."""
    path = run_dir / FINISHED_FILE
    before = float(OmegaConf.load(path).get("wall_s", 0.0)) if path.is_file() else 0.0
    record = {"wall_s": round(before + seconds, 1), "attempt": attempt,
              "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": machine(trainer)}
    atomic_write_text(path, OmegaConf.to_yaml(record))


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
    trainable = getattr(model, "TRAINABLE", True)
    if plan is not None and not trainable:
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
    os.environ[RUN_DIR_ENV] = str(run_dir)  # DDP workers start inside fit and read this
    trainer = None
    started = time.monotonic()
    try:
        trainer = build_trainer(cfg, run_dir, plan.attempt if plan else 0)
        if trainer.is_global_zero:
            _start_wandb(trainer, cfg, run_dir)
            print(f"Run folder: {run_dir}", flush=True)
        if trainable:
            trainer.fit(model, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
        else:
            # Pipelines of trained models (correspondence tracking): one validation pass.
            trainer.validate(model, datamodule=datamodule)
        if trainer.is_global_zero and not trainer.interrupted:
            _record_finished(run_dir, trainer, time.monotonic() - started,
                             plan.attempt if plan else 0)
    except BaseException:
        _finish_wandb(trainer, failed=True)  # before its folder may go
        if created and not (trainable and trainer is not None and trainer.global_step > 0):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        if inherited is None:
            os.environ.pop(RUN_DIR_ENV, None)
    _finish_wandb(trainer, failed=False)
    return RunResult(run_dir, _final_metrics(trainer))


def _load_checkpoint(cfg: DictConfig, ckpt: str) -> L.LightningModule:
    """The experiment's method rebuilt from ``ckpt``. No data is read or generated here: a
    model needs none of the config's data roots, and ``vidpose track`` on the user's own video
    must not render the synthetic set first; the commands that read the roots (eval, infer)
    call :func:`ensure_data` themselves."""
    path = Path(ckpt)
    read_checkpoint(path, field="CKPT")  # one line for a missing, truncated or foreign file
    resolve_checkpoints(cfg)
    model = get_method(cfg.experiment.method).model_cls.load_from_checkpoint(str(path), map_location="cpu")
    # Methods whose inference has knobs of its own (memory capacity, tracker, box source)
    # run with the experiment's values, overrides included, rather than the training run's.
    if hasattr(model, "use_settings"):
        model.use_settings(to_dict(cfg.model), to_dict(cfg.data))
    return model


def load_model(cfg: DictConfig, ckpt: str | None) -> L.LightningModule:
    """The model to run: rebuilt from ``ckpt``, or, for methods that train nothing (a
    pipeline of trained models named in the config), built from the config alone."""
    spec = get_method(cfg.experiment.method)
    if ckpt:
        return _load_checkpoint(cfg, ckpt)
    if getattr(spec.model_cls, "TRAINABLE", True):
        raise ConfigError(f"--ckpt: {cfg.experiment.name!r} is a trained {cfg.experiment.method} "
                          "model; name its checkpoint (e.g. runs/<exp>/<run>/checkpoints/last.ckpt)")
    return _new_model(cfg).eval()


# Config keys that may name another experiment's checkpoint as run:<experiment>.
CHECKPOINT_KEYS = (("data", "detector"), ("model", "pose_estimator"), ("model", "correspondence"),
                   ("model", "features"))
# What a prerequisite run inherits from the command line of the run that needs it: where the
# data and runs live, how to train and log; never model keys (each experiment has its own).
INHERITED_OVERRIDES = ("data", "trainer", "logger", "runs_dir", "seed", "experiment.scale",
                       "debug")


def _has_run(experiment: str, runs_dir: Path) -> bool:
    try:
        resolve_init_from(f"run:{experiment}", runs_dir)
    except InputError:
        return False
    return True


def missing_prerequisites(cfg: DictConfig) -> list[str]:
    """Experiments this config names as ``run:<experiment>`` that have no run yet."""
    values = [cfg[section].get(key) for section, key in CHECKPOINT_KEYS] + [cfg.init_from]
    names = [str(v)[len("run:"):] for v in values if v and str(v).startswith("run:")]
    runs_dir = Path(cfg.runs_dir)
    return [name for name in dict.fromkeys(names) if not _has_run(name, runs_dir)]


def inherited_overrides(overrides: list[str]) -> list[str]:
    """The command-line overrides a prerequisite run shares (``INHERITED_OVERRIDES``)."""
    def key(override: str) -> str:
        return override.split("=", 1)[0]
    return [o for o in overrides
            if any(key(o) == k or key(o).startswith(f"{k}.") for k in INHERITED_OVERRIDES)]


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


def resolve_checkpoints(cfg: DictConfig) -> None:
    """``run:<experiment>`` in ``data.detector``, ``model.pose_estimator``,
    ``model.correspondence`` or ``model.features`` -> that experiment's newest last.ckpt
    (in place)."""
    for section, key in CHECKPOINT_KEYS:
        value = cfg[section].get(key)
        if value and str(value).startswith("run:"):
            try:
                path = str(resolve_init_from(str(value), Path(cfg.runs_dir)))
            except InputError as err:
                raise InputError(err.reason, file=err.file, field=f"{section}.{key}") from None
            with read_write(cfg[section]):  # frozen model configs are read-only
                cfg[section][key] = path


def evaluate(cfg: DictConfig, ckpt: str | None) -> RunResult:
    """Validate a checkpoint (or a pipeline of trained models) on the validation data."""
    spec = get_method(cfg.experiment.method)
    model = load_model(cfg, ckpt)  # checks the checkpoint before any data is generated
    ensure_data(cfg, progress=cfg.trainer.progress_bar)
    datamodule = get_datamodule_cls(spec, cfg.experiment.datamodule)(to_dict(cfg.data))
    run_dir = Path(os.environ.get(RUN_DIR_ENV) or Path(cfg.runs_dir) / cfg.experiment.name /
                   f"eval-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    inherited = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)  # DDP workers join this folder
    trainer = None
    try:
        trainer = build_trainer(cfg, run_dir)
        trainer.validate(model, datamodule=datamodule)
    except BaseException:
        _finish_wandb(trainer, failed=True)
        raise
    finally:
        if inherited is None:
            os.environ.pop(RUN_DIR_ENV, None)
    _finish_wandb(trainer, failed=False)
    return RunResult(run_dir, _final_metrics(trainer))

