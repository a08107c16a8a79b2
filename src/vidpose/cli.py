"""`vidpose train|eval|report|results|list|config|data|bench ...`: the one entry point (the Makefile calls it).

Errors about the user's input (unknown experiment, bad key, malformed file) print one
readable line and exit with status 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from vidpose.errors import VidposeError

DEFAULT_SYNTH = "data/synth/default"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidpose", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train an experiment (make train EXP=...)")
    t.add_argument("experiment")
    t.add_argument("overrides", nargs="*", help="dotted.key=value or group=name")
    t.add_argument("--resume", help="'last' or a checkpoint path: continue that run")

    e = sub.add_parser("eval", help="validate a checkpoint of an experiment (make eval ...), or "
                       "evaluate prediction files: 'eval posetrack ...', 'eval coco ...'")
    e.add_argument("experiment")
    e.add_argument("overrides", nargs="*")
    e.add_argument("--ckpt", default=None, help="checkpoint file (correspondence_tracking "
                   "experiments name their trained models in the config instead)")

    i = sub.add_parser("infer", help="run an STM experiment online over whole videos of a split: "
                       "pixel P/R/F1 of the maps; with keypoint maps, PoseTrack18 keypoint detections "
                       "and keypoint P/R/F1")
    i.add_argument("experiment")
    i.add_argument("overrides", nargs="*")
    i.add_argument("--ckpt", required=True, help="checkpoint file")
    i.add_argument("--split", default="val", help="data split (default val)")
    i.add_argument("--out", default=None, help="output folder (default runs/<exp>/infer-<time>)")

    k = sub.add_parser("track", help="track the persons of one video (file or frame folder) "
                       "online with a top-down experiment: PoseTrack18 results + overlay mp4")
    k.add_argument("overrides", nargs="*", help="dotted.key=value (e.g. model.capacity=4)")
    k.add_argument("--exp", dest="experiment", required=True, help="the experiment name")
    k.add_argument("--ckpt", default=None, help="checkpoint of the pose model (correspondence_"
                   "tracking experiments name their trained models in the config instead)")
    k.add_argument("--video", required=True, help="video file or folder of frame images")
    k.add_argument("--out", required=True, help="output folder")
    k.add_argument("--boxes", choices=["detector", "detections", "gt"], default="detector",
                   help="person boxes: our detector (default), a detection file, or the "
                   "annotations' ground truth")
    k.add_argument("--detector", default=None, help="detector checkpoint or run:<experiment> "
                   "(default: the experiment's data.detector)")
    k.add_argument("--detections", default=None, help="COCO-results boxes with the video's image ids")
    k.add_argument("--annotations", default=None, help="the video's PoseTrack18 file: its image "
                   "ids, ground-truth boxes (--boxes gt) and a mAP/MOTA score of the result")

    r = sub.add_parser("report", help="compare runs: Markdown table and plots (make report)")
    r.add_argument("runs", nargs="+", help="run folders (runs/<experiment>/<time>)")
    r.add_argument("--out", default="report/report.md", help="Markdown file (PNGs beside it)")

    rs = sub.add_parser("results", help="the results page (make results): train each of its "
                        "experiments' compact recipe that has no finished run, then write "
                        "docs/RESULTS.md (ours beside the paper's numbers, each table's claim "
                        "and whether our runs show it)")
    rs.add_argument("--runs-dir", type=Path, default=Path("runs/results"),
                    help="where the page's runs live (default runs/results)")
    rs.add_argument("--out", type=Path, default=Path("docs/RESULTS.md"), help="the page")
    rs.add_argument("--bench-dir", type=Path, default=Path("runs/bench"),
                    help="vidpose bench's records the performance section reads (default "
                         "runs/bench; benchmarks without one are run first)")
    rs.add_argument("--no-train", action="store_true",
                    help="write the page from the finished runs and benchmark records only, "
                         "training and benchmarking nothing")

    sub.add_parser("list", help="list experiments and the paper rows they reproduce")

    c = sub.add_parser("config", help="print an experiment's resolved config (make config EXP=...), "
                       "or with --diff what differs from another experiment's")
    c.add_argument("experiment")
    c.add_argument("overrides", nargs="*", help="dotted.key=value or group=name (this experiment's)")
    c.add_argument("--diff", metavar="OTHER_EXP", default=None,
                   help="show only the keys whose values differ from OTHER_EXP's (as it ships)")

    d = sub.add_parser("data", help="synthetic data; check a real dataset's layout")
    dsub = d.add_subparsers(dest="data_command", required=True)
    ck = dsub.add_parser("check", help="validate a dataset folder's layout and count what it holds "
                         "(vidpose data check data=posetrack18 data.root=/path/to/posetrack18)")
    ck.add_argument("overrides", nargs="*", help="data=<name> and data.<key>=value, as for train")
    ck.add_argument("--exp", dest="experiment", default="simple_baseline",
                    help="the experiment whose data section the overrides change (default "
                    "simple_baseline; e.g. rnn_association also checks data.crowded_root)")
    ck.add_argument("--split", action="append", default=None,
                    help="check only this split (repeatable; default: every split the config reads)")
    s = dsub.add_parser("synth", help="generate a synthetic data set")
    s.add_argument("--out", default=None, help=f"output folder (default {DEFAULT_SYNTH}, "
                   "or data/synth/<preset>)")
    s.add_argument("--preset", default="default")
    s.add_argument("--seed", type=int, default=0)
    v = dsub.add_parser("preview", help="contact sheet PNG with ground truth drawn on it")
    v.add_argument("--root", default=DEFAULT_SYNTH, help="synthetic output folder")
    v.add_argument("--dataset", default="posetrack18", choices=["posetrack18", "coco", "ochuman"])
    v.add_argument("--out", default=None, help="PNG path (default <root>/preview_<dataset>.png)")
    v.add_argument("-n", type=int, default=12, help="frames on the sheet")

    f = dsub.add_parser("refinement", help="PNG of STM-skeletons' refinement augmentations on "
                        "one synthetic frame (clean vs augmented keypoint and limb maps, Fig. 4)")
    f.add_argument("--root", default=DEFAULT_SYNTH, help="synthetic output folder")
    f.add_argument("--out", default=None, help="PNG path (default <root>/preview_refinement.png)")
    f.add_argument("--jitter", type=float, default=1.0, help="keypoint displacement std, map px")
    f.add_argument("--rand", type=float, default=0.3, help="peak size/shape/orientation spread")
    f.add_argument("--baits", type=float, default=1.0, help="false peaks per map (expected)")
    f.add_argument("--no-dull-clouds", action="store_true", help="keep peak intensities at 1")
    f.add_argument("--seed", type=int, default=0)

    o = sub.add_parser("overfit", help="overfit proofs: each trainable method learns 16 samples "
                       "and is scored on them (make overfit); exit 1 when one misses its goal")
    o.add_argument("methods", nargs="*", help="methods to run (default all; see vidpose.overfit)")
    o.add_argument("--tiny", type=Path, default=None,
                   help="the tiny synthetic set (vidpose data synth --preset tiny); default: "
                        "data/synth/tiny, generated there when missing")
    o.add_argument("--work", type=Path, default=Path("data/overfit"),
                   help="scratch folder for the 16-sample data root and its runs (outside "
                        "runs/, which `make report` reads)")

    b = sub.add_parser("bench", help="run the benchmarks (make bench)")
    b.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    b.add_argument("--only", nargs="*", help="benchmark names to run")
    b.add_argument("--records", type=Path, default=Path("runs/bench"),
                   help="where a full-size run records each benchmark's figures for the "
                        "results page (default runs/bench; --quick records nothing)")
    return p


def _files_parser(kind: str) -> argparse.ArgumentParser:
    """`vidpose eval posetrack|coco`: score prediction files against ground truth."""
    p = argparse.ArgumentParser(prog=f"vidpose eval {kind}")
    if kind == "posetrack":
        p.description = ("PoseTrack mAP and MOTA with poseval's rules and numbers, for folders of "
                         "per-video PoseTrack18 (or 2017 annolist) files")
        p.add_argument("--gt", required=True, help="ground-truth folder of <video>.json (or one file)")
        p.add_argument("--pred", required=True, help="prediction folder with the same file names")
        p.add_argument("--per-video", action="store_true", help="also print each video's figures")
        p.add_argument("--video-order", choices=["sorted", "directory"], default="sorted",
                       help="order in which videos' joints enter AP, which breaks ties between "
                       "equal scores: 'sorted' by file name (default, the same numbers on every "
                       "machine), 'directory' in this file system's listing order (mimics "
                       "poseval run unchanged on this machine)")
    else:
        p.description = "COCO keypoint AP (pycocotools COCOeval) of a COCO results file"
        p.add_argument("--gt", required=True, help="COCO keypoint annotations (or OCHuman) file")
        p.add_argument("--pred", required=True, help="COCO results JSON (list of detections)")
        p.add_argument("--dataset", choices=["auto", "coco", "ochuman"], default="auto",
                       help="ground-truth flavour (auto: from the file's content)")
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    return p


def _cmd_eval_files(kind: str, argv: list[str]) -> None:
    args = _files_parser(kind).parse_args(argv)
    if args.out:
        from vidpose.formats.jsonio import check_output

        check_output(args.out)  # before the evaluation, not after it
    if kind == "posetrack":
        from vidpose.metrics.posetrack import evaluate_posetrack

        # A progress bar only where someone watches (importing rich costs more than a
        # typical evaluation).
        result = evaluate_posetrack(args.gt, args.pred, per_video=args.per_video, out=args.out,
                                    progress=sys.stderr.isatty(), video_order=args.video_order)
        if args.per_video:
            for name in sorted(result.per_video):
                print(f"\n== {name}\n{result.per_video[name].tables()}")
            print("\n== all videos")
        print(result.tables())
    else:
        from vidpose.formats.jsonio import dump_json
        from vidpose.metrics.coco_ap import evaluate_coco, format_coco_table

        result = evaluate_coco(args.gt, args.pred, dataset=args.dataset)
        if args.out:
            dump_json(args.out, result.as_dict())
        print(format_coco_table(result))
    if args.out:
        print(f"wrote {args.out}")


def _cmd_track(args: argparse.Namespace) -> None:
    from vidpose.config import compose
    from vidpose.tracking.command import track_command

    cfg = compose(args.experiment, args.overrides)
    result = track_command(cfg, args.ckpt, args.video, args.out, boxes=args.boxes,
                           detections=args.detections, detector=args.detector,
                           annotations=args.annotations, progress=cfg.trainer.progress_bar)
    print(f"tracked {result.frames} frames in {result.seconds:.1f} s "
          f"({result.frames / max(result.seconds, 1e-9):.2f} frames/s): {result.tracks} tracks")
    print(f"wrote {result.results}\nwrote {result.overlay}")
    for key, value in result.scores.items():
        if key.count("/") == 0:
            print(f"  {key:16s} {value:10.4f}")


def _cmd_report(args: argparse.Namespace) -> None:
    from vidpose.report import build_report

    print(f"wrote {build_report([Path(r) for r in args.runs], Path(args.out))}")


def _cmd_list() -> None:
    from rich.console import Console
    from rich.table import Table
    from omegaconf import OmegaConf

    from vidpose.config import alias_target, chain, experiments_dir, list_experiments

    table = Table(title="vidpose experiments (make train EXP=<name>)")
    for col in ("name", "method", "scale", "reproduces"):
        table.add_column(col, overflow="fold")
    root = experiments_dir()
    experiments = list_experiments(root)
    for name, path in experiments.items():
        # An alias (a paper row that is another experiment's configuration) shows its own
        # row, its target's method and scale, and whose runs it shares.
        target = alias_target(path, root)
        # The experiment section as its chain of bases gives it (no validation: fast).
        merged = OmegaConf.merge(*(part for _, part in chain(experiments[target or name], root)))
        raw = merged.get("experiment", {}) or {}
        reproduces = str(raw.get("reproduces", ""))
        if target is not None:
            own = OmegaConf.merge(*(part for _, part in chain(path, root)))
            reproduces = f"alias of {target}: {own.get('reproduces', '')}"
        table.add_row(name, str(raw.get("method", "?")), str(raw.get("scale", "compact")),
                      reproduces)
    Console(width=max(120, Console().width)).print(table)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as {dotted.key: leaf value}; an empty mapping or list is one leaf."""
    if isinstance(value, dict) and value:
        return {k: v for key, item in value.items()
                for k, v in _flatten(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def config_tree(cfg: dict[str, Any], label: str) -> Any:
    """The resolved config as a rich Tree: one branch per section, ``key: value`` leaves."""
    from rich.markup import escape
    from rich.tree import Tree

    def add(node: Tree, mapping: dict[str, Any]) -> None:
        for key, value in mapping.items():
            if isinstance(value, dict) and value:
                add(node.add(f"[bold]{escape(str(key))}[/bold]"), value)
            else:
                node.add(f"{escape(str(key))}: [cyan]{escape(repr(value))}[/cyan]")

    tree = Tree(f"[bold]{escape(label)}[/bold]")
    add(tree, cfg)
    return tree


def _cmd_config(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from vidpose.config import compose, to_dict

    this = to_dict(compose(args.experiment, args.overrides))
    console = Console(width=max(120, Console().width))
    if args.diff is None:
        label = " ".join([args.experiment, *args.overrides])
        console.print(config_tree(this, f"{label} ({this['experiment']['method']})"))
        return
    other = _flatten(to_dict(compose(args.diff)))
    mine = _flatten(this)
    # Keys of both, in this config's order then the other's own (a different method's model).
    keys = list(mine) + [k for k in other if k not in mine]
    missing = "(absent)"
    differing = [k for k in keys if mine.get(k, missing) != other.get(k, missing)]
    table = Table(title=f"{args.experiment} vs {args.diff}: {len(differing)} keys differ")
    for col in ("key", args.experiment, args.diff):
        table.add_column(col, overflow="fold")
    for key in differing:
        table.add_row(key, *(escape(repr(c[key])) if key in c else missing for c in (mine, other)))
    console.print(table)


def _cmd_data(args: argparse.Namespace) -> None:
    if args.data_command == "synth":
        from vidpose.synth import synthesize

        out = args.out or (DEFAULT_SYNTH if args.preset == "default" else f"data/synth/{args.preset}")
        manifest = synthesize(out, preset=args.preset, seed=args.seed)
        print(f"wrote {out}: {manifest.get('counts', {})}")
    elif args.data_command == "refinement":
        print(f"wrote {_refinement_preview(args)}")
    elif args.data_command == "check":
        from vidpose.config import compose
        from vidpose.data_check import check_data, data_config

        cfg = data_config(compose(args.experiment, args.overrides).data)
        for counts in check_data(cfg, args.split):
            print(counts.line())
        print("ok: the layout reads as the suite expects")
    else:
        from vidpose.viz import contact_sheet

        root = Path(args.root)
        out = args.out or root / f"preview_{args.dataset}.png"
        path = contact_sheet(root / args.dataset, out, n=args.n, dataset=args.dataset)
        print(f"wrote {path}")


def _refinement_preview(args: argparse.Namespace) -> Path:
    """The first labelled val frame of the synthetic PoseTrack18 set, at stride 4."""
    import numpy as np

    from vidpose.data_modules.config import RefinementConfig
    from vidpose.formats.posetrack import read_posetrack
    from vidpose.refinement import preview_refinement

    root = Path(args.root)
    data = read_posetrack(root / "posetrack18" / "annotations" / "val", check_images=False)
    frame = next(f for f in data.frames if f.poses)
    keypoints = np.stack([p.keypoints for p in frame.poses]).copy()
    keypoints[..., :2] /= 4
    cfg = RefinementConfig(jitter=args.jitter, rand=args.rand, baits=args.baits,
                           dull_clouds=not args.no_dull_clouds)
    out = Path(args.out) if args.out else root / "preview_refinement.png"
    return preview_refinement(keypoints, data.schema.limbs, (frame.height // 4, frame.width // 4),
                              1.5, 1.0, cfg, out, seed=args.seed)


def _cmd_bench(args: argparse.Namespace) -> None:
    from vidpose.bench import run_all

    run_all(quick=args.quick, only=args.only, records=args.records)


EVAL_FILE_KINDS = ("posetrack", "coco")


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings about the user's input read as one line, like the errors."""
    return f"vidpose: warning: {message}\n"


def _report(err: VidposeError) -> int:
    """The error as one line on stderr (a message that spans lines is joined), status 2."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    print(f"vidpose: error: {text}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # No WANDB_MODE default here: logger.mode=auto logs offline, and online under a sweep
    # agent (run.wandb_mode); a WANDB_MODE set here would hide the sweep from its runs.
    os.environ.setdefault("WANDB_SILENT", "true")
    if argv[:1] == ["eval"] and argv[1:2] and argv[1] in EVAL_FILE_KINDS:
        warnings.formatwarning = _one_line_warning
        try:
            _cmd_eval_files(argv[1], argv[2:])
        except VidposeError as err:
            return _report(err)
        return 0
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # Overrides may also follow the options (vidpose infer EXP --ckpt X key=value).
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides += extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "train":
            from lightning.pytorch.utilities.exceptions import SIGTERMException

            from vidpose.config import compose
            from vidpose.run import train, train_prerequisites

            cfg = compose(args.experiment, args.overrides)
            if not args.resume:
                for needed in train_prerequisites(cfg, args.overrides):
                    _print_metrics(needed.run_dir, needed.metrics)
            try:
                result = train(cfg, resume=args.resume, overrides=args.overrides)
            except SIGTERMException:
                # Lightning stopped between two batches and LastCheckpoint saved last.ckpt.
                print("vidpose: stopped by SIGTERM; checkpoints/last.ckpt holds the last step: "
                      "continue with --resume last (make train ... RESUME=last)", file=sys.stderr)
                return 143  # 128 + SIGTERM, what a shell reports for a terminated job
            _print_metrics(result.run_dir, result.metrics)
            _print_summary(cfg, result.metrics, result.run_dir)
        elif args.command == "eval":
            from vidpose.config import compose
            from vidpose.run import evaluate

            cfg = compose(args.experiment, args.overrides)
            result = evaluate(cfg, args.ckpt)
            _print_metrics(result.run_dir, result.metrics)
            _print_summary(cfg, result.metrics, result.run_dir)
        elif args.command == "infer":
            from vidpose.config import compose
            from vidpose.run import infer

            cfg = compose(args.experiment, args.overrides)
            result = infer(cfg, args.ckpt, args.split, args.out)
            _print_metrics(result.run_dir, result.metrics)
        elif args.command == "track":
            _cmd_track(args)
        elif args.command == "report":
            _cmd_report(args)
        elif args.command == "results":
            from vidpose.results import main as results_main

            return results_main(args.runs_dir, args.out, train=not args.no_train,
                                bench_dir=args.bench_dir)
        elif args.command == "list":
            _cmd_list()
        elif args.command == "config":
            _cmd_config(args)
        elif args.command == "data":
            _cmd_data(args)
        elif args.command == "bench":
            _cmd_bench(args)
        elif args.command == "overfit":
            from vidpose.overfit import main as overfit_main

            return overfit_main(args.methods, args.tiny or Path("data/synth/tiny"), args.work)
    except VidposeError as err:
        return _report(err)
    return 0


def _print_metrics(run_dir: Path, metrics: dict[str, float]) -> None:
    if os.environ.get("LOCAL_RANK", "0") != "0":
        return
    # Per-joint figures (val/AP/<joint>) stay in the CSV log; the crowd subset's are shown.
    shown = {k: v for k, v in sorted(metrics.items())
             if k.count("/") <= 1 or k.split("/")[1] == "crowd"}
    print(f"\nRun folder: {run_dir}")
    for key, value in shown.items():
        print(f"  {key:24s} {value:10.4f}")


def wandb_location(cfg: Any, run_dir: Path) -> str:
    """Where a run's W&B log is: its online page, its offline folder (and how to upload it),
    or that W&B was off."""
    from vidpose.run import wandb_mode

    mode = wandb_mode(cfg)
    id_file = run_dir / "wandb_id.txt"
    if mode == "disabled" or not id_file.is_file():
        return "none (W&B was disabled for this run: logger.wandb, logger.mode or WANDB_MODE)"
    run_id = id_file.read_text().strip()
    folders = sorted((run_dir / "wandb").glob(f"*-{run_id}"))
    folder = folders[-1] if folders else run_dir / "wandb"
    url_file = run_dir / "wandb_url.txt"
    if mode == "online" and url_file.is_file():
        return f"{url_file.read_text().strip()} (local copy {folder})"
    return f"offline run {folder} (upload it with: wandb sync {folder})"


def reading_notes(cfg: Any, run_dir: Path, legend: str = "") -> list[str]:
    """How to read a run's printed figures: what they are (the method's ``legend``), what the
    paper reports (``experiment.paper_metrics``), where the run, its CSV log and W&B log are."""
    from vidpose.config import logged_metric_name

    lines = ["How to read it:"]
    if legend:
        lines.append(f"  {legend}")
    info = cfg.experiment
    if info.paper_metrics:
        numbers = ", ".join(f"{logged_metric_name(str(k))} {float(v):g}"
                            for k, v in info.paper_metrics.items())
        lines.append(f"  The paper ({info.reproduces}): {numbers}. Those are at paper scale on "
                     "the paper's data; compare a compact run on synthetic data by its trend "
                     "(docs/RESULTS.md), not its value.")
    lines.append(f"  Run folder: {run_dir}; every validation's values: "
                 f"{run_dir / 'csv' / 'metrics.csv'} (vidpose report {run_dir}).")
    lines.append(f"  W&B log: {wandb_location(cfg, run_dir)}.")
    return lines


def _print_summary(cfg: Any, metrics: dict[str, float], run_dir: Path) -> None:
    """The method's own table of the run's figures (e.g. RNN vs AE on normal and crowded
    images), for methods that define ``summary_table(metrics)``, then how to read the run's
    figures and where the run is."""
    from vidpose.methods import get_method

    if os.environ.get("LOCAL_RANK", "0") != "0":
        return
    model_cls = get_method(cfg.experiment.method).model_cls
    legend = ""
    if hasattr(model_cls, "summary_table"):
        table = model_cls.summary_table(metrics)
        if table:
            print(f"\n{table}")
            legend = model_cls.summary_legend() if hasattr(model_cls, "summary_legend") else ""
    print("\n" + "\n".join(reading_notes(cfg, run_dir, legend)))


if __name__ == "__main__":
    sys.exit(main())
