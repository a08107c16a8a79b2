"""Build Trainer, loggers and callbacks from a config; fit, validate, resume.

Every run owns one folder ``runs/<experiment>/<YYYYmmdd-HHMMSS>/`` holding the resolved
``config.yaml``, ``checkpoints/`` (``last.ckpt`` plus the best on the monitored metric),
``csv/`` (the CSV log), ``wandb/`` (the W&B run, offline unless configured) and whatever
the method writes (predictions, media).
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf, read_write

from vidpose.callbacks.checkpoint import LastCheckpoint
from vidpose.callbacks.distribution import trainer_kwargs
from vidpose.callbacks.rng_state import RNGStateCallback
from vidpose.config import canonical_name, to_dict
from vidpose.data_modules.sources import DATASET_SCHEMA, sample_schema
from vidpose.errors import ConfigError, InputError
from vidpose.methods import get_datamodule_cls, get_method

# Set by the launching process so that DDP workers, which re-run the same command, join
# the same run folder instead of making their own.
RUN_DIR_ENV = "VIDPOSE_RUN_DIR"
SYNTH_DATASETS = ("posetrack18", "coco", "ochuman")


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, float]


def ensure_data(cfg: DictConfig, *, progress: bool = True) -> None:
    """Generate the synthetic data set when the config points at one that is missing.

    ``data.root`` (and ``data.crowded_root``, when set) of a synthetic experiment is
    ``<out>/<layout>``; ``<out>/manifest.json`` is written last, so a half-written set (a
    crash mid-generation) is generated again.
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
        from vidpose.synth import synthesize

        print(f"Generating synthetic data '{preset}' into {out} (once) ...", flush=True)
        synthesize(out, preset=preset, seed=int(cfg.seed), progress=progress)


def _new_model(cfg: DictConfig) -> L.LightningModule:
    """The experiment's method built from its config (checkpoint references resolved)."""
    if cfg.data.dataset not in DATASET_SCHEMA:
        raise ConfigError(f"data.dataset: {cfg.data.dataset!r} is not one of {sorted(DATASET_SCHEMA)}")
    resolve_checkpoints(cfg)
    return get_method(cfg.experiment.method).model_cls(
        model=to_dict(cfg.model), data=to_dict(cfg.data),
        schema=sample_schema(cfg.data))


def build(cfg: DictConfig) -> tuple[L.LightningModule, L.LightningDataModule]:
    spec = get_method(cfg.experiment.method)
    model = _new_model(cfg)
    datamodule = get_datamodule_cls(spec, cfg.experiment.datamodule)(to_dict(cfg.data))
    if cfg.init_from:
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
    import torch

    if not ckpt.is_file():
        raise InputError("checkpoint not found", file=str(ckpt), field="init_from")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
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


