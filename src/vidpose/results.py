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

from dataclasses import dataclass

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


def _cmp(better: tuple[str, str], worse: tuple[str, str], mode: str = "max") -> Comparison:
    return Comparison(Figure(*better), Figure(*worse), mode)


TABLES: tuple[PaperTable, ...] = (
    PaperTable(
        "rnn/table1", "RNN decoder paper, Tables 1-2: the decoder vs Associative Embedding",
        "On the same hourglass features, the RNN decoder's learned association beats AE's "
        "grouping at single scale, on COCO (58.7 vs 56.6) and by more on the crowded OCHuman "
        "images (37.8 vs 32.1).",
        ("rnn_association",), ("val/AP", "val/AP_ae", "val/crowded_AP", "val/crowded_AP_ae"),
        (_cmp(("rnn_association", "val/AP"), ("rnn_association", "val/AP_ae")),
         _cmp(("rnn_association", "val/crowded_AP"), ("rnn_association", "val/crowded_AP_ae"))),
    ),
    PaperTable(
        "rnn/table3", "RNN decoder paper, Table 3: the order of LSTM2's input",
        "The learned order of LSTM1's persons is the best input order for LSTM2; a canonical "
        "order (sorted by joint location) is very detrimental (60.1 vs 38.8 AP on COCO).",
        ("rnn_t1_ours", "rnn_t3_canonical"), ("val/AP", "val/crowded_AP"),
        (_cmp(("rnn_t1_ours", "val/AP"), ("rnn_t3_canonical", "val/AP")),),
    ),
    PaperTable(
        "rnn/table4", "RNN decoder paper, Table 4: what the heatmap loss counts",
        "Configuration (a, a') performs best: leaving unconfident predictions out of the heatmap "
        "loss and matching only the first z predictions (58.7 vs 54.7 AP for (b, b')).",
        ("rnn_association", "rnn_t4_bb"), ("val/AP", "val/crowded_AP"),
        (_cmp(("rnn_association", "val/AP"), ("rnn_t4_bb", "val/AP")),),
    ),
    PaperTable(
        "rnn/table5", "RNN decoder paper, Table 5: the feedback loop",
        "The feedback loop helps: 2 loop iterations beat none (58.7 vs 54.6 AP on COCO).",
        ("rnn_association", "rnn_t5_loop0"), ("val/AP", "val/crowded_AP"),
        (_cmp(("rnn_association", "val/AP"), ("rnn_t5_loop0", "val/AP")),),
    ),
    PaperTable(
        "memory/table2", "Pose temporal memory, Table 2: CoDA vs vanilla attention (crowd subset)",
        "On the crowd subset, CoDA is 2.1 AP and 1.3 MOTA higher than vanilla attention: it "
        "learns the dissimilarity that separates occluding persons.",
        ("memory_t2_coda", "memory_t2_vanilla"), ("val/crowd/mAP", "val/crowd/MOTA"),
        (_cmp(("memory_t2_coda", "val/crowd/mAP"), ("memory_t2_vanilla", "val/crowd/mAP")),
         _cmp(("memory_t2_coda", "val/crowd/MOTA"), ("memory_t2_vanilla", "val/crowd/MOTA"))),
    ),
    PaperTable(
        "memory/table3", "Pose temporal memory, Table 3: memory vs the same baseline",
        "Adding the pose temporal memory to the same top-down SimpleBaseline improves AP by "
        "2.6 and MOTA by 1.5 on PoseTrack18 val.",
        ("memory_t3_simple_baseline_memory", "memory_t3_simple_baseline_baseline"),
        ("val/mAP", "val/MOTA", "val/AP/wrists", "val/AP/ankles"),
        (_cmp(("memory_t3_simple_baseline_memory", "val/mAP"),
              ("memory_t3_simple_baseline_baseline", "val/mAP")),
         _cmp(("memory_t3_simple_baseline_memory", "val/MOTA"),
              ("memory_t3_simple_baseline_baseline", "val/MOTA"))),
    ),
    PaperTable(
        "correspondence/table2", "Keypoint correspondences, Table 2: tracking cues",
        "With the same poses (ground-truth boxes), keypoint correspondences track with fewer ID "
        "switches and a higher MOTA than OKS, the weakest cue (70.5 vs 65.9 MOTA).",
        ("correspondence_t2_correspondence_gt", "correspondence_t2_oks_gt"),
        ("val/MOTA", "val/id_switches", "val/mAP"),
        (_cmp(("correspondence_t2_correspondence_gt", "val/MOTA"),
              ("correspondence_t2_oks_gt", "val/MOTA")),
         _cmp(("correspondence_t2_correspondence_gt", "val/id_switches"),
              ("correspondence_t2_oks_gt", "val/id_switches"), "min")),
    ),
    PaperTable(
        "correspondence/table3", "Keypoint correspondences, Table 3: recovering missed detections",
        "Recovering missed detections with the correspondences improves mAP and MOTA at every "
        "joint threshold (at 0.3: mAP 77.7 -> 79.2, MOTA 67.6 -> 68.8).",
        ("correspondence_t3_joint03_recovered", "correspondence_t3_joint03_detected"),
        ("val/mAP", "val/MOTA"),
        (_cmp(("correspondence_t3_joint03_recovered", "val/mAP"),
              ("correspondence_t3_joint03_detected", "val/mAP")),
         _cmp(("correspondence_t3_joint03_recovered", "val/MOTA"),
              ("correspondence_t3_joint03_detected", "val/MOTA"))),
    ),
    PaperTable(
        "correspondence/table7", "Keypoint correspondences, Table 7: ablations",
        "Omitting the refinement module or duplicate removal lowers MOTA and raises the ID "
        "switches (67.9 MOTA in full; 66.9 without refinement, 64.5 without duplicate removal).",
        ("correspondence_t7_full", "correspondence_t7_no_refinement",
         "correspondence_t7_no_duplicate_removal"),
        ("val/MOTA", "val/id_switches", "val/mAP"),
        (_cmp(("correspondence_t7_full", "val/MOTA"), ("correspondence_t7_no_refinement", "val/MOTA")),
         _cmp(("correspondence_t7_full", "val/MOTA"),
              ("correspondence_t7_no_duplicate_removal", "val/MOTA")),
         _cmp(("correspondence_t7_full", "val/id_switches"),
              ("correspondence_t7_no_refinement", "val/id_switches"), "min"),
         _cmp(("correspondence_t7_full", "val/id_switches"),
              ("correspondence_t7_no_duplicate_removal", "val/id_switches"), "min")),
    ),
    PaperTable(
        "stm/table3", "STM-skeletons, Table 3: pre-training vs fine-tuning",
        "Fine-tuning on video clips improves every configuration over the pre-trained model "
        "(configuration 1: keypoint F1 11.4 -> 29.4, 10 px rule).",
        ("stm_t3_c1_finetune", "stm_t3_c1_pretrain"), ("val/f1", "val/precision", "val/recall"),
        (_cmp(("stm_t3_c1_finetune", "val/f1"), ("stm_t3_c1_pretrain", "val/f1")),),
    ),
)

