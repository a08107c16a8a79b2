"""`vidpose results` (`make results`): the results page, docs/RESULTS.md, from compact runs.

The page is written from run folders (``<runs>/<experiment>/<time>/``, read by
``vidpose.report``), never by hand. What it shows is data, declared here:

- ``TABLES``: every paper table the compact scale runs, grouped as the experiments'
  ``experiment.group`` (W&B group), with the claim the paper makes from it, the rows shown
  (experiments), the metrics shown, and the comparisons that make the claim: "this
  experiment's metric is better than that one's", with "better" declared (``max``: higher,
  ``min``: lower, e.g. ID switches). The verdict (shown / not shown / not measurable at
  compact scale) is computed from our numbers by those comparisons.
- ``GOALS``: issue 17's goal table (compact recipes on the synthetic val splits).
- ``LEFT_OUT``: the paper tables that are not on the page, and why.

``EXPERIMENTS`` is what the page trains, in order (prerequisites first; ``vidpose train``'s
``run.train_prerequisites`` would train them anyway). Metric values are as logged: AP, mAP,
MOTA and keypoint/pixel P/R/F1 in percent, correspondence accuracy a fraction, ID switches a
count; the paper's numbers come from each experiment's ``experiment.paper_metrics``.
"""
from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

from omegaconf import OmegaConf

from vidpose.bench import DEFAULT_RECORDS as DEFAULT_BENCH
from vidpose.report import MISSING, Run, _fmt, _ours, _table, load_run

# A pseudo-metric: the run's own training wall time in seconds (recorded when it finished).
WALL = "wall_s"
# A pseudo-metric: the share (percent) of val images on which the RNN decoder's written
# predictions hold as many persons as the ground truth (it must stop at the right count).
COUNT_EXACT = "count_exact"


@dataclass(frozen=True)
class Figure:
    """One number of the page: an experiment's final logged metric (or a pseudo-metric)."""

    experiment: str
    metric: str


@dataclass(frozen=True)
class Comparison:
    """``better``'s value beats ``worse``'s: higher when ``mode`` is max, lower when min."""

    better: Figure
    worse: Figure
    mode: str = "max"


@dataclass(frozen=True)
class PaperTable:
    group: str  # as experiment.group / config.wandb_group: "<paper>/table<N>"
    title: str
    claim: str  # the paper's claim from this table, in one sentence
    rows: tuple[str, ...]  # experiments shown, in order
    metrics: tuple[str, ...]  # logged metrics shown as columns
    comparisons: tuple[Comparison, ...]  # all must hold for "shown"


@dataclass(frozen=True)
class Goal:
    """A goal row: the sum of ``figures`` (one figure, or several run times) compared with
    ``target`` (a number, or another figure) by ``op`` (">=" or "<=")."""

    experiment: str  # the row's label in the goal table
    text: str  # the goal as the issue states it
    figures: tuple[Figure, ...]
    op: str
    target: float | Figure


def _goal(experiment: str, text: str, metric: str, op: str, target: float) -> Goal:
    """A goal on one of the row's own experiment's metrics."""
    return Goal(experiment, text, (Figure(experiment, metric),), op, target)


def _vs(better: str, worse: str, *metrics: str, mode: str = "max") -> tuple[Comparison, ...]:
    """Experiment ``better``'s value of each of ``metrics`` beats ``worse``'s."""
    return tuple(Comparison(Figure(better, m), Figure(worse, m), mode) for m in metrics)


