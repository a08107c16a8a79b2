"""PoseTrack mAP and MOTA with poseval's numbers: ``vidpose eval posetrack --gt --pred``.

poseval (github.com/leonid-pishchulin/poseval) is the official evaluation of the PoseTrack
benchmarks and the source of every published PoseTrack mAP and MOTA; this module gives the
same figures (checked against poseval's output on ../shared/conformance) from arrays:

* AP per joint: every predicted joint is a scored sample, a true positive when its person is
  assigned to a GT person and the joint lies within 0.5 head sizes (``posetrack_match``);
  precision/recall over the samples sorted by score (poseval's sort, so ties break the
  same way) and the VOC area under the interpolated curve; mAP ("total") is the mean over
  joints;
* MOTA/MOTP/precision/recall per joint from CLEAR-MOT counts summed over videos
  (``clear_mot``), total = mean over joints.

The printed tables group joints as poseval does (Head = head top, neck and nose).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from vidpose.formats.jsonio import dump_json
from vidpose.metrics.clear_mot import MotCounts, video_counts
from vidpose.metrics.posetrack_inputs import NUM_JOINTS, POSEVAL_JOINTS, EvalVideo, load_videos
from vidpose.metrics.posetrack_match import VideoMatch, match_video

JOINT_NAMES = (*POSEVAL_JOINTS, "total")
# poseval's printed columns: (title, joints averaged).
COLUMNS = (("Head", ("head_top", "neck", "nose")), ("Shou", ("right_shoulder", "left_shoulder")),
           ("Elb", ("right_elbow", "left_elbow")), ("Wri", ("right_wrist", "left_wrist")),
           ("Hip", ("right_hip", "left_hip")), ("Knee", ("right_knee", "left_knee")),
           ("Ankl", ("right_ankle", "left_ankle")))


@dataclass
class ApSamples:
    """Scored predicted joints and GT joint counts, per joint, in poseval's sample order."""

    scores: list[list[np.ndarray]] = field(default_factory=lambda: [[] for _ in range(NUM_JOINTS)])
    labels: list[list[np.ndarray]] = field(default_factory=lambda: [[] for _ in range(NUM_JOINTS)])
    num_gt: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS, np.int64))

    def add(self, video: EvalVideo, match: VideoMatch) -> None:
        has, score, label = video.pr_has.T, video.pr_score.T, match.true_positive.T
        for j in range(NUM_JOINTS):
            self.scores[j].append(score[j, has[j]])
            self.labels[j].append(label[j, has[j]])
        self.num_gt += video.gt_has.sum(0)

    def extend(self, other: "ApSamples") -> None:
        """Append another set's samples after these (poseval's order: video after video)."""
        for j in range(NUM_JOINTS):
            self.scores[j] += other.scores[j]
            self.labels[j] += other.labels[j]
        self.num_gt += other.num_gt

    def average_precision(self) -> np.ndarray:
        """(15,) AP in percent; 0 for a joint never predicted, NaN for one never annotated."""
        ap = np.zeros(NUM_JOINTS)
        for j in range(NUM_JOINTS):
            scores = np.concatenate(self.scores[j]) if self.scores[j] else np.zeros(0)
            if len(scores) == 0:
                continue
            if self.num_gt[j] == 0:
                ap[j] = np.nan
                continue
            # poseval's order: argsort (quicksort) reversed, so equal scores keep its order.
            order = np.argsort(scores)[::-1]
            hits = np.cumsum(np.concatenate(self.labels[j])[order])
            ap[j] = 100 * voc_ap(hits / self.num_gt[j], hits / np.arange(1, len(hits) + 1))
        return ap


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision/recall curve with precision made monotone (VOC, poseval)."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[steps] - mrec[steps - 1]) * mpre[steps]))


def _with_total(values: np.ndarray) -> list[float]:
    finite = values[~np.isnan(values)]
    total = float(finite.mean()) if len(finite) else math.nan
    return [float(v) for v in values] + [total]


