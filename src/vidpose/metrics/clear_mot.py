"""CLEAR-MOT counts per joint for one video, as poseval gets them from motmetrics.

Bernardin and Stiefelhagen (2008): frame by frame, a GT object keeps the hypothesis it was
matched to last time when that pair is still a candidate; the others are matched by a
minimum-cost assignment, and a GT object matched to a different hypothesis than before
is an ID switch. Unmatched objects are misses, unmatched hypotheses false positives.

poseval runs one motmetrics accumulator per joint. Here every joint of a video is counted at
once: in a (frame, joint) cell whose candidate pairs already form an assignment (no object
or hypothesis with two candidates, nearly all cells), motmetrics matches exactly those
pairs whatever its state; the few contested cells are solved one by one in time order from
the state the earlier matches leave. Whether a match continues its object's previous one,
is an ID switch, a transfer, ... depends only on the earlier matches, so all matches are
classified together by sorting them by object and by hypothesis.

Two details reproduce poseval's published numbers exactly:

* MOTP's distance sum is ``accumulator.events['D'].sum()``, which (motmetrics >= 1.2) also
  counts every candidate pair's distance (RAW events) and the distance again for each
  ASCEND, TRANSFER and MIGRATE event;
* a frame with no GT or no predicted person is one missed object and one false positive per
  joint (poseval feeds motmetrics a placeholder object and hypothesis that cannot match).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vidpose.callbacks.matching import linear_assignment
from vidpose.metrics.posetrack_inputs import NUM_JOINTS, EvalVideo
from vidpose.metrics.posetrack_match import VideoMatch


@dataclass
class MotCounts:
    """Per-joint event counts, summable over videos."""

    objects: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS, np.int64))
    matches: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS, np.int64))
    switches: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS, np.int64))
    misses: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS, np.int64))
    false_positives: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS, np.int64))
    distance_sum: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS))

    def __add__(self, other: "MotCounts") -> "MotCounts":
        return MotCounts(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))

    @property
    def detections(self) -> np.ndarray:
        return self.matches + self.switches

    def metrics(self) -> dict[str, np.ndarray]:
        """poseval's MOTA, MOTP, precision and recall per joint, in percent (NaN if undefined)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            objects = np.where(self.objects > 0, self.objects, np.nan)
            mota = 100 * (1 - (self.misses + self.switches + self.false_positives) / objects)
            detections = self.detections
            motp = np.where(detections > 0, 100 * (1 - self.distance_sum / detections), 0.0)
            shown = self.false_positives + detections
            precision = 100 * detections / np.where(shown > 0, shown, np.nan)
            recall = 100 * detections / objects
        return {"mota": mota, "motp": motp, "precision": precision, "recall": recall}


def _dense(ids: np.ndarray) -> np.ndarray:
    """Ids renumbered 0, 1, ... in sorted order."""
    return np.unique(ids, return_inverse=True)[1].reshape(-1)


def _follows(group: np.ndarray, order: np.ndarray) -> np.ndarray:
    """For rows taken in ``order``: whether each row's group is the previous row's group."""
    same = np.zeros(len(order), bool)
    same[1:] = group[order][1:] == group[order][:-1]
    return same


