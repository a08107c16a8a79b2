"""``vidpose data check|synth|preview|map-augmentation``: check a real dataset's layout, generate
the synthetic set, and draw previews of it."""
from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_SYNTH = "data/synth/default"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="synthetic data; check a real dataset's layout")
    actions = parser.add_subparsers(dest="data_command", required=True)

    check = actions.add_parser("check", help="validate a dataset folder's layout and count what "
                               "it holds (vidpose data check data=posetrack18 "
                               "data.root=/path/to/posetrack18)")
    check.add_argument("overrides", nargs="*", help="data=<name> and data.<key>=value, as for train")
    check.add_argument("--exp", dest="experiment", default="simple_baseline",
                       help="the experiment whose data section the overrides change (default "
                       "simple_baseline; e.g. rnn_association also checks data.crowded_root)")
    check.add_argument("--split", action="append", default=None,
                       help="check only this split (repeatable; default: every split the config reads)")
    check.set_defaults(action=_check)

    synth = actions.add_parser("synth", help="generate a synthetic data set")
    synth.add_argument("--out", default=None, help=f"output folder (default {DEFAULT_SYNTH}, "
                       "or data/synth/<preset>)")
    synth.add_argument("--preset", default="default")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(action=_synth)

    preview = actions.add_parser("preview", help="contact sheet PNG with ground truth drawn on it")
    preview.add_argument("--root", default=DEFAULT_SYNTH, help="synthetic output folder")
    preview.add_argument("--dataset", default="posetrack18", choices=["posetrack18", "coco", "ochuman"])
    preview.add_argument("--out", default=None, help="PNG path (default <root>/preview_<dataset>.png)")
    preview.add_argument("-n", type=int, default=12, help="frames on the sheet")
    preview.set_defaults(action=_preview)

    maps = actions.add_parser(
        "map-augmentation", help="PNG of STM-skeletons' memory map augmentations on one synthetic "
        "frame (clean vs augmented keypoint and limb maps, Fig. 4)")
    maps.add_argument("--root", default=DEFAULT_SYNTH, help="synthetic output folder")
    maps.add_argument("--out", default=None,
                      help="PNG path (default <root>/preview_map_augmentation.png)")
    maps.add_argument("--jitter", type=float, default=1.0,
                      help="keypoint displacement std, map px")
    maps.add_argument("--rand", type=float, default=0.3,
                      help="peak size/shape/orientation spread")
    maps.add_argument("--baits", type=float, default=1.0,
                      help="false peaks per map (expected)")
    maps.add_argument("--no-dull-clouds", action="store_true",
                      help="keep peak intensities at 1")
    maps.add_argument("--seed", type=int, default=0)
    maps.set_defaults(action=_map_augmentation)


def handle(args: argparse.Namespace) -> None:
    args.action(args)


def _check(args: argparse.Namespace) -> None:
    from vidpose.config import compose
    from vidpose.data_check import check_data, data_config

    cfg = data_config(compose(args.experiment, args.overrides).data)
    for counts in check_data(cfg, args.split):
        print(counts.line())
    print("ok: the layout reads as the suite expects")


def _synth(args: argparse.Namespace) -> None:
    from vidpose.synth import synthesize

    out = args.out or (DEFAULT_SYNTH if args.preset == "default" else f"data/synth/{args.preset}")
    manifest = synthesize(out, preset=args.preset, seed=args.seed)
    print(f"wrote {out}: {manifest.get('counts', {})}")


def _preview(args: argparse.Namespace) -> None:
    from vidpose.viz import contact_sheet

    root = Path(args.root)
    out = args.out or root / f"preview_{args.dataset}.png"
    print(f"wrote {contact_sheet(root / args.dataset, out, n=args.n, dataset=args.dataset)}")


def _map_augmentation(args: argparse.Namespace) -> None:
    """The first labelled val frame of the synthetic PoseTrack18 set, at stride 4."""
    import numpy as np

    from vidpose.data_modules.config import MapAugmentationConfig
    from vidpose.data_modules.map_augmentation import preview_map_augmentation
    from vidpose.formats.posetrack import read_posetrack

    root = Path(args.root)
    data = read_posetrack(root / "posetrack18" / "annotations" / "val", check_images=False)
    frame = next(f for f in data.frames if f.poses)
    keypoints = np.stack([p.keypoints for p in frame.poses]).copy()
    keypoints[..., :2] /= 4
    cfg = MapAugmentationConfig(jitter=args.jitter, rand=args.rand, baits=args.baits,
                                dull_clouds=not args.no_dull_clouds)
    out = Path(args.out) if args.out else root / "preview_map_augmentation.png"
    path = preview_map_augmentation(keypoints, data.schema.limbs, (frame.height // 4, frame.width // 4),
                                    1.5, 1.0, cfg, out, seed=args.seed)
    print(f"wrote {path}")