@dataclass
class PoseTrackResult:
    """poseval's figures per joint (15 joints, then "total"), in percent."""

    ap: list[float]
    mota: list[float]
    motp: list[float]
    mot_precision: list[float]
    mot_recall: list[float]
    counts: MotCounts
    num_videos: int
    num_frames: int
    per_video: dict[str, "PoseTrackResult"] = field(default_factory=dict)
    joint_names: tuple[str, ...] = JOINT_NAMES

    @property
    def id_switches(self) -> int:
        return int(self.counts.switches.sum())

    @property
    def map(self) -> float:
        return self.ap[-1]

    @property
    def total_mota(self) -> float:
        return self.mota[-1]

    def as_dict(self) -> dict[str, Any]:
        """The keys of poseval's figures (as in ../shared/conformance) plus ``id_switches``,
        and ``per_video`` when asked for; NaN where poseval has NaN."""
        out: dict[str, Any] = {"joint_names": list(self.joint_names)}
        for key in ("ap", "mota", "motp", "mot_precision", "mot_recall"):
            out[key] = list(getattr(self, key))
        out["id_switches"] = self.id_switches
        if self.per_video:
            out["per_video"] = {name: r.as_dict() for name, r in self.per_video.items()}
        return out

    def tables(self) -> str:
        """poseval's two tables (AP; MOTA per column, then MOTP, precision, recall totals)."""
        def grouped(values: list[float]) -> list[float]:
            index = {name: i for i, name in enumerate(self.joint_names)}
            cols = [float(np.nanmean([values[index[n]] for n in names])) if not all(
                math.isnan(values[index[n]]) for n in names) else math.nan for _, names in COLUMNS]
            return cols + [values[-1]]

        def row(values: list[float]) -> str:
            return "&" + " &".join(f"{v:>5.1f}" for v in values) + " \\\\"

        titles = [t for t, _ in COLUMNS] + ["Total"]
        ap_header = "&" + " &".join(f" {t:<5}" for t in titles) + "\\\\"
        mot_header = ("&" + " &".join([" MOTA"] * 8 + [" MOTP", " Prec", " Rec "]) + "\\\\\n"
                      + "&" + " &".join(f" {t:<5}" for t in titles + ["Total"] * 3) + "\\\\")
        mot_values = grouped(self.mota) + [self.motp[-1], self.mot_precision[-1], self.mot_recall[-1]]
        return ("Average Precision (AP) metric:\n" + ap_header + "\n" + row(grouped(self.ap)) + "\n\n"
                "Multiple Object Tracking (MOT) metrics:\n" + mot_header + "\n" + row(mot_values) + "\n"
                f"\nID switches: {self.id_switches}  ({self.num_videos} videos, "
                f"{self.num_frames} labelled frames)")


def _result(samples: ApSamples, counts: MotCounts, num_videos: int, num_frames: int
            ) -> PoseTrackResult:
    mot = counts.metrics()
    return PoseTrackResult(
        ap=_with_total(samples.average_precision()), mota=_with_total(mot["mota"]),
        motp=_with_total(mot["motp"]), mot_precision=_with_total(mot["precision"]),
        mot_recall=_with_total(mot["recall"]), counts=counts, num_videos=num_videos,
        num_frames=num_frames)


def evaluate_videos(videos: list[EvalVideo], *, per_video: bool = False,
                    progress: bool = False) -> PoseTrackResult:
    """poseval's mAP and MOT metrics over the videos (and each video alone if asked)."""
    iterator: Iterable[EvalVideo] = videos
    if progress:
        from rich.progress import track

        iterator = track(videos, description="matching frames", transient=True)
    # Each video is matched and counted once; the totals pool the per-video parts.
    samples, counts, per_video_parts = ApSamples(), MotCounts(), {}
    for video in iterator:
        match = match_video(video)
        video_samples, video_mot = ApSamples(), video_counts(video, match)
        video_samples.add(video, match)
        samples.extend(video_samples)
        counts = counts + video_mot
        if per_video:
            per_video_parts[video.name] = _result(video_samples, video_mot, 1, video.num_frames)
    result = _result(samples, counts, len(videos), sum(v.num_frames for v in videos))
    result.per_video = per_video_parts
    return result


def evaluate_posetrack(gt: str | Path, pred: str | Path, *, per_video: bool = False,
                       out: str | Path | None = None, progress: bool = False,
                       video_order: str = "sorted") -> PoseTrackResult:
    """Evaluate a folder of per-video prediction files against a GT folder (or two files).

    ``video_order``: see ``posetrack_inputs.load_videos`` ("sorted", the default, gives the
    same numbers on every machine; "directory" mimics poseval run unchanged on this one).
    """
    result = evaluate_videos(load_videos(gt, pred, order=video_order), per_video=per_video,
                             progress=progress)
    if out is not None:
        # NaN literals, as in poseval's own output files (json reads them back).
        dump_json(out, result.as_dict(), allow_nan=True)
    return result
