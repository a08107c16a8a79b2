"""The PoseTrack metrics written the straightforward way: Python loops over persons and joints.

This is how poseval computes them (one distance per predicted person x GT person x joint,
one CLEAR-MOT accumulator per joint with per-object bookkeeping in dictionaries). It is
kept for two jobs: ``make bench`` measures the vectorised evaluator (``posetrack.py``)
against it, and the tests check on random videos that both give the same numbers. It takes
the same ``EvalVideo`` inputs and returns (AP, MOT counts) per joint.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment

from vidpose.metrics.clear_mot import MotCounts
from vidpose.metrics.posetrack import voc_ap
from vidpose.metrics.posetrack_inputs import NUM_JOINTS, EvalFrame, EvalVideo

THRESHOLD = 0.5


def _frame(frame: EvalFrame) -> tuple[list[list[tuple[float, bool]]], list[list[list[float]]]]:
    """Per joint: AP samples (score, true positive), and the candidate distance matrix."""
    num_pred, num_gt = len(frame.pr_track), len(frame.gt_track)
    dist = [[[math.inf] * NUM_JOINTS for _ in range(num_gt)] for _ in range(num_pred)]
    for p in range(num_pred):
        for g in range(num_gt):
            for j in range(NUM_JOINTS):
                if frame.pr_has[p, j] and frame.gt_has[g, j]:
                    dx = frame.pr_xy[p, j, 0] - frame.gt_xy[g, j, 0]
                    dy = frame.pr_xy[p, j, 1] - frame.gt_xy[g, j, 1]
                    dist[p][g][j] = math.sqrt(dx * dx + dy * dy) / frame.head_size[g]
    pck = [[0.0] * num_gt for _ in range(num_pred)]
    for p in range(num_pred):
        for g in range(num_gt):
            annotated = sum(bool(frame.gt_has[g, j]) for j in range(NUM_JOINTS))
            hits = sum(dist[p][g][j] <= THRESHOLD for j in range(NUM_JOINTS))
            pck[p][g] = hits / annotated if annotated else float(hits)
    for p in range(num_pred):  # each prediction keeps its best GT person only
        best = max(range(num_gt), key=lambda g: (pck[p][g], -g)) if num_gt else -1
        for g in range(num_gt):
            if g != best:
                pck[p][g] = 0.0
    gt_of_pred = {}
    for g in range(num_gt):
        best = max(range(num_pred), key=lambda p: (pck[p][g], -p)) if num_pred else -1
        if num_pred and pck[best][g] > 0:
            gt_of_pred[best] = g
    samples = [[] for _ in range(NUM_JOINTS)]
    for p in range(num_pred):
        for j in range(NUM_JOINTS):
            if frame.pr_has[p, j]:
                hit = p in gt_of_pred and dist[p][gt_of_pred[p]][j] <= THRESHOLD
                samples[j].append((float(frame.pr_score[p, j]), bool(hit)))
    return samples, dist


class _Accumulator:
    """One joint's CLEAR-MOT state and counts (motmetrics' rules, dictionaries)."""

    def __init__(self) -> None:
        self.partner_of_gt: dict[int, int] = {}
        self.partner_of_pr: dict[int, int] = {}
        self.gt_matched: set[int] = set()
        self.pr_matched: set[int] = set()
        self.objects = self.matches = self.switches = self.misses = self.false_positives = 0
        self.distance_sum = 0.0

    def update(self, oids: list[int], hids: list[int], dist: np.ndarray) -> None:
        self.objects += len(oids)
        self.distance_sum += float(np.nansum(dist))
        free_o, free_h = set(range(len(oids))), set(range(len(hids)))
        for i, o in enumerate(oids):
            if o in self.partner_of_gt:
                for j, h in enumerate(hids):
                    if j in free_h and h == self.partner_of_gt[o]:
                        if np.isfinite(dist[i, j]):
                            self._pair(i, j, o, h, dist[i, j], free_o, free_h, step_one=True)
                        break
        rows, cols = sorted(free_o), sorted(free_h)
        if rows and cols:
            sub = np.array([[dist[i, j] for j in cols] for i in rows])
            valid = np.isfinite(sub)
            if valid.any():
                big = 2 * min(sub.shape) * (np.abs(sub[valid]).max() + 1) + 1
                r, c = linear_sum_assignment(np.where(valid, sub, big))
                for a, b in zip(r, c):
                    if valid[a, b]:
                        i, j = rows[a], cols[b]
                        self._pair(i, j, oids[i], hids[j], dist[i, j], free_o, free_h, step_one=False)
        self.misses += len(free_o)
        self.false_positives += len(free_h)

    def _pair(self, i, j, o, h, d, free_o, free_h, step_one: bool) -> None:
        free_o.discard(i)
        free_h.discard(j)
        self.distance_sum += d
        if step_one:
            self.matches += 1
        else:
            switch = o in self.partner_of_gt and self.partner_of_gt[o] != h
            if switch and h not in self.pr_matched:
                self.distance_sum += d  # ASCEND
            if h in self.partner_of_pr and self.partner_of_pr[h] != o:
                self.distance_sum += d  # TRANSFER
                if o not in self.gt_matched:
                    self.distance_sum += d  # MIGRATE
            self.switches += switch
            self.matches += not switch
            self.partner_of_pr[h] = o
        self.partner_of_gt[o] = h
        self.gt_matched.add(o)
        self.pr_matched.add(h)


def evaluate_reference(videos: list[EvalVideo]) -> tuple[np.ndarray, MotCounts]:
    """(15,) AP in percent and the summed MOT counts, by loops."""
    samples: list[list[tuple[float, bool]]] = [[] for _ in range(NUM_JOINTS)]
    num_gt = [0] * NUM_JOINTS
    counts = MotCounts()
    for video in videos:
        accumulators = [_Accumulator() for _ in range(NUM_JOINTS)]
        for index, frame in enumerate(video.frames):
            frame_samples, dist = _frame(frame)
            for j in range(NUM_JOINTS):
                samples[j].extend(frame_samples[j])
                num_gt[j] += int(frame.gt_has[:, j].sum())
            if index == len(video.frames) - 1:
                continue  # poseval does not evaluate a video's last frame for MOT
            for j in range(NUM_JOINTS):
                if len(frame.pr_track) == 0 or len(frame.gt_track) == 0:
                    accumulators[j].update([-1], [-1], np.full((1, 1), np.nan))
                    continue
                gts = [g for g in range(len(frame.gt_track)) if frame.gt_has[g, j]]
                prs = [p for p in range(len(frame.pr_track)) if frame.pr_has[p, j]]
                d = np.full((len(gts), len(prs)), np.nan)
                for a, g in enumerate(gts):
                    for b, p in enumerate(prs):
                        if dist[p][g][j] <= THRESHOLD:
                            d[a, b] = dist[p][g][j]
                accumulators[j].update([int(frame.gt_track[g]) for g in gts],
                                       [int(frame.pr_track[p]) for p in prs], d)
        for j, acc in enumerate(accumulators):
            for name in ("objects", "matches", "switches", "misses", "false_positives"):
                getattr(counts, name)[j] += getattr(acc, name)
            counts.distance_sum[j] += acc.distance_sum
    ap = np.zeros(NUM_JOINTS)
    for j in range(NUM_JOINTS):
        if not samples[j]:
            continue
        if num_gt[j] == 0:
            ap[j] = np.nan
            continue
        scores = np.array([s for s, _ in samples[j]])
        labels = np.array([t for _, t in samples[j]])
        order = np.argsort(scores)[::-1]
        hits = np.cumsum(labels[order])
        ap[j] = 100 * voc_ap(hits / num_gt[j], hits / np.arange(1, len(hits) + 1))
    return ap, counts


def random_videos(rng: np.random.Generator, *, videos: int = 3, frames: int = 12, persons: int = 6,
                  score_levels: int = 4) -> list[EvalVideo]:
    """Tracking results with the usual faults, for the bench and for tests.

    Persons wander; predictions are jittered copies with dropped joints and persons,
    false positives, ID swaps, frames without predictions and scores quantised to
    ``score_levels`` values (so that AP meets ties).
    """
    out = []
    for v in range(videos):
        start = rng.uniform(100, 900, (persons, 1, 2)) + rng.normal(0, 40, (persons, NUM_JOINTS, 2))
        velocity = rng.normal(0, 8, (persons, 1, 2))
        swap = rng.permutation(persons)
        video_frames = []
        for t in range(frames):
            present = rng.random(persons) > 0.15
            gt_xy = (start + t * velocity)[present]
            gt_has = rng.random(gt_xy.shape[:2]) > 0.1
            gt_track = np.flatnonzero(present)
            head = rng.uniform(20, 60, len(gt_track))
            if rng.random() < 0.1:  # a frame without predictions
                pr_xy, pr_has = np.zeros((0, NUM_JOINTS, 2)), np.zeros((0, NUM_JOINTS), bool)
                pr_track = np.zeros(0, np.int64)
            else:
                kept = rng.random(len(gt_track)) > 0.1
                pr_xy = gt_xy[kept] + rng.normal(0, 0.3, (kept.sum(), 1, 1)) * head[kept, None, None] \
                    * rng.normal(0, 1, (kept.sum(), NUM_JOINTS, 2))
                pr_has = gt_has[kept] & (rng.random((kept.sum(), NUM_JOINTS)) > 0.1)
                pr_track = gt_track[kept] if t < frames // 2 else swap[gt_track[kept]]
                extra = rng.integers(0, 3)
                pr_xy = np.concatenate([pr_xy, rng.uniform(0, 1000, (extra, NUM_JOINTS, 2))])
                pr_has = np.concatenate([pr_has, np.ones((extra, NUM_JOINTS), bool)])
                pr_track = np.concatenate([pr_track, persons + 10 * t + np.arange(extra)])
            score = rng.integers(0, score_levels, pr_has.shape) / max(score_levels - 1, 1)
            video_frames.append(EvalFrame(gt_xy, gt_has, gt_track.astype(np.int64), head, pr_xy,
                                          pr_has, score, pr_track.astype(np.int64)))
        out.append(EvalVideo(f"video{v}", video_frames))
    return out
