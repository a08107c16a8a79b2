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
        out.append(EvalVideo.from_frames(f"video{v}", video_frames))
    return out


def _split(total: int, parts: int, low: int, high: int, rng: np.random.Generator) -> np.ndarray:
    """``parts`` integers in [low, high] (varied) that sum to exactly ``total``."""
    sizes = rng.integers(low, high + 1, parts).astype(float)
    sizes = np.clip(np.round(sizes * total / sizes.sum()), low, high).astype(int)
    while sizes.sum() != total:
        i = rng.integers(parts)
        step = 1 if sizes.sum() < total else -1
        if low <= sizes[i] + step <= high:
            sizes[i] += step
    return sizes


def _real_number(value: float) -> float | int:
    """How PoseTrack18's files write a coordinate: whole pixels as integers, others with 7
    decimals (the annotation tool's float32 values)."""
    return int(value) if value == int(value) else round(float(value), 7)


def write_posetrack18_set(gt_dir, pred_dir, *, seed: int = 0, videos: int = 30,
                          labelled_frames: int = 1566, poses: int = 8180) -> None:
    """A PoseTrack18 validation-style set and tracking results for it, as per-video files.

    Shaped like the real ``annotations/val`` files (the poseval input the benchmark times):
    every video lists all its frames in ``images`` (about half of them labelled), labelled
    frames carry ignore-region polygons of a few dozen points, ground-truth annotations
    have ``id``, ``bbox``, ``bbox_head``, ``track_id`` and integer-or-7-decimal
    coordinates; predictions (jittered copies, some persons dropped, false positives, some
    ID swaps) carry per-joint ``scores``, a person ``score`` and a ``track_id``. Video
    lengths and person counts vary; the totals are exactly ``labelled_frames`` and
    ``poses`` ground-truth persons (and as many predicted).
    """
    import json
    from pathlib import Path

    from vidpose.formats.cocostyle import category_record
    from vidpose.keypoints import POSETRACK18

    rng = np.random.default_rng(seed)
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    gt_dir.mkdir(parents=True, exist_ok=True)
    pred_dir.mkdir(parents=True, exist_ok=True)
    categories = [category_record(POSETRACK18)]
    labelled = _split(labelled_frames, videos, 20, 120, rng)
    # Persons per labelled frame: each video has its own typical crowd (1 to 10).
    counts = [np.clip(rng.poisson(rng.uniform(1, 10), n), 0, 15) for n in labelled]
    flat = np.concatenate(counts)
    while flat.sum() != poses:  # adjust single frames until the total is exact
        i = rng.integers(len(flat))
        flat[i] = max(0, flat[i] + (1 if flat.sum() < poses else -1))
    counts = np.split(flat, np.cumsum(labelled)[:-1])
    for v in range(videos):
        vid = f"{v + 1:06d}"
        name = f"{vid}_mpii_test"
        nframes = 2 * int(labelled[v]) + int(rng.integers(0, 20))
        labelled_at = np.sort(rng.choice(nframes, int(labelled[v]), replace=False))
        tracks = int(counts[v].max(initial=0)) + 2
        start = rng.uniform(200, 1100, (tracks, 1, 2)) + rng.normal(0, 60, (tracks, 17, 2))
        velocity = rng.normal(0, 4, (tracks, 1, 2))
        region = rng.uniform(0, 1000, (2, 2)) + rng.uniform(30, 200, (1, 2)) * np.stack(
            [np.cos(np.linspace(0, 2 * np.pi, 40)), np.sin(np.linspace(0, 2 * np.pi, 40))], 1)[:, None]
        images, gt_anns, pred_anns = [], [], []
        swap_from = nframes // 2 if rng.random() < 0.3 else nframes
        for t in range(nframes):
            image_id = int(f"1{vid}{t:04d}")
            image = {"has_no_densepose": True, "is_labeled": False,
                     "file_name": f"images/val/{name}/{t:06d}.jpg", "nframes": nframes,
                     "frame_id": image_id, "vid_id": vid, "id": image_id}
            images.append(image)
            k = np.searchsorted(labelled_at, t)
            if k >= len(labelled_at) or labelled_at[k] != t:
                continue
            image.update(is_labeled=True, width=1920, height=1080,
                         ignore_regions_x=[[int(x) for x in region[:, 0, 0]]],
                         ignore_regions_y=[[int(y) for y in region[:, 0, 1]]])
            present = rng.choice(tracks, int(counts[v][k]), replace=False)
            for track in present:
                xy = start[track] + t * velocity[track] + rng.normal(0, 2, (17, 2))
                xy = np.where(rng.random((17, 1)) < 0.5, np.round(xy), xy)
                flags = (rng.random(17) > 0.15).astype(int)
                flags[[3, 4]] = 0  # the ears, never annotated in PoseTrack18
                keypoints = [c for (x, y), f in zip(xy, flags) for c in
                             ((_real_number(x), _real_number(y), 1) if f else (0, 0, 0))]
                head = [int(xy[2, 0]) - 30, int(xy[2, 1]) - 60, 60, 50]
                gt_anns.append({"bbox_head": head, "keypoints": keypoints,
                                "track_id": int(track), "image_id": image_id,
                                "bbox": [round(float(v), 7) for v in (*xy.min(0), *np.ptp(xy, 0))],
                                "scores": [], "category_id": 1,
                                "id": int(f"1{vid}{t:04d}{track:02d}"), "iscrowd": False,
                                "num_keypoints": int(flags.sum())})
                if rng.random() < 0.1:
                    continue  # a missed person
                pr_xy = xy + rng.normal(0, 5, (17, 2))
                has = flags.astype(bool) & (rng.random(17) > 0.05)
                pr_track = int(track) if t < swap_from else int((track + 1) % tracks)
                pred_anns.append(_prediction(pr_xy, has, pr_track, image_id, rng))
            if rng.random() < 0.1:  # a false positive
                pred_anns.append(_prediction(rng.uniform(0, 1000, (17, 2)), np.ones(17, bool),
                                             100 + t, image_id, rng))
        for folder, annotations in ((gt_dir, gt_anns), (pred_dir, pred_anns)):
            with open(folder / f"{name}.json", "w") as f:
                json.dump({"images": images, "annotations": annotations, "categories": categories}, f)


def _prediction(xy: np.ndarray, has: np.ndarray, track: int, image_id: int,
                rng: np.random.Generator) -> dict:
    scores = np.where(has, rng.uniform(0, 1, 17), 0.0)
    keypoints = [c for (x, y), h in zip(xy, has) for c in ((float(x), float(y), 1) if h else (0, 0, 0))]
    return {"keypoints": keypoints, "scores": [float(s) for s in scores], "score": float(scores.mean()),
            "track_id": track, "image_id": image_id, "category_id": 1}