def find_resume(cfg: DictConfig, resume: str) -> tuple[Path, Path]:
    """(run folder, checkpoint) for ``--resume last`` or ``--resume PATH``."""
    if resume != "last":
        ckpt = Path(resume)
        if not ckpt.is_file():
            raise InputError("checkpoint to resume from not found", file=resume, field="RESUME")
        run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
        return run_dir, ckpt
    candidates = sorted(Path(cfg.runs_dir, cfg.experiment.name).glob("*/checkpoints/last.ckpt"),
                        key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise ConfigError(f"RESUME=last: no run of '{cfg.experiment.name}' with a "
                          f"checkpoints/last.ckpt under {cfg.runs_dir}/{cfg.experiment.name}/")
    return candidates[-1].parent.parent, candidates[-1]


def _loggers(cfg: DictConfig, run_dir: Path) -> list[Logger]:
    loggers: list[Logger] = []
    if cfg.logger.csv:
        loggers.append(CSVLogger(save_dir=str(run_dir), name="csv", version=""))
    if cfg.logger.wandb and cfg.logger.mode != "disabled":
        mode = os.environ.get("WANDB_MODE", cfg.logger.mode)
        id_file = run_dir / "wandb_id.txt"
        run_id = id_file.read_text().strip() if id_file.is_file() else None
        logger = WandbLogger(
            project=cfg.logger.project, entity=cfg.logger.entity, name=cfg.experiment.name,
            group=cfg.experiment.method, tags=list(cfg.experiment.tags) + [cfg.experiment.scale],
            save_dir=str(run_dir), offline=(mode != "online"), id=run_id,
            resume="allow" if run_id else None, config=to_dict(cfg),
        )
        loggers.append(logger)
    return loggers


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
    if cfg.trainer.progress_bar:
        callbacks.append(RichProgressBar())
    return callbacks


# Lightning warnings that describe what the suite does on purpose: frozen feature extractors
# (the RNN decoder's AE) stay in eval mode, and checkpoints of manually optimised methods
# hold the state after the step.
for _message in (r"Found \d+ module\(s\) in eval mode at the start of training",
                 r"Using ModelCheckpoint with manual optimization and every_n_train_steps"):
    warnings.filterwarnings("ignore", message=_message)


def build_trainer(cfg: DictConfig, run_dir: Path, **extra: Any) -> L.Trainer:
    t = cfg.trainer
    optional = {k: t[k] for k in ("limit_train_batches", "limit_val_batches",
                                  "val_check_interval", "gradient_clip_val", "max_time")
                if t[k] is not None}
    for key in ("limit_train_batches", "limit_val_batches", "val_check_interval"):
        value = optional.get(key)
        if isinstance(value, float) and value.is_integer() and value > 1:
            optional[key] = int(value)  # 5.0 from YAML means five batches, not 500%
    return L.Trainer(
        default_root_dir=str(run_dir),
        max_epochs=t.max_epochs, max_steps=t.max_steps,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        num_sanity_val_steps=t.num_sanity_val_steps, log_every_n_steps=t.log_every_n_steps,
        accumulate_grad_batches=t.accumulate_grad_batches, deterministic=t.deterministic,
        enable_progress_bar=t.progress_bar, logger=_loggers(cfg, run_dir),
        callbacks=_callbacks(cfg, run_dir), **trainer_kwargs(t), **optional, **extra,
    )


def _final_metrics(trainer: L.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}


def train(cfg: DictConfig, resume: str | None = None) -> RunResult:
    """Fit the experiment; with ``resume`` continue the run it names (``last`` or a path)."""
    ckpt_path = None
    if resume:
        run_dir, ckpt_path = find_resume(cfg, resume)
    else:
        run_dir = new_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    ensure_data(cfg, progress=cfg.trainer.progress_bar)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    resolve_checkpoints(cfg)  # the run's config.yaml names the checkpoints it used
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    model, datamodule = build(cfg)
    trainable = getattr(model, "TRAINABLE", True)
    if resume and not trainable:
        raise ConfigError(f"RESUME: {cfg.experiment.name!r} trains nothing (it evaluates trained "
                          "models), so there is no run to continue")
    inherited = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)  # DDP workers start inside fit and read this
    try:
        trainer = build_trainer(cfg, run_dir)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                if isinstance(logger, WandbLogger):
                    (run_dir / "wandb_id.txt").write_text(logger.experiment.id)
            print(f"Run folder: {run_dir}", flush=True)
        if trainable:
            trainer.fit(model, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
        else:
            # Pipelines of trained models (correspondence tracking): one validation pass.
            trainer.validate(model, datamodule=datamodule)
    finally:
        if inherited is None:
            os.environ.pop(RUN_DIR_ENV, None)
    return RunResult(run_dir, _final_metrics(trainer))


def _load_checkpoint(cfg: DictConfig, ckpt: str) -> L.LightningModule:
    """The experiment's method rebuilt from ``ckpt`` (its data generated first if missing)."""
    path = Path(ckpt)
    if not path.is_file():
        raise InputError("checkpoint not found", file=ckpt, field="CKPT")
    ensure_data(cfg, progress=cfg.trainer.progress_bar)
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
    ensure_data(cfg, progress=cfg.trainer.progress_bar)
    return _new_model(cfg).eval()


# Config keys that may name another experiment's checkpoint as run:<experiment>.
CHECKPOINT_KEYS = (("data", "detector"), ("model", "pose_estimator"), ("model", "correspondence"),
                   ("model", "features"))
# What a prerequisite run inherits from the command line of the run that needs it: where the
# data and runs live, how to train and log; never model keys (each experiment has its own).
INHERITED_OVERRIDES = ("data", "trainer", "logger", "runs_dir", "seed", "experiment.scale")


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
    model = load_model(cfg, ckpt)
    datamodule = get_datamodule_cls(spec, cfg.experiment.datamodule)(to_dict(cfg.data))
    run_dir = Path(os.environ.get(RUN_DIR_ENV) or Path(cfg.runs_dir) / cfg.experiment.name /
                   f"eval-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    inherited = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)  # DDP workers join this folder
    try:
        trainer = build_trainer(cfg, run_dir)
        trainer.validate(model, datamodule=datamodule)
    finally:
        if inherited is None:
            os.environ.pop(RUN_DIR_ENV, None)
    return RunResult(run_dir, _final_metrics(trainer))


def infer(cfg: DictConfig, ckpt: str, split: str, out: str | None) -> RunResult:
    """Whole-video online inference of a video model on one split: PoseTrack18 files + scores."""
    if cfg.experiment.method != "stm":
        raise ConfigError(f"vidpose infer runs the STM experiments' whole-video inference; "
                          f"{cfg.experiment.name!r} is a {cfg.experiment.method} experiment "
                          "(use vidpose eval)")
    from vidpose.data_modules.datasets import as_data_config, in_schema
    from vidpose.data_modules.sources import load_split, validation_source
    from vidpose.methods.stm_video import infer_split

    model = _load_checkpoint(cfg, ckpt)
    data_cfg = as_data_config(cfg.data)
    # The validation split lives in data.val_root when that is set (pre-training on COCO
    # images, validating on PoseTrack18 videos).
    source = validation_source(data_cfg) if split == data_cfg.val_split else data_cfg
    data = in_schema(load_split(source, split), model.schema.name)
    run_dir = Path(out) if out else (Path(cfg.runs_dir) / cfg.experiment.name
                                     / f"infer-{time.strftime('%Y%m%d-%H%M%S')}")
    folder = run_dir / "predictions" / split
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    metrics = infer_split(model, data, data_cfg, folder, progress=cfg.trainer.progress_bar)
    return RunResult(run_dir, {f"{split}/{k}": v for k, v in metrics.items()})