TABLES: tuple[PaperTable, ...] = (
    PaperTable(
        "rnn/table1", "RNN decoder paper, Tables 1-2: the decoder vs Associative Embedding",
        "On the same hourglass features, the RNN decoder's learned association beats AE's "
        "grouping at single scale, on COCO (58.7 vs 56.6) and by more on the crowded OCHuman "
        "images (37.8 vs 32.1).",
        ("rnn_association",), ("val/AP", "val/AP_ae", "val/crowded_AP", "val/crowded_AP_ae"),
        tuple(Comparison(Figure("rnn_association", m), Figure("rnn_association", f"{m}_ae"))
              for m in ("val/AP", "val/crowded_AP")),
    ),
    PaperTable(
        "rnn/table3", "RNN decoder paper, Table 3: the order of LSTM2's input",
        "The learned order of LSTM1's persons is the best input order for LSTM2; a canonical "
        "order (sorted by joint location) is very detrimental (60.1 vs 38.8 AP on COCO).",
        ("rnn_t1_ours", "rnn_t3_canonical"), ("val/AP", "val/crowded_AP"),
        _vs("rnn_t1_ours", "rnn_t3_canonical", "val/AP"),
    ),
    PaperTable(
        "rnn/table4", "RNN decoder paper, Table 4: what the heatmap loss counts",
        "Configuration (a, a') performs best: leaving unconfident predictions out of the heatmap "
        "loss and matching only the first z predictions (58.7 vs 54.7 AP for (b, b')).",
        ("rnn_association", "rnn_t4_bb"), ("val/AP", "val/crowded_AP"),
        _vs("rnn_association", "rnn_t4_bb", "val/AP"),
    ),
    PaperTable(
        "rnn/table5", "RNN decoder paper, Table 5: the feedback loop",
        "The feedback loop helps: 2 loop iterations beat none (58.7 vs 54.6 AP on COCO).",
        ("rnn_association", "rnn_t5_loop0"), ("val/AP", "val/crowded_AP"),
        _vs("rnn_association", "rnn_t5_loop0", "val/AP"),
    ),
    PaperTable(
        "memory/table2", "Pose temporal memory, Table 2: CoDA vs vanilla attention (crowd subset)",
        "On the crowd subset, CoDA is 2.1 AP and 1.3 MOTA higher than vanilla attention: it "
        "learns the dissimilarity that separates occluding persons.",
        ("memory_t2_coda", "memory_t2_vanilla"), ("val/crowd/mAP", "val/crowd/MOTA"),
        _vs("memory_t2_coda", "memory_t2_vanilla", "val/crowd/mAP", "val/crowd/MOTA"),
    ),
    PaperTable(
        "memory/table3", "Pose temporal memory, Table 3: memory vs the same baseline",
        "Adding the pose temporal memory to the same top-down SimpleBaseline improves AP by "
        "2.6 and MOTA by 1.5 on PoseTrack18 val.",
        ("memory_t3_simple_baseline_memory", "memory_t3_simple_baseline_baseline"),
        ("val/mAP", "val/MOTA", "val/AP/wrists", "val/AP/ankles"),
        _vs("memory_t3_simple_baseline_memory", "memory_t3_simple_baseline_baseline",
            "val/mAP", "val/MOTA"),
    ),
    PaperTable(
        "correspondence/table2", "Keypoint correspondences, Table 2: tracking cues",
        "With the same poses (ground-truth boxes), keypoint correspondences track with fewer ID "
        "switches and a higher MOTA than OKS, the weakest cue (70.5 vs 65.9 MOTA).",
        ("correspondence_t2_correspondence_gt", "correspondence_t2_oks_gt"),
        ("val/MOTA", "val/id_switches", "val/mAP"),
        _vs("correspondence_t2_correspondence_gt", "correspondence_t2_oks_gt", "val/MOTA")
        + _vs("correspondence_t2_correspondence_gt", "correspondence_t2_oks_gt",
              "val/id_switches", mode="min"),
    ),
    PaperTable(
        "correspondence/table3", "Keypoint correspondences, Table 3: recovering missed detections",
        "Recovering missed detections with the correspondences improves mAP and MOTA at every "
        "joint threshold (at 0.3: mAP 77.7 -> 79.2, MOTA 67.6 -> 68.8).",
        ("correspondence_t3_joint03_recovered", "correspondence_t3_joint03_detected"),
        ("val/mAP", "val/MOTA"),
        _vs("correspondence_t3_joint03_recovered", "correspondence_t3_joint03_detected",
            "val/mAP", "val/MOTA"),
    ),
    PaperTable(
        "correspondence/table7", "Keypoint correspondences, Table 7: ablations",
        "Omitting the refinement module or duplicate removal lowers MOTA and raises the ID "
        "switches (67.9 MOTA in full; 66.9 without refinement, 64.5 without duplicate removal).",
        ("correspondence_t7_full", "correspondence_t7_no_refinement",
         "correspondence_t7_no_duplicate_removal"),
        ("val/MOTA", "val/id_switches", "val/mAP"),
        _vs("correspondence_t7_full", "correspondence_t7_no_refinement", "val/MOTA")
        + _vs("correspondence_t7_full", "correspondence_t7_no_duplicate_removal", "val/MOTA")
        + _vs("correspondence_t7_full", "correspondence_t7_no_refinement", "val/id_switches",
              mode="min")
        + _vs("correspondence_t7_full", "correspondence_t7_no_duplicate_removal",
              "val/id_switches", mode="min"),
    ),
    PaperTable(
        "stm/table3", "STM-skeletons, Table 3: pre-training vs fine-tuning",
        "Fine-tuning on video clips improves every configuration over the pre-trained model "
        "(configuration 1: keypoint F1 11.4 -> 29.4, 10 px rule).",
        ("stm_t3_c1_finetune", "stm_t3_c1_pretrain"), ("val/f1", "val/precision", "val/recall"),
        _vs("stm_t3_c1_finetune", "stm_t3_c1_pretrain", "val/f1"),
    ),
)

