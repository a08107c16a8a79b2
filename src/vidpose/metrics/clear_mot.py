"""CLEAR-MOT counts per joint for one video, as poseval gets them from motmetrics.

Bernardin and Stiefelhagen (2008): frame by frame, a GT object keeps the hypothesis it was
matched to last time when that pair is still a candidate; the others are matched by a
minimum-cost assignment, and a GT object matched to a different hypothesis than before
is an ID switch. Unmatched objects are misses, unmatched hypotheses false positives.

poseval runs one motmetrics accumulator per joint; here the 15 accumulators advance together:
GT tracks and predicted tracks of the video get dense indices and every joint's state
(last hypothesis of each object, last object of each hypothesis) lives in flat arrays, so a
frame costs a few array operations plus one small assignment per joint that needs one.

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
from vidpose.metrics.posetrack_match import FrameMatch


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


def _dense(ids: np.ndarray) -> tuple[np.ndarray, int]:
    unique, index = np.unique(ids, return_inverse=True)
    return index.reshape(-1), len(unique)


def _assign_remaining(distance: np.ndarray, free_gt: np.ndarray, free_pr: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 2 for every joint: (gt, pred, joint) of the assignment among the unmatched."""
    empty = np.zeros(0, np.int64)
    joints = np.flatnonzero(free_gt.any(0) & free_pr.any(0))
    if len(joints) == 0:
        return empty, empty, empty
    candidates = (np.isfinite(distance[:, :, joints]) & free_gt[None, :, joints]
                  & free_pr[:, None, joints])  # (P, G, J')
    # Where no object and no hypothesis has two candidates, the candidates are the assignment.
    contested = (candidates.sum(0) > 1).any(0) | (candidates.sum(1) > 1).any(0)
    p, g, k = np.nonzero(candidates & ~contested)
    preds, gts, js = [p], [g], [joints[k]]
    for k in np.flatnonzero(contested):
        j = joints[k]
        cost = np.where(candidates[:, :, k].T, distance[:, :, j].T, np.nan)  # (G, P)
        g, p = linear_assignment(cost)
        gts.append(g)
        preds.append(p)
        js.append(np.full(len(g), j))
    return np.concatenate(gts), np.concatenate(preds), np.concatenate(js)


def video_counts(video: EvalVideo, matches: list[FrameMatch]) -> MotCounts:
    """CLEAR-MOT counts of one video; its last labelled frame is not evaluated (poseval)."""
    counts = MotCounts()
    frames = video.frames[:-1]
    if not frames:
        return counts
    gt_dense, num_gt = _dense(np.concatenate([f.gt_track for f in frames]))
    pr_dense, num_pr = _dense(np.concatenate([f.pr_track for f in frames]))
    joint = np.arange(NUM_JOINTS)
    # State, flat over (joint, track): last partner of each object / hypothesis, or -1.
    partner_of_gt = np.full(NUM_JOINTS * num_gt, -1)
    partner_of_pr = np.full(NUM_JOINTS * num_pr, -1)
    gt_ever_matched = np.zeros(NUM_JOINTS * num_gt, bool)
    pr_ever_matched = np.zeros(NUM_JOINTS * num_pr, bool)
    gt_start = pr_start = 0
    for frame, match in zip(frames, matches):
        g_ids = gt_dense[gt_start:gt_start + len(frame.gt_track)]
        p_ids = pr_dense[pr_start:pr_start + len(frame.pr_track)]
        gt_start += len(frame.gt_track)
        pr_start += len(frame.pr_track)
        if match.empty:
            counts.objects += 1
            counts.misses += 1
            counts.false_positives += 1
            continue
        distance = match.distance  # (P, G, J)
        gt_flat = joint[None, :] * num_gt + g_ids[:, None]  # (G, J)
        pr_flat = joint[None, :] * num_pr + p_ids[:, None]  # (P, J)
        counts.distance_sum += np.nansum(distance, axis=(0, 1))  # RAW events
        free_gt, free_pr = frame.gt_has.copy(), frame.pr_has.copy()
        matched = np.zeros(NUM_JOINTS, np.int64)

        # 1. Pairs matched last time that are still candidates stay matched; when two
        #    objects claim one hypothesis, the first in frame order gets it.
        local_of_pr = np.full(NUM_JOINTS * num_pr, -1)
        local_of_pr[pr_flat] = np.arange(len(p_ids))[:, None]
        j_c, g_c = np.nonzero(frame.gt_has.T)  # joint-major, objects in frame order
        previous = partner_of_gt[gt_flat[g_c, j_c]]
        p_c = np.where(previous >= 0, local_of_pr[np.maximum(previous, 0)], -1)
        keep = (p_c >= 0)
        keep[keep] = frame.pr_has[p_c[keep], j_c[keep]] & np.isfinite(distance[p_c[keep], g_c[keep], j_c[keep]])
        j_c, g_c, p_c = j_c[keep], g_c[keep], p_c[keep]
        _, first = np.unique(j_c * len(p_ids) + p_c, return_index=True)
        j_c, g_c, p_c = j_c[first], g_c[first], p_c[first]
        np.add.at(matched, j_c, 1)
        np.add.at(counts.matches, j_c, 1)
        np.add.at(counts.distance_sum, j_c, distance[p_c, g_c, j_c])
        gt_ever_matched[gt_flat[g_c, j_c]] = True
        pr_ever_matched[pr_flat[p_c, j_c]] = True
        free_gt[g_c, j_c] = False
        free_pr[p_c, j_c] = False

        # 2. The rest by minimum-cost assignment; a changed partner is an ID switch.
        g_a, p_a, j_a = _assign_remaining(distance, free_gt, free_pr)
        o, h, d = gt_flat[g_a, j_a], pr_flat[p_a, j_a], distance[p_a, g_a, j_a]
        switch = (partner_of_gt[o] >= 0) & (partner_of_gt[o] != h)
        ascend = switch & ~pr_ever_matched[h]
        transfer = (partner_of_pr[h] >= 0) & (partner_of_pr[h] != o)
        migrate = transfer & ~gt_ever_matched[o]
        np.add.at(matched, j_a, 1)
        np.add.at(counts.switches, j_a, switch.astype(np.int64))
        np.add.at(counts.matches, j_a, (~switch).astype(np.int64))
        np.add.at(counts.distance_sum, j_a, d * (1 + ascend + transfer + migrate))
        partner_of_gt[o], partner_of_pr[h] = h, o
        gt_ever_matched[o] = pr_ever_matched[h] = True

        objects, hypotheses = frame.gt_has.sum(0), frame.pr_has.sum(0)
        counts.objects += objects
        counts.misses += objects - matched
        counts.false_positives += hypotheses - matched
    return counts
