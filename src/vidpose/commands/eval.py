"""``vidpose eval EXP --ckpt CKPT`` (``make eval``): validate a checkpoint of an experiment;
``vidpose eval posetrack|coco --gt --pred``: score prediction files against ground truth."""
from __future__ import annotations

import argparse
import sys
import warnings

from vidpose.commands.summary import print_metrics, print_summary

FILE_KINDS = ("posetrack", "coco")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="validate a checkpoint of an experiment (make eval ...), or evaluate "
        "prediction files: 'eval posetrack ...', 'eval coco ...'")
    parser.add_argument("experiment")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--ckpt", default=None, help="checkpoint file (correspondence_tracking "
                        "experiments name their trained models in the config instead)")
    parser.set_defaults(file_kind=None)


def _files_parser(kind: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"vidpose eval {kind}")
    if kind == "posetrack":
        parser.description = ("PoseTrack mAP and MOTA with poseval's rules and numbers, for "
                              "folders of per-video PoseTrack18 (or 2017 annolist) files")
        parser.add_argument("--gt", required=True,
                            help="ground-truth folder of <video>.json (or one file)")
        parser.add_argument("--pred", required=True, help="prediction folder with the same file names")
        parser.add_argument("--per-video", action="store_true", help="also print each video's figures")
        parser.add_argument("--video-order", choices=["sorted", "directory"], default="sorted",
                            help="order in which videos' joints enter AP, which breaks ties "
                            "between equal scores: 'sorted' by file name (default, the same "
                            "numbers on every machine), 'directory' in this file system's "
                            "listing order (mimics poseval run unchanged on this machine)")
    else:
        parser.description = "COCO keypoint AP (pycocotools COCOeval) of a COCO results file"
        parser.add_argument("--gt", required=True, help="COCO keypoint annotations (or OCHuman) file")
        parser.add_argument("--pred", required=True, help="COCO results JSON (list of detections)")
        parser.add_argument("--dataset", choices=["auto", "coco", "ochuman"], default="auto",
                            help="ground-truth flavour (auto: from the file's content)")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    return parser


def parse_file_evaluation(argv: list[str]) -> argparse.Namespace | None:
    """``eval posetrack|coco ...`` parsed with its own options; None for any other command
    line. (It is parsed before the ``vidpose`` parser, whose ``eval`` takes an experiment.)"""
    if argv[:1] != ["eval"] or argv[1:2] == [] or argv[1] not in FILE_KINDS:
        return None
    args = _files_parser(argv[1]).parse_args(argv[2:])
    args.command, args.file_kind = "eval", argv[1]
    return args


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings about the user's input read as one line, like the errors."""
    return f"vidpose: warning: {message}\n"


def _evaluate_files(args: argparse.Namespace) -> None:
    warnings.formatwarning = _one_line_warning
    if args.out:
        from vidpose.formats.jsonio import check_output

        check_output(args.out)  # before the evaluation, not after it
    if args.file_kind == "posetrack":
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


def handle(args: argparse.Namespace) -> None:
    if args.file_kind is not None:
        _evaluate_files(args)
        return
    from vidpose.config import compose
    from vidpose.run import evaluate

    cfg = compose(args.experiment, args.overrides)
    result = evaluate(cfg, args.ckpt)
    print_metrics(result.run_dir, result.metrics)
    print_summary(cfg, result.metrics, result.run_dir)