GOALS: tuple[Goal, ...] = (
    _goal("rnn_association", "AE AP >= 40 (normal split)", "val/AP_ae", ">=", 40.0),
    _goal("rnn_association", "RNN AP >= 40 (normal split)", "val/AP", ">=", 40.0),
    _goal("rnn_association", "AE AP >= 15 (crowded split)", "val/crowded_AP_ae", ">=", 15.0),
    _goal("rnn_association", "RNN AP >= 15 (crowded split)", "val/crowded_AP", ">=", 15.0),
    _goal("rnn_association", "decoder's person count exact on >= 70% of val images", COUNT_EXACT, ">=", 70.0),
    Goal("rnn_association", "<= 20 min training, its AE prerequisite included (s)",
         (Figure("assoc_embedding", WALL), Figure("rnn_association", WALL)), "<=", 1200.0),
    _goal("simple_baseline", "mAP >= 70 (ground-truth boxes)", "val/mAP", ">=", 70.0),
    _goal("simple_baseline", "MOTA >= 50 (ground-truth boxes)", "val/MOTA", ">=", 50.0),
    _goal("memory_t3_simple_baseline_memory", "MOTA >= 30 (simulated detector)", "val/MOTA", ">=", 30.0),
    *(_goal(name, ">= 90% of val correspondences within one cell (fraction)", "val/accuracy",
            ">=", 0.90) for name in ("correspondence_siamese", "correspondence_refinement")),
    Goal("correspondence_t2_correspondence_gt", "no more ID switches than correspondence_t2_oks_gt",
         (Figure("correspondence_t2_correspondence_gt", "val/id_switches"),), "<=",
         Figure("correspondence_t2_oks_gt", "val/id_switches")),
    _goal("stm_t3_c1_finetune", "keypoint F1 >= 60% (10 px rule)", "val/f1", ">=", 60.0),
)

# What the page trains, in this order: the goal rows and every table's rows, each after the
# runs its config reads (run:<experiment>). 23 experiments.
EXPERIMENTS: tuple[str, ...] = (
    # goal rows (issue 17, point 2) and their prerequisites
    "assoc_embedding", "rnn_association",
    "simple_baseline",
    "memory_t3_simple_baseline_memory",
    "correspondence_siamese", "correspondence_refinement", "correspondence_pose",
    "correspondence_t2_correspondence_gt", "correspondence_t2_oks_gt",
    "stm_t3_c1_pretrain", "stm_t3_c1_finetune",
    # the other rows of the tables' compared pairs
    "rnn_t1_ours", "rnn_t3_canonical", "rnn_t4_bb", "rnn_t5_loop0",
    "memory_t3_simple_baseline_baseline", "memory_t2_coda", "memory_t2_vanilla",
    "correspondence_t3_joint03_detected", "correspondence_t3_joint03_recovered",
    "correspondence_t7_full", "correspondence_t7_no_refinement",
    "correspondence_t7_no_duplicate_removal",
)