GOALS: tuple[Goal, ...] = (
    Goal("rnn_association", "AE AP >= 40 (normal split)",
         (Figure("rnn_association", "val/AP_ae"),), ">=", 40.0),
    Goal("rnn_association", "RNN AP >= 40 (normal split)",
         (Figure("rnn_association", "val/AP"),), ">=", 40.0),
    Goal("rnn_association", "AE AP >= 15 (crowded split)",
         (Figure("rnn_association", "val/crowded_AP_ae"),), ">=", 15.0),
    Goal("rnn_association", "RNN AP >= 15 (crowded split)",
         (Figure("rnn_association", "val/crowded_AP"),), ">=", 15.0),
    Goal("rnn_association", "decoder's person count exact on >= 70% of val images",
         (Figure("rnn_association", COUNT_EXACT),), ">=", 70.0),
    Goal("rnn_association", "<= 20 min training, its AE prerequisite included (s)",
         (Figure("assoc_embedding", WALL), Figure("rnn_association", WALL)), "<=", 1200.0),
    Goal("simple_baseline", "mAP >= 70 (ground-truth boxes)",
         (Figure("simple_baseline", "val/mAP"),), ">=", 70.0),
    Goal("simple_baseline", "MOTA >= 50 (ground-truth boxes)",
         (Figure("simple_baseline", "val/MOTA"),), ">=", 50.0),
    Goal("memory_t3_simple_baseline_memory", "MOTA >= 30 (simulated detector)",
         (Figure("memory_t3_simple_baseline_memory", "val/MOTA"),), ">=", 30.0),
    Goal("correspondence_siamese", ">= 90% of val correspondences within one cell (fraction)",
         (Figure("correspondence_siamese", "val/accuracy"),), ">=", 0.90),
    Goal("correspondence_refinement", ">= 90% of val correspondences within one cell (fraction)",
         (Figure("correspondence_refinement", "val/accuracy"),), ">=", 0.90),
    Goal("correspondence_t2_correspondence_gt", "no more ID switches than correspondence_t2_oks_gt",
         (Figure("correspondence_t2_correspondence_gt", "val/id_switches"),), "<=",
         Figure("correspondence_t2_oks_gt", "val/id_switches")),
    Goal("stm_t3_c1_finetune", "keypoint F1 >= 60% (10 px rule)",
         (Figure("stm_t3_c1_finetune", "val/f1"),), ">=", 60.0),
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
