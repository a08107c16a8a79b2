"""Overfit proofs: every trainable method, trained on at most 16 samples and scored on the
same samples through its whole path (targets -> network -> loss -> decoding ->
grouping/tracking -> the paper's metric), must reach 90% of the metric's maximum.

A method that cannot learn 16 samples by heart has a bug in its targets, loss, decoding or
metric, whatever its held-out numbers say. ``vidpose overfit [EXP ...]`` (``make overfit``)
runs the proofs, prints a table and exits 1 when any method misses its goal;
tests/test_overfit.py runs the quick ones through the same code.

The samples: one video of the tiny synthetic set's PoseTrack18 ``val`` split (4 labelled
frames, 16 persons) for the PoseTrack methods, the tiny COCO ``val`` split (6 images, 14
persons) for the image methods. They are copied into their own data root
(:func:`overfit_root`) whose train and val splits are the same files, so that training and
scoring read exactly the same samples and the metric sees no ground truth that training
did not (no ``max_*_samples`` cut that the metric would not know about).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

# The split the overfit root holds; training and validation both read it.
SPLIT = "val"
# A safety net per method (the budget: all proofs in 25 minutes on 2 cores); a run
# cut by it is scored where it stopped, and the table shows its steps.
MAX_TIME = "00:00:08:00"

# No augmentation: the proof asks whether the method can fit the very samples it is scored
# on; flips, rotations and colour jitter would make every training sample a new one.
NO_AUGMENT = ("data.augment.flip=0", "data.augment.rotation=0", "data.augment.scale=0",
              "data.augment.color=false", "data.augment.blur=0", "data.augment.noise=0",
              "data.augment.translate=0")


@dataclass(frozen=True)
class Recipe:
    """One method's overfit proof: its experiment, the overrides that make it memorise, and
    the logged metric that must reach ``goal``."""

    name: str
    experiment: str
    dataset: str  # posetrack18 | coco: which layout's samples it trains on
    metric: str  # the logged validation metric (val/...) the paper reports
    goal: float
    overrides: tuple[str, ...]
    why: str  # what the overrides change and why
    # Further checks on the finished run: name -> (run folder -> value in [0, 1]), goal.
    checks: tuple[tuple[str, Callable[[Path], float], float], ...] = field(default=())


def _count_exact(decoder: str) -> Callable[[Path], float]:
    """The share of images on which the decoder's written predictions hold as many persons
    as the ground truth annotates (the RNN decoder must stop at the right count)."""
    def share(run_dir: Path) -> float:
        from vidpose.results import persons_counted_exactly

        predictions = json.loads((run_dir / "predictions" / "val" / f"val_{decoder}.json")
                                 .read_text())
        truth = json.loads((run_dir / "overfit_truth.json").read_text())
        return persons_counted_exactly(predictions, truth) / 100.0
    return share


# Each method's recipe in one place. Every recipe validates only at its last epoch
# (check_val_every_n_epoch = max_epochs): the proof is the final score, not the best.
RECIPES: dict[str, Recipe] = {r.name: r for r in [
    # Top-down on ground-truth boxes: 16 crops of one video, PoseTrack mAP (percent).
    Recipe("simple_baseline", "simple_baseline", "posetrack18", "val/mAP", 90.0,
           ("data.batch_size=16", "trainer.max_epochs=150", "model.lr=2e-3",
            "model.lr_steps=[120]"),
           "the 16 crops in one batch: 150 full-batch Adam steps bring the heatmap loss near "
           "zero; the lr drops late only to settle the peaks"),
    # The video methods read clips of 4 labelled frames, 2 apart (the val split labels every
    # 2nd frame): one clip per track of the overfit video (STM: one clip of its 4 frames).
    # Pose temporal memory, both estimators: clips of one track's crops; joint_threshold 0
    # keeps every joint, which is what mAP alone wants (the compact cut trades AP for MOTA).
    Recipe("cpn", "memory_t3_cpn_baseline", "posetrack18", "val/mAP", 90.0,
           ("data.batch_size=4", "data.clip_stride=2", "data.max_train_samples=null",
            "trainer.max_epochs=150",
            "model.lr=5e-4", "model.lr_steps=[120]", "model.joint_threshold=0"),
           "as simple_baseline, with CPN's GlobalNet + RefineNet heads at a quarter of its lr: "
           "at 2e-3 the first Adam step threw the loss from 0.022 to 1.5 and 148 steps later "
           "it sat at half the all-zero answer's (mAP 4.6); at 5e-4, mAP 97.5"),
    Recipe("pose_memory", "memory_t3_simple_baseline_memory", "posetrack18", "val/mAP", 90.0,
           ("data.batch_size=4", "data.clip_stride=2", "data.max_train_samples=null",
            "trainer.max_epochs=150",
            "model.lr=2e-3", "model.lr_steps=[120]", "model.joint_threshold=0"),
           "SimpleBaseline with the memory read, trained from scratch on the same clips"),
    # The person detector: 4 frames, box AP (percent).
    Recipe("centernet", "centernet", "posetrack18", "val/AP", 90.0,
           ("data.batch_size=4", "data.input_size=[256,320]", "trainer.max_epochs=300",
            "model.lr=1.5e-3", "model.lr_steps=[240]"),
           "4 frames upscaled x2 in one batch: at their own size (128 x 160) box AP at IoU "
           ".5:.95 needs the stride-4 box sizes to a pixel, and 600 steps reached 75.2; at x2, "
           "300 steps reach 92.8 (GPU, bf16), 90.6 on 2 CPU cores in 189 s"),
    # STM-skeletons without pre-training: keypoint F1 at 10 px (percent) on the clips.
    Recipe("stm", "stm_t3_c1_finetune", "posetrack18", "val/f1", 90.0,
           ("init_from=null", "data.clip_stride=2", "data.val_clip_stride=2", "data.batch_size=4",
            "data.max_val_samples=null",
            "data.max_train_samples=null", "trainer.max_epochs=100", "model.lr=1e-3"),
           "no pre-training stage (init_from=null): the clips themselves must be learnt"),
    # The correspondence paper's pose estimator (two-stage), PoseTrack mAP (percent).
    Recipe("two_stage_pose", "correspondence_pose", "posetrack18", "val/mAP", 90.0,
           ("data.box_source=gt", "data.batch_size=16", "trainer.max_epochs=200",
            "model.lr=2e-3", "model.lr_steps=[160]", "init_from=null", "model.offset_weight=0.1"),
           "as simple_baseline, on ground-truth boxes (the experiment's simulated detections "
           "miss persons, which no estimator can make up for), offsets weighted 0.1: at weight "
           "1 their L1 outweighs the per-pixel BCE and mAP was 29.9 after 150 steps, 88.1 "
           "after 500; at 0.1, 93.2 after 300 (measured on a GPU, bf16)"),
    # Correspondences: 6 images warped into pairs; the validation warps are fixed per image.
    # The pair warps (data.pair) stay as the experiment sets them: they are the task (without
    # them image 2 is image 1), and training samples new ones around the fixed val warps.
    Recipe("correspondence_siamese", "correspondence_siamese", "coco", "val/accuracy", 0.90,
           ("data.batch_size=6", "data.input_size=[128,160]", "trainer.max_epochs=150",
            "model.lr=1e-3", "model.lr_steps=[120]"),
           "the Siamese module alone on the 6 images' pairs"),
    Recipe("correspondence_refinement", "correspondence_refinement", "coco", "val/accuracy",
           0.90,
           ("data.batch_size=6", "data.input_size=[128,160]", "trainer.max_epochs=100",
            "model.lr=1e-3", "model.lr_steps=[80]"),
           "the refinement module on the overfit Siamese run (init_from run:correspondence_"
           "siamese resolves to the run above)"),
    # Bottom-up: 6 images, 14 persons, COCO keypoint AP (percent).
    Recipe("assoc_embedding", "assoc_embedding", "coco", "val/AP", 90.0,
           ("data.batch_size=6", "data.input_size=[256,384]", "trainer.max_epochs=450",
            "model.lr=2e-3", "model.lr_steps=[]", "model.subpixel=taylor",
            "model.pull_weight=1e-2", "model.push_weight=1e-2"),
           "the hourglass AE on the 6 images in one batch, upscaled x2, joints placed by DARK's "
           "Taylor step: at the images' own size (128 x 192 letterboxed) stride-4 maps cap "
           "even the ground-truth maps at 75 AP (81 with the Taylor step) on these small "
           "persons (COCO's OKS allows ~1 px), at x2 they give 94. Tag weights 1e-2, not "
           "pose-ae-train's 1e-3: at 1e-3 the tags of an image stayed one cluster after 150 "
           "steps (push loss 1.39 of its 1.64 start, AP 0); at 1e-2 the network's tags group "
           "the ground-truth heatmaps at 93.3 AP, the cap, after 450 steps (1e-1 slowed the "
           "heatmaps: 0.4 AP after 300). Held back by the heatmaps: from PyTorch's default "
           "output layer they sat at the all-zero answer's loss for about 100 steps, and 450 "
           "steps reached 38.3 AP (45.4 with ground-truth tags in place of the network's); "
           "with the output layers started near zero (nn/hourglass.py) 450 steps reach 66.3 "
           "in 274 s (69.3 at 375, 61.4 at 300). Not reached yet. lr 5e-3 diverged (0 AP "
           "after 150), 1e-3 gave 19.3 after 300 (2e-3: 15.6), both from the default start"),
    Recipe("rnn_decoder", "rnn_association", "coco", "val/AP", 90.0,
           ("data.batch_size=6", "data.input_size=[256,384]", "trainer.max_epochs=150",
            "model.lr=3e-3", "model.lr_steps=[120]", "model.stop_weight=30"),
           "the decoder on the overfit AE's features (model.features run:assoc_embedding "
           "resolves to the run above); it must also stop at the right count. Stop term x30 "
           "and lr 3e-3 as at compact scale; on oracle features (ground-truth maps and tags "
           "as the AE's output, 128 x 192) 300 steps reach 46.5 AP with every count exact, "
           "the decoding path itself caps at 85.3 there and 97.9 at 256 x 384. On the AE "
           "of 38.3 AP (before the hourglass's near-zero output start), 150 steps gave 2.7 AP "
           "with every count exact (0.6 on an AE "
           "of 0 AP): it reads the AE's maps, whose heatmaps are what falls short",
           checks=(("persons counted exactly", _count_exact("rnn"), 0.90),)),
]}


def overfit_root(tiny: Path, out: Path) -> Path:
    """A data root holding at most 16 samples of the tiny synthetic set at ``tiny``:
    ``out/posetrack18`` (the first video of its val split) and ``out/coco`` (its val split).
    Images are linked, not copied. Returns ``out``."""
    source, target = tiny / "posetrack18", out / "posetrack18"
    videos = sorted((source / "annotations" / SPLIT).glob("*.json"))
    if not videos:
        raise FileNotFoundError(f"{source}: no {SPLIT} videos; run `vidpose data synth --preset tiny`")
    (target / "annotations" / SPLIT).mkdir(parents=True, exist_ok=True)
    video = json.loads(videos[0].read_text())
    (target / "annotations" / SPLIT / videos[0].name).write_text(json.dumps(video))
    _link(source / "images", target / "images")
    _detections(source / "detections" / f"{SPLIT}.json", target / "detections" / f"{SPLIT}.json",
                {image["id"] for image in video["images"]})
    source, target = tiny / "coco", out / "coco"
    (target / "annotations").mkdir(parents=True, exist_ok=True)
    name = f"person_keypoints_{SPLIT}.json"
    (target / "annotations" / name).write_text((source / "annotations" / name).read_text())
    _link(source / SPLIT, target / SPLIT)
    _detections(source / "detections" / f"{SPLIT}.json", target / "detections" / f"{SPLIT}.json",
                None)
    return out


def _link(source: Path, target: Path) -> None:
    if not target.exists():
        target.symlink_to(source.resolve(), target_is_directory=True)


def _detections(source: Path, target: Path, image_ids: Optional[set[int]]) -> None:
    if not source.is_file():
        return
    records = json.loads(source.read_text())
    if image_ids is not None:
        records = [r for r in records if r["image_id"] in image_ids]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(records))


@dataclass
class Outcome:
    name: str
    metric: str
    goal: float
    reached: float
    steps: int
    seconds: float
    checks: list[tuple[str, float, float]]  # name, value, goal

    @property
    def passed(self) -> bool:
        return self.reached >= self.goal and all(v >= g for _, v, g in self.checks)


def recipe_overrides(recipe: Recipe, root: Path, runs_dir: Path,
                     precision: str | None = None) -> list[str]:
    """The full override list of ``recipe`` on the overfit data at ``root``; ``precision``
    replaces ``trainer.precision=auto`` (issue 19: bf16 must reach fp32's metric here)."""
    epochs = next((o.split("=", 1)[1] for o in recipe.overrides
                   if o.startswith("trainer.max_epochs=")), "1")
    return [
        "data=synth_tiny", f"data.root={root / recipe.dataset}", f"data.dataset={recipe.dataset}",
        "data.synth_preset=null", f"data.train_split={SPLIT}", f"data.val_split={SPLIT}",
        "data.num_workers=0", "data.min_keypoints=0", "data.crowded_root=null",
        *NO_AUGMENT,
        f"runs_dir={runs_dir}", "logger.wandb=false", "trainer.progress_bar=false",
        "trainer.accelerator=cpu", "trainer.devices=1", f"trainer.max_time={MAX_TIME}",
        f"trainer.check_val_every_n_epoch={epochs}", "trainer.log_every_n_steps=1",
        *recipe.overrides,
        *([f"trainer.precision={precision}"] if precision else []),
    ]


def run_recipe(recipe: Recipe, root: Path, runs_dir: Path,
               extra: list[str] | None = None, precision: str | None = None) -> Outcome:
    """Train ``recipe`` on the overfit data at ``root`` and score it on the same samples."""
    from vidpose.config import compose
    from vidpose.run import evaluate, train

    cfg = compose(recipe.experiment,
                  recipe_overrides(recipe, root, runs_dir, precision) + list(extra or []))
    start = time.perf_counter()
    result = train(cfg)
    steps = _steps(result.run_dir)
    if recipe.metric not in result.metrics:
        # trainer.max_time stopped the run before its last epoch's validation: score where
        # it stopped (the table shows the steps it made).
        result = evaluate(cfg, str(result.run_dir / "checkpoints" / "last.ckpt"))
    seconds = time.perf_counter() - start
    truth = root / recipe.dataset / "annotations" / f"person_keypoints_{SPLIT}.json"
    if truth.is_file():
        (result.run_dir / "overfit_truth.json").write_text(truth.read_text())
    checks = [(name, float(check(result.run_dir)), goal) for name, check, goal in recipe.checks]
    return Outcome(recipe.name, recipe.metric, recipe.goal,
                   float(result.metrics.get(recipe.metric, float("nan"))),
                   steps, seconds, checks)


def _steps(run_dir: Path) -> int:
    """The run's optimizer steps, read from its last checkpoint."""
    from vidpose.callbacks.checkpoint import read_checkpoint

    last = run_dir / "checkpoints" / "last.ckpt"
    return int(read_checkpoint(last, field="checkpoint")["global_step"]) if last.is_file() else -1


def run_all(names: list[str], tiny: Path, work: Path, echo: Callable[[str], None] = print,
            precision: str | None = None) -> list[Outcome]:
    """Run the named recipes (all when empty) on an overfit root made from ``tiny``; with
    ``precision``, in that precision, their runs (prerequisites too) under
    ``<work>/runs-<precision>``."""
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        from vidpose.errors import ConfigError
        raise ConfigError(f"overfit: unknown method {unknown[0]!r}; known: {', '.join(RECIPES)}")
    root = overfit_root(tiny, work / "data")
    runs_dir = work / (f"runs-{precision}" if precision else "runs")
    outcomes: list[Outcome] = []
    for name in with_prerequisites(names or list(RECIPES), root, runs_dir):
        echo(f"overfit {name} ...")
        outcomes.append(run_recipe(RECIPES[name], root, runs_dir, precision=precision))
    return outcomes


def with_prerequisites(names: list[str], root: Path, runs_dir: Path) -> list[str]:
    """``names`` with, before each, the recipes whose overfit run it reads (``run:`` in its
    config: the refinement reads the Siamese run, the RNN decoder the AE) and that have no
    run yet, so that ``vidpose overfit correspondence_refinement`` works on its own."""
    from vidpose.config import compose
    from vidpose.run.prerequisites import missing_prerequisites

    by_experiment = {recipe.experiment: name for name, recipe in RECIPES.items()}
    ordered: list[str] = []
    for name in names:
        recipe = RECIPES[name]
        cfg = compose(recipe.experiment, recipe_overrides(recipe, root, runs_dir))
        needed = [by_experiment[e] for e in missing_prerequisites(cfg) if e in by_experiment]
        ordered += [n for n in needed + [name] if n not in ordered]
    return ordered


def table(outcomes: list[Outcome]) -> str:
    rows = [("method", "metric", "reached", "goal", "steps", "time", "result")]
    for o in outcomes:
        rows.append((o.name, o.metric, f"{o.reached:.3g}", f">= {o.goal:g}", str(o.steps),
                     f"{o.seconds:.0f} s", "ok" if o.passed else "MISSED"))
        rows += [("", name, f"{value:.3g}", f">= {goal:g}", "", "", "")
                 for name, value, goal in o.checks]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def main(names: list[str], tiny: Path, work: Path, precision: str | None = None) -> int:
    """`vidpose overfit`: the table, and 0 only when every method reached its goal."""
    if not (tiny / "posetrack18").is_dir():  # the tiny preset, made as `vidpose data synth` would
        from vidpose.synth import synthesize
        synthesize(tiny, preset="tiny", seed=0, progress=False)
    outcomes = run_all(names, tiny, work, precision=precision)
    print(f"precision: {precision or 'auto (each method as trainer.precision=auto picks)'}")
    print(table(outcomes))
    return 0 if all(o.passed for o in outcomes) else 1