# Paper tables with experiments that the page does not run, and why.
LEFT_OUT: dict[str, str] = {
    "rnn/table6": "within-image batch size T: 4 more decoder runs; Table 4/5's pairs already "
                  "cover the decoder's training",
    "rnn/table7": "LSTM2's hidden units: the paper itself finds no clear winner",
    "rnn/fig6": "the stop threshold: the paper's values are only plotted, not in the text",
    "memory/table1": "memory capacity: the paper's gain is 1.1 AP over capacities 1 to 16, "
                     "below what a compact run resolves",
    "stm/table1": "the three losses differ by 2.3 F1 in the paper ('a small advantage')",
    "stm/table2": "edges only, pre-trained vs fine-tuned: the same claim as Table 3's pair, "
                  "for 3 more STM runs",
    "correspondence/table5": "a state-of-the-art comparison on PoseTrack's test servers",
    "correspondence/table6": "the affinity threshold: the paper finds it has a low impact",
}


DEFAULT_RUNS = Path("runs/results")
DEFAULT_OUT = Path("docs/RESULTS.md")
SHOWN, NOT_SHOWN, NOT_MEASURABLE, NO_RUN = (
    "shown", "not shown", "not measurable at compact scale", "no run yet")


def finished_run(runs_dir: Path, experiment: str) -> Path | None:
    """The newest run folder of ``experiment`` (an alias: its target's) under ``runs_dir``
    whose training finished (``run.folders.FINISHED_FILE``); None when there is none. A run
    that was interrupted, or is still training, is not finished: ``make results`` trains it
    anew."""
    from vidpose.run.folders import FINISHED_FILE, newest_run

    return newest_run(runs_dir, experiment, lambda p: (p / FINISHED_FILE).is_file())


@lru_cache(maxsize=None)
def _paper_metrics(experiment: str) -> dict[str, float]:
    """The paper's numbers of an experiment with no run yet, from its experiment file."""
    from vidpose.config import compose, logged_metric_name

    numbers = OmegaConf.to_container(compose(experiment).experiment.paper_metrics)
    return {logged_metric_name(str(k)): float(v) for k, v in numbers.items()}


def persons_counted_exactly(predictions: list[dict], truth: dict) -> float:
    """The share (percent) of the ground truth's images on which ``predictions`` (COCO
    results) hold as many persons as are annotated (with keypoints, not crowd regions)."""
    counted = Counter(record["image_id"] for record in predictions)
    persons: dict[int, int] = {image["id"]: 0 for image in truth["images"]}
    for ann in truth["annotations"]:
        if not ann.get("iscrowd") and ann.get("num_keypoints", 1) > 0:
            persons[ann["image_id"]] += 1
    if not persons:
        return math.nan
    return 100.0 * sum(counted.get(i, 0) == n for i, n in persons.items()) / len(persons)


def count_exact(run: Run) -> float | None:
    """``persons_counted_exactly`` of the run's last validation (its RNN decoder's
    predictions on the normal val split) against that split's annotations; None when the
    run wrote no such file."""
    from vidpose.data_modules.datasets import as_data_config
    from vidpose.data_modules.sources import annotation_path, validation_source

    predictions = run.folder / "predictions" / "val" / "val_rnn.json"
    if not predictions.is_file():
        return None
    data = validation_source(as_data_config(OmegaConf.load(run.folder / "config.yaml").data))
    truth = annotation_path(data, data.val_split)
    if not truth.is_file():
        return None
    return persons_counted_exactly(json.loads(predictions.read_text()),
                                   json.loads(truth.read_text()))


