"""Find an experiment by name, compose its YAML chain, apply overrides, validate.

An experiment file lists ``bases`` (files under ``experiments/``, merged first, recursively),
then its own values. Command-line overrides come last and are of two kinds:

* ``dotted.key=value``: set one value (``trainer.max_epochs=3``);
* ``group=name``: merge ``experiments/_base/<group>/<name>.yaml`` into that section
  (``data=posetrack18`` switches the data section to the real PoseTrack18 layout).

A file may carry ``scales: {compact: {...}, paper: {...}}``: the block of the chosen
``experiment.scale`` is merged after the file and the group selections and before the
dotted overrides, so one file states both the CPU-sized and the paper-sized run.

The result is validated against structured dataclasses: an unknown key or a wrong type is a
``ConfigError`` naming the key and where it came from.

An experiment file may instead be an alias of another, when two paper rows are one
configuration (Table 3 'learned' is Table 1 'Ours'): it holds only ``alias_of: <name>`` and
the ``reproduces`` line of its own row. Composing an alias gives the named experiment's
config, name included, so training it trains (and ``RESUME``, ``run:`` and reports find)
that experiment's runs; ``vidpose list`` shows it as "alias of <name>".
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vidpose.data_modules.config import DataConfig
from vidpose.errors import MOVED_KEYS, ConfigError

SCALES = ("compact", "paper")


@dataclass
class ExperimentInfo:
    """What an experiment is and which paper row it reproduces."""

    name: str = ""
    method: str = ""
    description: str = ""
    reproduces: str = ""  # paper, table and row, e.g. "Xiao et al. 2018, Table 1 row 2"
    open_values: str = ""  # values the paper left open and what we chose
    paper_metrics: dict[str, float] = field(default_factory=dict)  # the paper's numbers
    tags: list[str] = field(default_factory=list)
    # The W&B group: the paper table this experiment is a row of ("rnn/table4"), so that
    # grouped plots compare one table's rows. Empty: derived from the name (see wandb_group).
    group: str = ""
    scale: str = "compact"
    monitor: str = "val/loss"
    monitor_mode: str = "min"
    # The data module, when not the method's default: crops | frames | clips | sequences |
    # track_clips | boxes.
    datamodule: str = ""


# <paper>_t<N>_... is a row of the paper's Table N, <paper>_f<N>_... a point of its Figure N.
_TABLE_ROW = re.compile(r"^(?P<paper>[a-z]+)_(?P<kind>[tf])(?P<number>\d+)_")
_TABLE_TAG = re.compile(r"^(table|fig|appendix_?)\w*$")


def wandb_group(info: Any) -> str:
    """``experiment.group``, else ``<paper>/table<N>`` (``figN``) from a name ``<paper>_t<N>_*``
    (``_f<N>_*``), else the experiment's own name (a run that is no table's row: a
    pre-training, a detector)."""
    if info.group:
        return str(info.group)
    row = _TABLE_ROW.match(str(info.name))
    if row is None:
        return str(info.name)
    return f"{row['paper']}/{'table' if row['kind'] == 't' else 'fig'}{row['number']}"


def wandb_tags(info: Any) -> list[str]:
    """The experiment's tags with the ones naming a table or figure prefixed by the paper
    (``table4`` of an rnn experiment -> ``rnn:table4``: every paper has a Table 1), and its scale."""
    group = wandb_group(info)
    paper = group.split("/", 1)[0] if "/" in group else ""
    tags = [f"{paper}:{tag}" if paper and _TABLE_TAG.match(str(tag)) else str(tag)
            for tag in info.tags]
    return list(dict.fromkeys(tags + [str(info.scale)]))


def logged_metric_name(paper_metric: str) -> str:
    """``experiment.paper_metrics`` keys may omit the ``val/`` of the logged metric name."""
    return paper_metric if paper_metric.startswith("val/") else f"val/{paper_metric}"


@dataclass
class TrainerConfig:
    max_epochs: int = 10
    max_steps: int = -1
    max_time: Optional[str] = None  # "DD:HH:MM:SS"
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"  # auto: callbacks/distribution.py (GPU, CPU bf16 flags, method)
    limit_train_batches: Optional[float] = None
    limit_val_batches: Optional[float] = None
    val_check_interval: Optional[float] = None
    check_val_every_n_epoch: int = 1
    num_sanity_val_steps: int = 0
    log_every_n_steps: int = 10
    gradient_clip_val: Optional[float] = None
    accumulate_grad_batches: int = 1
    deterministic: bool = False
    # last.ckpt is rewritten every this many optimizer steps: a crash loses at most these.
    checkpoint_every_n_steps: int = 50
    progress_bar: bool = True
    # Any other argument of Lightning's Trainer (fast_dev_run, overfit_batches, profiler,
    # detect_anomaly, ...) may be set as trainer.<name> too: compose checks the name against
    # Trainer.__init__ (LIGHTNING_MANAGED aside) and run.trainer.build_trainer passes it through.


# Trainer arguments the run builds itself, and the key that sets each instead.
LIGHTNING_MANAGED = {"logger": "logger.*", "callbacks": "the run's callbacks",
                     "plugins": "the run's checkpoint I/O", "default_root_dir": "runs_dir",
                     "enable_progress_bar": "trainer.progress_bar"}


def lightning_trainer_args() -> set[str]:
    """The Lightning ``Trainer`` arguments a config may set as ``trainer.<name>``."""
    import inspect

    from lightning import Trainer

    params = set(inspect.signature(Trainer.__init__).parameters) - {"self"}
    return params - set(LIGHTNING_MANAGED)


def _check_trainer_keys(part: DictConfig, source: str) -> None:
    """The trainer section is open to Lightning's own arguments: each name must be one of
    TrainerConfig's or of ``Trainer.__init__``'s (the same did-you-mean error as elsewhere)."""
    section = part.get("trainer") if isinstance(part, DictConfig) else None
    if not isinstance(section, DictConfig):
        return
    known = {f.name for f in fields(TrainerConfig)} | lightning_trainer_args()
    for key in map(str, section.keys()):
        if key in known:
            continue
        if key in LIGHTNING_MANAGED:
            raise ConfigError(f"{source}: key 'trainer.{key}' is set by the run itself "
                              f"(from {LIGHTNING_MANAGED[key]})")
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f" (did you mean 'trainer.{close[0]}'?)" if close else ""
        raise ConfigError(f"{source}: unknown key 'trainer.{key}'{hint}")


@dataclass
class LoggerConfig:
    wandb: bool = True
    project: str = "vidpose"
    entity: Optional[str] = None
    # auto | offline | online | disabled. auto: online under a W&B sweep agent (WANDB_SWEEP_ID
    # set, so that the sweep sees its runs), offline otherwise. WANDB_MODE in the environment,
    # when set, wins; disabled (either way) writes nothing.
    mode: str = "auto"
    csv: bool = True
    # Frames drawn as ground truth | prediction after each validation, saved under
    # <run>/media/val/ and logged to W&B with per-joint/per-video/per-image tables; 0 = off.
    media: int = 4


@dataclass
class RunConfig:
    """Top-level keys besides the sections."""

    seed: int = 0
    runs_dir: str = "runs"
    # A checkpoint whose weights start this run, or "run:<experiment>" for the last.ckpt of
    # that experiment's newest run (chains pre-training and fine-tuning).
    init_from: Optional[str] = None
    # Parameter-name prefixes (e.g. "net.refinement.") that the run re-initialises instead of
    # taking from init_from; every other tensor must be in the checkpoint with its shape.
    init_from_skip: list[str] = field(default_factory=list)


def experiments_dir() -> Path:
    """The experiments folder: $VIDPOSE_EXPERIMENTS, else the repository's ``experiments/``
    in a source checkout (editable install, ``make train``), else the copy installed as the
    package data ``vidpose/experiments`` (``pip install .``, from any directory)."""
    import os
    from importlib.resources import files

    env = os.environ.get("VIDPOSE_EXPERIMENTS")
    if env:
        return Path(env)
    # A checkout's src/vidpose/ has no experiments/ of its own; an installed package has.
    packaged = Path(str(files("vidpose") / "experiments"))
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "experiments"


def _is_experiment(path: Path, root: Path) -> bool:
    rel = path.relative_to(root).parts
    return not any(p.startswith("_") or p == "sweeps" for p in rel[:-1])


def list_experiments(root: Path | None = None) -> dict[str, Path]:
    root = root or experiments_dir()
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.yaml")):
        if _is_experiment(path, root):
            if path.stem in found:
                raise ConfigError(f"experiment name {path.stem!r} is defined twice: "
                                  f"{found[path.stem]} and {path}")
            found[path.stem] = path
    return found


def find_experiment(name: str, root: Path | None = None) -> Path:
    known = list_experiments(root)
    if name in known:
        return known[name]
    close = difflib.get_close_matches(name, list(known), n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ConfigError(f"unknown experiment {name!r}.{hint} `vidpose list` shows all "
                      f"{len(known)} experiments.")


# The keys an alias file may hold (see the module docstring).
ALIAS_KEYS = ("alias_of", "reproduces")


def alias_target(path: Path, root: Path | None = None) -> Optional[str]:
    """The experiment the file at ``path`` is an alias of, or None when it is none.

    ``ConfigError`` naming the file when it holds other keys, names an unknown experiment
    or an alias (one step only, so that an alias always names where its runs are)."""
    cfg = _load_yaml(path)
    if "alias_of" not in cfg:
        return None
    extra = [str(key) for key in cfg if key not in ALIAS_KEYS]
    if extra:
        raise ConfigError(f"{path}: field {extra[0]!r}: an alias file holds only "
                          f"{' and '.join(ALIAS_KEYS)} (the config is its target's)")
    target = str(cfg.alias_of)
    try:
        target_path = find_experiment(target, root)
    except ConfigError as err:
        raise ConfigError(f"{path}: field 'alias_of': {err}") from None
    if "alias_of" in _load_yaml(target_path):
        raise ConfigError(f"{path}: field 'alias_of': {target!r} is itself an alias; name "
                          "the experiment it aliases")
    return target


def canonical_name(name: str, root: Path | None = None) -> str:
    """``name``, or the experiment it is an alias of (unknown names are returned as given:
    a ``run:`` folder may outlive its file)."""
    known = list_experiments(root)
    return (alias_target(known[name], root) or name) if name in known else name


def _one_line(err: Exception, position: bool = True) -> str:
    """A YAML or OmegaConf error in one line: yaml's problem, where and in what; OmegaConf's
    message without its full_key / object_type lines."""
    problem = getattr(err, "problem", None)
    if problem:  # yaml's MarkedYAMLError
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark and position else ""
        context = getattr(err, "context", None)
        return f"{problem}{where}" + (f" ({context})" if context else "")
    lines = str(getattr(err, "msg", None) or err).strip().splitlines()
    return lines[0].strip() if lines else type(err).__name__


def _load_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:  # yaml.YAMLError and OmegaConf's own
        raise ConfigError(f"{path}: not valid YAML: {_one_line(err)}") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    # An emptied section ("model:" with nothing under it) would replace the whole section.
    empty = [key for key in ("experiment", "trainer", "data", "model", "logger", "scales")
             if key in cfg and cfg[key] is None]
    if empty:
        raise ConfigError(f"{path}: section {empty[0]!r} is empty; give it keys or leave it out")
    return cfg


def chain(path: Path, root: Path, seen: tuple[Path, ...] = ()) -> list[tuple[Path, DictConfig]]:
    """The file and its bases, bases first, each as (path, content without 'bases')."""
    if path in seen:
        raise ConfigError(f"{path}: bases form a cycle: {' -> '.join(map(str, seen + (path,)))}")
    cfg = _load_yaml(path)
    out: list[tuple[Path, DictConfig]] = []
    for base in cfg.pop("bases", []) or []:
        base_path = root / (base if str(base).endswith(".yaml") else f"{base}.yaml")
        if not base_path.is_file():
            raise ConfigError(f"{path}: field 'bases': no file {base_path}")
        out += chain(base_path, root, seen + (path,))
    out.append((path, cfg))
    return out


def _schema(method: str) -> DictConfig:
    from vidpose.methods import get_method

    schema = OmegaConf.create({
        "experiment": OmegaConf.structured(ExperimentInfo),
        "trainer": OmegaConf.structured(TrainerConfig),
        "data": OmegaConf.structured(DataConfig),
        "model": OmegaConf.structured(get_method(method).config_cls),
        "logger": OmegaConf.structured(LoggerConfig),
        **OmegaConf.to_container(OmegaConf.structured(RunConfig)),
    })
    OmegaConf.set_struct(schema, True)
    # A free mapping (metric name -> the paper's number): any key, float values.
    OmegaConf.set_struct(schema.experiment.paper_metrics, False)
    # Open to Lightning's own Trainer arguments; _check_trainer_keys checks their names.
    OmegaConf.set_struct(schema.trainer, False)
    return schema


def _close_key(cfg: DictConfig, full_key: str) -> str:
    if new := MOVED_KEYS.get(full_key):
        return f" (it is now {new if ' ' in new else repr(new)})"
    parent_key, _, leaf = full_key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    if isinstance(parent, DictConfig):
        close = difflib.get_close_matches(leaf, [str(k) for k in parent.keys()], n=1)
        if close:
            return f" (did you mean '{parent_key + '.' if parent_key else ''}{close[0]}'?)"
    return ""


def _merge(cfg: DictConfig, other: DictConfig, source: str) -> DictConfig:
    _check_trainer_keys(other, source)
    try:
        return OmegaConf.merge(cfg, other)  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or ""
        if "not in" in str(err) or "Key" in type(err).__name__:
            raise ConfigError(f"{source}: unknown key '{key}'{_close_key(cfg, key)}") from None
        raise ConfigError(f"{source}: bad value for '{key}': {_one_line(err)}") from None


# Groups merged after the scale blocks rather than before them: debug=smoke
# (experiments/_base/debug/smoke.yaml) shrinks an experiment at either scale.
LATE_GROUPS = ("debug",)


def _follow_synth_preset(cfg: DictConfig, before: Optional[str]) -> None:
    """After a late group changed ``data.synth_preset`` (smoke: ``tiny``), every synthetic root
    ``.../<before>/<layout>`` moves to ``.../<preset>/<layout>``; real data (no preset before)
    keeps its roots and stays real."""
    after = cfg.data.synth_preset
    if after == before:
        return
    if not before:
        cfg.data.synth_preset = None
        return
    for key in ("root", "val_root", "crowded_root"):
        path = Path(str(cfg.data.get(key) or ""))
        if path.parent.name == before:
            cfg.data[key] = str(path.parent.parent / str(after) / path.name)


def _split_overrides(overrides: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    groups, dotted = [], []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value (e.g. trainer.max_epochs=3)")
        key, value = item.split("=", 1)
        if "." not in key and key not in {"seed", "runs_dir", "init_from", "init_from_skip"}:
            groups.append((key, value))
        else:
            dotted.append(item)
    return groups, dotted


def compose(name: str, overrides: list[str] | None = None, root: Path | None = None) -> DictConfig:
    """The validated config of experiment ``name`` with ``overrides`` applied."""
    root = root or experiments_dir()
    path = find_experiment(name, root)
    target = alias_target(path, root)
    if target is not None:  # one configuration, one name: the alias composes its target
        path = find_experiment(target, root)
    parts = chain(path, root)
    groups, dotted = _split_overrides(list(overrides or []))
    for item in dotted:  # each value alone first, so that an error names its override
        try:
            OmegaConf.from_dotlist([item])
        except Exception as err:  # yaml.YAMLError for the value, OmegaConf's for the key
            raise ConfigError(f"override {item!r}: not a valid key=value (the value is read as "
                              f"YAML): {_one_line(err, position=False)}") from None
    dotted_cfg = OmegaConf.from_dotlist(dotted)

    group_cfgs: list[tuple[Path, DictConfig]] = []
    late_cfgs: list[tuple[Path, DictConfig]] = []
    for group, choice in groups:
        gpath = root / "_base" / group / f"{choice}.yaml"
        if not gpath.is_file():
            options = sorted(p.stem for p in (root / "_base" / group).glob("*.yaml"))
            if not options:
                raise ConfigError(f"override '{group}={choice}': '{group}' is neither a config "
                                  f"group nor a top-level key; use dotted keys like {group}.x=1")
            raise ConfigError(f"override '{group}={choice}': no such {group} choice; "
                              f"choose from {', '.join(options)}")
        group_cfg = _load_yaml(gpath)
        # A group's required value (``root: ???``) must come from the command line: merging
        # ``???`` over the experiment's synthetic root would otherwise keep that root, and a
        # run meant for real data would train on synthetic files.
        for key in sorted(OmegaConf.missing_keys(group_cfg)):
            if OmegaConf.select(dotted_cfg, key, default=None) is None:
                raise ConfigError(f"override '{group}={choice}': {key} must be given too "
                                  f"({key}=/path/to/your/{choice}); see docs/DATA.md")
        (late_cfgs if group in LATE_GROUPS else group_cfgs).append((gpath, group_cfg))

    # The method decides the model schema; the scale decides the scale block. Either may be
    # set anywhere in the chain, so peek at the plain merge first.
    peek = OmegaConf.merge(*(c for _, c in parts), *(c for _, c in group_cfgs),
                           *(c for _, c in late_cfgs), dotted_cfg)
    method = OmegaConf.select(peek, "experiment.method")
    if not method:
        raise ConfigError(f"{path}: field 'experiment.method' is missing")
    scale = OmegaConf.select(peek, "experiment.scale") or "compact"
    if scale not in SCALES:
        raise ConfigError(f"experiment.scale: {scale!r} is not one of {SCALES}")

    cfg = _schema(str(method))
    scale_blocks = []
    for source, part in parts + group_cfgs:
        blocks = part.pop("scales", None)
        if blocks is not None:
            unknown = set(blocks) - set(SCALES)
            if unknown:
                raise ConfigError(f"{source}: field 'scales': unknown scale {sorted(unknown)}; "
                                  f"expected {SCALES}")
            if blocks.get(scale) is not None:
                scale_blocks.append((f"{source} (scales.{scale})", blocks[scale]))
        cfg = _merge(cfg, part, str(source))
    for source, part in scale_blocks:
        cfg = _merge(cfg, part, source)
    for source, part in late_cfgs:  # debug=smoke shrinks whatever the scale chose
        preset = cfg.data.synth_preset
        cfg = _merge(cfg, part, str(source))
        _follow_synth_preset(cfg, preset)
    cfg = _merge(cfg, dotted_cfg, "command-line overrides")
    if not cfg.experiment.name:
        cfg.experiment.name = path.stem
    return cfg


def to_dict(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def validated(cfg: DictConfig, source: str) -> DictConfig:
    """A composed config read back (a run's ``config.yaml``), checked against the schemas
    again so that it has the types and defaults ``compose`` gives."""
    method = OmegaConf.select(cfg, "experiment.method")
    if not method:
        raise ConfigError(f"{source}: field 'experiment.method' is missing")
    return _merge(_schema(str(method)), cfg, source)