def _previous(group: np.ndarray, time: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each of ``rows``: the row of its group's latest earlier entry (by ``time``), or -1."""
    order = rows[np.lexsort((time[rows], group[rows]))]
    previous = np.full(len(group), -1)
    follows = _follows(group, order)
    previous[order[follows]] = order[:-1][follows[1:]]
    return previous[rows]


class _Frame:
    """One frame of one joint where the candidates are contested, solved as motmetrics does.

    Only here does the state matter: step 1 keeps each object's previous hypothesis when
    that pair is still a candidate (the first object in frame order wins a hypothesis two
    of them claim), and step 2 assigns the rest at minimum cost.
    """

    def __init__(self, video: EvalVideo, match: VideoMatch, rows: np.ndarray,
                 starts: tuple[np.ndarray, np.ndarray]) -> None:
        t, j = int(match.frame[rows[0]]), int(match.joint[rows[0]])
        self.t, self.j = t, j
        g0, g1 = starts[0][t], starts[0][t + 1]
        p0, p1 = starts[1][t], starts[1][t + 1]
        self.gt = np.arange(g0, g1)[video.gt_has[g0:g1, j]]      # objects, frame order
        self.pr = np.arange(p0, p1)                              # hypotheses' rows
        self.distance = np.full((p1 - p0, g1 - g0), np.nan)      # (P, G) candidates only
        self.distance[match.pred[rows] - p0, match.gt[rows] - g0] = match.distance[rows]
        self.offsets = (g0, p0)

    def solve(self, partner: dict[int, int]) -> list[tuple[int, int, float]]:
        """Matched (GT row, predicted row, distance); ``partner``: GT row -> the predicted
        row of its object's last hypothesis in this frame, where that one is present."""
        g0, p0 = self.offsets
        taken_gt: set[int] = set()
        taken_pr: set[int] = set()
        pairs = []
        for g in self.gt.tolist():  # 1. previous partners, first object first
            p = partner.get(g)
            if p is not None and p not in taken_pr and np.isfinite(self.distance[p - p0, g - g0]):
                taken_gt.add(g)
                taken_pr.add(p)
                pairs.append((g, p, float(self.distance[p - p0, g - g0])))
        free = np.isfinite(self.distance)
        free[[p - p0 for p in taken_pr], :] = False
        free[:, [g - g0 for g in taken_gt]] = False
        if not free.any():
            return pairs
        if (free.sum(0) > 1).any() or (free.sum(1) > 1).any():  # 2. minimum cost
            g_local, p_local = linear_assignment(np.where(free.T, self.distance.T, np.nan),
                                                 solver="lap")
        else:  # the remaining candidates already are an assignment
            p_local, g_local = np.nonzero(free)
        pairs += [(g0 + g, p0 + p, float(self.distance[p, g]))
                  for g, p in zip(g_local.tolist(), p_local.tolist())]
        return pairs


def video_counts(video: EvalVideo, match: VideoMatch) -> MotCounts:
    """CLEAR-MOT counts of one video, all joints at once (see the module docstring); its
    last labelled frame is not evaluated (poseval)."""
    counts = MotCounts()
    last = video.num_frames - 1
    if last <= 0:
        return counts
    # Frames without GT or without predicted persons: one miss and one false positive.
    empty = int(match.empty[:last].sum())
    for name in ("objects", "misses", "false_positives"):
        getattr(counts, name)[:] += empty
    evaluated = ~match.empty[video.gt_frame] & (video.gt_frame < last)
    counts.objects += video.gt_has[evaluated].sum(0)
    hypotheses = video.pr_has[~match.empty[video.pr_frame] & (video.pr_frame < last)].sum(0)
    rows = np.flatnonzero(match.frame < last)
    t, j, g, p, d = (match.frame[rows], match.joint[rows], match.gt[rows], match.pred[rows],
                     match.distance[rows])
    counts.distance_sum += np.bincount(j, d, minlength=NUM_JOINTS)  # RAW events
    gt_id, pr_id = _dense(video.gt_track), _dense(video.pr_track)
    o, h = gt_id[g], pr_id[p]
    # Contested cells: an object or a hypothesis with two candidates in one (frame, joint).
    cell = t * NUM_JOINTS + j
    contested = np.zeros(len(rows), bool)
    for side in (g, p):
        _, index, number = np.unique(cell * (len(video.gt_frame) + len(video.pr_frame)) + side,
                                     return_inverse=True, return_counts=True)
        contested |= number[index.reshape(-1)] > 1
    in_contested_cell = np.zeros(last * NUM_JOINTS, bool)
    in_contested_cell[cell[contested]] = True
    contested = in_contested_cell[cell]
    matched = [np.flatnonzero(~contested)]  # rows of ``t, j, g, p, d`` that are matches
    if contested.any():
        solved = _solve_contested(video, match, rows, (t, j, o, h), (gt_id, pr_id), contested,
                                  matched[0])
        t, j, g, p, d, o, h = (np.concatenate([a, b]) for a, b in zip((t, j, g, p, d, o, h), solved))
        matched.append(np.arange(len(t) - len(solved[0]), len(t)))
    m = np.concatenate(matched)
    t, j, g, p, d, o, h = t[m], j[m], g[m], p[m], d[m], o[m], h[m]
    # Classify every match from the earlier ones (motmetrics' events).
    n = len(m)
    all_rows = np.arange(n)
    object_key, hypothesis_key = j * (o.max(initial=0) + 1) + o, j * (h.max(initial=0) + 1) + h
    before_o = _previous(object_key, t, all_rows)           # the object's previous match
    continues = (before_o >= 0) & (h[before_o] == h)        # step 1: same hypothesis again
    switch = (before_o >= 0) & ~continues
    first_of_h = _previous(hypothesis_key, t, all_rows) < 0
    reassigned = all_rows[~continues]                       # step-2 matches update res_m
    before_h = np.full(n, -1)
    before_h[reassigned] = _previous(hypothesis_key, t, reassigned)
    transfer = ~continues & (before_h >= 0) & (o[before_h] != o)
    ascend = switch & first_of_h
    migrate = transfer & (before_o < 0)
    weight = np.where(continues, 1, 1 + ascend.astype(int) + transfer + migrate)
    counts.distance_sum += np.bincount(j, d * weight, minlength=NUM_JOINTS)
    matches = np.bincount(j, minlength=NUM_JOINTS)
    counts.switches += np.bincount(j, switch, minlength=NUM_JOINTS).astype(np.int64)
    counts.matches += matches - counts.switches
    counts.misses += counts.objects - empty - matches
    counts.false_positives += hypotheses - matches
    return counts


def _solve_contested(video: EvalVideo, match: VideoMatch, rows: np.ndarray,
                     candidates: tuple[np.ndarray, ...], ids: tuple[np.ndarray, np.ndarray],
                     contested: np.ndarray, settled: np.ndarray) -> tuple[np.ndarray, ...]:
    """The matches of the contested cells, in time order, each from the state its earlier
    matches (the settled ones, and those solved before it) leave. ``candidates`` holds
    frame, joint, object and hypothesis of the candidate ``rows``; returns frame, joint,
    GT row, predicted row, distance, object and hypothesis of each match."""
    t, j, o, h = candidates
    gt_id, pr_id = ids
    starts = video.bounds()
    num_objects = int(gt_id.max(initial=0)) + 1
    # Settled matches by (joint, object, time), to find an object's last hypothesis.
    key = (j[settled] * num_objects + o[settled]) * video.num_frames + t[settled]
    order = np.argsort(key, kind="stable")
    settled_key, settled_h = key[order], h[settled][order]
    solved_last: dict[tuple[int, int], tuple[int, int]] = {}  # (joint, object) -> (time, h)
    out: list[tuple[int, int, int, int, float]] = []
    contested_rows = np.flatnonzero(contested)
    cells = rows[contested_rows]
    order = np.lexsort((match.joint[cells], match.frame[cells]))
    cell_of = match.frame[cells[order]] * NUM_JOINTS + match.joint[cells[order]]
    for chunk in np.split(cells[order], np.flatnonzero(np.diff(cell_of)) + 1):
        frame = _Frame(video, match, chunk, starts)
        objects = gt_id[frame.gt]
        # Each object's last hypothesis: the later of its last settled and last solved match.
        base = (frame.j * num_objects + objects) * video.num_frames
        at = np.searchsorted(settled_key, base + frame.t) - 1
        # With no settled match at all (every candidate contested) there is nothing to look up.
        before = settled_key[np.maximum(at, 0)] if len(settled_key) else np.full(len(at), -1)
        found = (at >= 0) & (before >= base)
        last_time = np.where(found, before - base, -1)
        last_h = np.where(found, settled_h[np.maximum(at, 0)] if len(settled_h) else -1, -1)
        partner = {}
        frame_pr = {int(pr_id[r]): int(r) for r in frame.pr}
        for row, obj, when, hyp in zip(frame.gt.tolist(), objects.tolist(), last_time.tolist(),
                                       last_h.tolist()):
            solved = solved_last.get((frame.j, obj))
            if solved is not None and solved[0] > when:
                hyp = solved[1]
            if hyp >= 0 and hyp in frame_pr:
                partner[row] = frame_pr[hyp]
        for gt_row, pr_row, distance in frame.solve(partner):
            solved_last[(frame.j, int(gt_id[gt_row]))] = (frame.t, int(pr_id[pr_row]))
            out.append((frame.t, frame.j, gt_row, pr_row, distance))
    if not out:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, empty, np.zeros(0), empty, empty
    t_s, j_s, g_s, p_s, d_s = (np.array(col) for col in zip(*out))
    return t_s, j_s, g_s, p_s, d_s.astype(np.float64), gt_id[g_s], pr_id[p_s]