@dataclass
class Measured:
    """The finished runs of the page's experiments and the numbers read from them."""

    runs: dict[str, Run]  # experiment -> its newest finished run
    wall: dict[str, float] = field(default_factory=dict)  # experiment -> wall seconds
    machines: dict[str, dict] = field(default_factory=dict)  # experiment -> machine record
    # experiment -> finished.yaml's free-text ``note`` (how a run made elsewhere was made)
    notes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, runs_dir: Path, experiments: tuple[str, ...]) -> "Measured":
        from vidpose.run.folders import FINISHED_FILE

        measured = cls({})
        for name in experiments:
            folder = finished_run(runs_dir, name)
            if folder is None:
                continue
            measured.runs[name] = load_run(folder)
            record = OmegaConf.to_container(OmegaConf.load(folder / FINISHED_FILE))
            measured.wall[name] = float(record.get("wall_s", math.nan))
            measured.machines[name] = dict(record.get("machine") or {})
            if record.get("note"):
                measured.notes[name] = str(record["note"])
        return measured

    def value(self, figure: Figure) -> float | None:
        """Our number (the final logged value); None when there is no run or it was never
        logged; NaN when it was logged undefined."""
        run = self.runs.get(figure.experiment)
        if run is None:
            return None
        if figure.metric == WALL:
            return self.wall.get(figure.experiment)
        if figure.metric == COUNT_EXACT:
            return count_exact(run)
        return run.final(figure.metric)

    def paper(self, figure: Figure) -> float | None:
        run = self.runs.get(figure.experiment)
        return (run.paper if run is not None else _paper_metrics(figure.experiment)).get(figure.metric)


