"""``vidpose infer EXP --ckpt CKPT``: an STM experiment online over every whole video of a
split (``methods/stm_video.py``): pixel P/R/F1 of the maps; with keypoint maps, PoseTrack18
keypoint detections and keypoint P/R/F1."""
from __future__ import annotations

import argparse
from pathlib import Path

from vidpose.commands.summary import print_metrics


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "infer", help="run an STM experiment online over whole videos of a split: pixel P/R/F1 "
        "of the maps; with keypoint maps, PoseTrack18 keypoint detections and keypoint P/R/F1")
    parser.add_argument("experiment")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--split", default="val", help="data split (default val)")
    parser.add_argument("--out", default=None, help="output folder (default runs/<exp>/infer-<time>)")


def handle(args: argparse.Namespace) -> None:
    from omegaconf import OmegaConf

    from vidpose.callbacks.checkpoint import atomic_write_text
    from vidpose.config import compose
    from vidpose.data_modules.datasets import as_data_config, in_schema
    from vidpose.data_modules.sources import load_split, validation_source
    from vidpose.errors import ConfigError
    from vidpose.methods.stm_video import infer_split
    from vidpose.run import load_model
    from vidpose.run.data import ensure_data
    from vidpose.run.folders import new_run_dir

    cfg = compose(args.experiment, args.overrides)
    if cfg.experiment.method != "stm":
        raise ConfigError(f"vidpose infer runs the STM experiments' whole-video inference; "
                          f"{cfg.experiment.name!r} is a {cfg.experiment.method} experiment "
                          "(use vidpose eval)")
    model = load_model(cfg, args.ckpt)
    ensure_data(cfg, progress=cfg.trainer.progress_bar)
    data_cfg = as_data_config(cfg.data)
    # The validation split lives in data.val_root when that is set (pre-training on COCO
    # images, validating on PoseTrack18 videos).
    source = validation_source(data_cfg) if args.split == data_cfg.val_split else data_cfg
    data = in_schema(load_split(source, args.split), model.schema.name)
    run_dir = Path(args.out) if args.out else new_run_dir(cfg, prefix="infer-")
    folder = run_dir / "predictions" / args.split
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    metrics = infer_split(model, data, data_cfg, folder, progress=cfg.trainer.progress_bar)
    print_metrics(run_dir, {f"{args.split}/{key}": value for key, value in metrics.items()})