def _defined(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def verdict(table: PaperTable, measured: Measured) -> tuple[str, list[str]]:
    """The table's verdict and one line per comparison, from our numbers: no run yet (a run
    is missing), not measurable (a number was not logged or is undefined at compact scale),
    shown (every comparison holds, strictly) or not shown."""
    lines, states = [], []
    for c in table.comparisons:
        better, worse = measured.value(c.better), measured.value(c.worse)
        sign = ">" if c.mode == "max" else "<"
        said = (f"{c.better.experiment} {c.better.metric} {_cell(better)} {sign} "
                f"{c.worse.experiment} {c.worse.metric} {_cell(worse)}")
        if c.better.experiment not in measured.runs or c.worse.experiment not in measured.runs:
            state = NO_RUN
        elif not (_defined(better) and _defined(worse)):
            state = NOT_MEASURABLE
        else:
            holds = better > worse if c.mode == "max" else better < worse
            state = SHOWN if holds else NOT_SHOWN
        states.append(state)
        lines.append(f"- {said}: {'yes' if state == SHOWN else 'no' if state == NOT_SHOWN else state}")
    return next((s for s in (NO_RUN, NOT_MEASURABLE, NOT_SHOWN) if s in states), SHOWN), lines


def goal_status(goal: Goal, measured: Measured) -> tuple[float | None, float | None, str]:
    """(reached, target, status): status met / missed / no run yet / not measurable."""
    figures = list(goal.figures) + ([goal.target] if isinstance(goal.target, Figure) else [])
    if any(f.experiment not in measured.runs for f in figures):
        return None, None, NO_RUN
    values = [measured.value(f) for f in goal.figures]
    target = measured.value(goal.target) if isinstance(goal.target, Figure) else goal.target
    if not all(_defined(v) for v in values) or not _defined(target):
        return None, target, NOT_MEASURABLE
    reached = sum(values)
    # The time goals are CPU budgets (issue 17: a fresh 2-core machine): a run made on an
    # accelerator says nothing about them.
    elsewhere = sorted({str(measured.machines.get(f.experiment, {}).get("accelerator"))
                        for f in goal.figures if f.metric == WALL} - {"cpu"})
    if elsewhere:
        return reached, target, (f"not measured: trained on {', '.join(elsewhere)}, the goal is "
                                 "a 2-core CPU's")
    met = reached >= target if goal.op == ">=" else reached <= target
    return reached, target, "met" if met else "missed"


def duration(seconds: float | None) -> str:
    """``2 h 05 min``, ``5 min 12 s``, ``42 s``."""
    if seconds is None or math.isnan(seconds):
        return MISSING
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def train_experiment(experiment: str, runs_dir: Path, overrides: tuple[str, ...] = ()) -> Path:
    """Train one experiment at its compact recipe as ``vidpose train`` does (its missing
    ``run:`` prerequisites first), with its runs under ``runs_dir``; the run folder.
    ``overrides`` (tests: a shrunk schedule) apply to it and its prerequisites."""
    from vidpose.config import compose
    from vidpose.run import train, train_prerequisites

    overrides = [*overrides, f"runs_dir={runs_dir}"]
    cfg = compose(experiment, overrides)
    train_prerequisites(cfg, overrides)
    return train(cfg).run_dir


def train_missing(runs_dir: Path, experiments: tuple[str, ...] = EXPERIMENTS,
                  train_one: Callable[[str, Path], Path] = train_experiment,
                  echo: Callable[[str], None] = print) -> list[str]:
    """Train, in order, each experiment without a finished run under ``runs_dir``; one line
    per experiment (skipped with its run, or trained with its elapsed time). A training that
    fails is said and left out (the page marks its rows); the failed names are returned."""
    failed = []
    width = len(str(len(experiments)))
    began = time.monotonic()
    for i, name in enumerate(experiments, start=1):
        tag = f"[{i:{width}d}/{len(experiments)}] {name}"
        folder = finished_run(runs_dir, name)
        if folder is not None:
            echo(f"{tag}: skipped, finished run {folder}")
            continue
        echo(f"{tag}: training ...")
        start = time.monotonic()
        try:
            folder = train_one(name, Path(runs_dir))
        except Exception as err:  # one failed recipe must not lose the hours of the others
            failed.append(name)
            echo(f"{tag}: FAILED after {duration(time.monotonic() - start)}: "
                 f"{' '.join(str(err).split())}")
            continue
        echo(f"{tag}: trained in {duration(time.monotonic() - start)} ({folder}); "
             f"{duration(time.monotonic() - began)} since make results started")
    return failed


def _cell(value: float | None) -> str:
    return MISSING if value is None else _fmt(value)


def _machines(measured: Measured, names: list[str]) -> list[str]:
    """One line per distinct machine the runs of ``names`` were trained on (precision is per
    method and is listed per run)."""
    seen: dict[tuple, list[str]] = {}
    for name in names:
        record = measured.machines.get(name, {})
        key = tuple((k, str(record.get(k, "?"))) for k in
                    ("accelerator", "devices", "cpu", "cores", "torch", "lightning", "python"))
        seen.setdefault(key, []).append(name)
    lines = []
    for key, names in seen.items():
        m = dict(key)
        lines.append(f"- accelerator {m['accelerator']} (x{m['devices']}), CPU {m['cpu']} "
                     f"({m['cores']} cores), torch {m['torch']}, Lightning {m['lightning']}, "
                     f"Python {m['python']}: {len(names)} run(s)")
    return lines


def page(measured: Measured, runs_dir: Path, tables: tuple[PaperTable, ...] = TABLES,
         goals: tuple[Goal, ...] = GOALS, experiments: tuple[str, ...] = EXPERIMENTS,
         left_out: dict[str, str] = LEFT_OUT, bench_records: dict[str, dict] | None = None,
         bench_dir: Path = DEFAULT_BENCH) -> str:
    """The Markdown of the results page; ``bench_records`` (``bench.load_records``) fill its
    performance section."""
    from vidpose.bench import performance_section

    finished = [name for name in experiments if name in measured.runs]
    total = sum(measured.wall[n] for n in finished if not math.isnan(measured.wall[n]))
    missing = [name for name in experiments if name not in measured.runs]
    verdicts = [(t, *verdict(t, measured)) for t in tables]
    lines = [
        "# Results at compact scale", "",
        "Written by `make results` (`vidpose results`) from the finished runs under "
        f"`{runs_dir}/`: do not edit it by hand, run it again. It trains what is missing "
        "(each experiment's compact recipe, on the synthetic data; runs already finished are "
        "kept), then writes this page.", "",
        f"- Total run time: **{duration(total)}**"
        + (f" ({total:.0f} s)" if total >= 60 else "") + ", the sum of the "
        f"{len(finished)} runs' own training wall times (`finished.yaml` in each run "
        "folder; data generation not included).",
        f"- Runs: {len(finished)} of {len(experiments)} experiments finished"
        + (f"; no run yet: {', '.join(missing)}." if missing else "."),
        "- Machine:", *(f"  {line}" for line in _machines(measured, finished) or ["- none recorded"]),
        "",
        "Numbers are each run's final validation (the last logged value), as `vidpose report` "
        "shows them, beside the paper's number where the experiment records one "
        "(`experiment.paper_metrics`). Units as logged: AP, mAP, MOTA and keypoint/pixel "
        "precision, recall and F1 in percent; correspondence accuracy a fraction; ID switches "
        "a count. The paper's numbers are on COCO, OCHuman and PoseTrack at paper scale; ours "
        "on the synthetic sets at compact scale, so the claims, not the numbers, are compared. "
        f"A verdict is computed from our numbers: *{SHOWN}* when every comparison of the claim "
        f"holds, *{NOT_SHOWN}* otherwise, *{NOT_MEASURABLE}* when a number it needs was not "
        f"logged or is undefined, *{NO_RUN}* when a run is missing.", "",
        "## Verdicts", "",
        *_table(["paper table", "what it compares", "verdict"],
                [[t.group, t.title, v] for t, v, _ in verdicts]),
        "", "## Goals (issue 17)", "",
    ]
    goal_rows = []
    for goal in goals:
        reached, target, status = goal_status(goal, measured)
        target_text = (f"{goal.op} {goal.target.experiment} ({_cell(target)})"
                       if isinstance(goal.target, Figure) else f"{goal.op} {_fmt(goal.target)}")
        goal_rows.append([goal.experiment, goal.text, target_text, _cell(reached), status])
    lines += _table(["experiment", "goal", "target", "reached", "status"], goal_rows)
    lines += ["", "## Performance (issue 19)", "",
              *performance_section(bench_records or {}, bench_dir)]
    for table, state, said in verdicts:
        lines += ["", f"## {table.group}: {table.title}", "", f"**Claim.** {table.claim}", ""]
        rows = []
        for name in table.rows:
            cells = [_ours(measured.value(Figure(name, m)), measured.paper(Figure(name, m)))
                     for m in table.metrics]
            run = measured.runs.get(name)
            rows.append([name, *cells, duration(measured.wall.get(name)),
                         f"`{run.folder.name}`" if run else NO_RUN])
        lines += _table(["experiment", *table.metrics, "wall time", "run"], rows)
        lines += ["", f"**Verdict: {state}.**", "", *said]
    lines += ["", "## Not on this page", ""]
    lines += [f"- {group}: {why}" for group, why in left_out.items()]
    lines += ["", "## Runs", ""]
    for name in experiments:
        run = measured.runs.get(name)
        if run is None:
            lines.append(f"- {name}: {NO_RUN}")
            continue
        precision = measured.machines.get(name, {}).get("precision", "?")
        note = f"; {measured.notes[name]}" if name in measured.notes else ""
        lines.append(f"- {name}: `{run.folder}`, {duration(measured.wall.get(name))}, "
                     f"precision {precision}{note}")
    return "\n".join(lines) + "\n"


def write_page(runs_dir: Path, out: Path, bench_dir: Path = DEFAULT_BENCH, **declared) -> Path:
    """Read the finished runs under ``runs_dir`` and the benchmark records under
    ``bench_dir``, and write the page to ``out``."""
    from vidpose.bench import load_records

    experiments = declared.get("experiments", EXPERIMENTS)
    measured = Measured.load(Path(runs_dir), experiments)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page(measured, Path(runs_dir), bench_records=load_records(bench_dir),
                        bench_dir=Path(bench_dir), **declared))
    return out


def main(runs_dir: Path = DEFAULT_RUNS, out: Path = DEFAULT_OUT, train: bool = True,
         bench_dir: Path = DEFAULT_BENCH) -> int:
    """`vidpose results`: train what is missing and run the benchmarks the page reads that
    have no record (unless ``train`` is false), write the page; exit status 1 when a
    training failed (the page is written all the same)."""
    from vidpose.bench import load_records, missing_records, run_all

    failed = train_missing(Path(runs_dir)) if train else []
    if train:
        missing = missing_records(load_records(bench_dir))
        if missing:
            print(f"benchmarks without a record under {bench_dir}: {', '.join(missing)}")
            run_all(only=missing, records=Path(bench_dir))
    print(f"wrote {write_page(Path(runs_dir), Path(out), bench_dir=Path(bench_dir))}")
    if failed:
        print(f"vidpose: {len(failed)} training(s) failed: {', '.join(failed)}")
    return 1 if failed else 0
