"""PoseTrack evaluation: the whole ``vidpose eval posetrack`` process against official poseval,
and the vectorised evaluator against the per-joint loop formulation.

1. A PoseTrack18 validation-sized set (30 videos of varied lengths and crowds, 1,566
   labelled frames, 8,180 ground-truth poses and about as many predicted, ~14 MB of JSON;
   ``posetrack_reference.write_posetrack18_set``) is evaluated by the CLI in a fresh
   process, start to JSON written (median of 3 after a warm-up run), and by its parts
   (reading and validating the files; the evaluation alone). Official poseval (AP + MOT,
   Python 3 with PyPI motmetrics) took POSEVAL_SECONDS on a set of that size on this kind of
   machine (2 cores, measured in issue 19, not here: poseval is not a dependency); the
   ratio is printed beside it (goal: poseval / ours >= 40).
2. ``vidpose.metrics.posetrack`` against ``posetrack_reference`` (poseval's structure: loops
   over predicted persons x GT persons x joints, one dictionary-based accumulator per
   joint) on the same random tracking results with misses, false positives, ID switches
   and score ties: the same AP and MOT counts (asserted); predicted poses evaluated per
   second and the loop's time over the vectorised time, in one run.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vidpose.bench import best_time
from vidpose.metrics.posetrack import evaluate_videos
from vidpose.metrics.posetrack_inputs import load_videos
from vidpose.metrics.posetrack_reference import evaluate_reference, random_videos, write_posetrack18_set

# Official poseval (AP + MOT) on a set of this size (30 videos, 1,566 labelled frames, 8,180
# poses, 13 MB) on this kind of machine, seconds: issue 19's side-by-side measurement.
POSEVAL_SECONDS = 14.3
FULL_SET = {"videos": 30, "labelled_frames": 1566, "poses": 8180}
QUICK_SET = {"videos": 4, "labelled_frames": 160, "poses": 700}


def _cli_seconds(gt: Path, pred: Path, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one ``vidpose eval posetrack`` process, start to JSON written."""
    out.unlink(missing_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vidpose.cli", "eval", "posetrack", "--gt", str(gt),
                    "--pred", str(pred), "--out", str(out)], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})  # a user's cached bytecode
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    json.loads(out.read_text())  # written, and whole
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def whole_process(quick: bool = False) -> dict[str, float]:
    size = QUICK_SET if quick else FULL_SET
    with tempfile.TemporaryDirectory() as tmp:
        gt, pred, out = Path(tmp) / "gt", Path(tmp) / "pred", Path(tmp) / "result.json"
        write_posetrack18_set(gt, pred, seed=0, **size)
        megabytes = sum(f.stat().st_size for f in (*gt.iterdir(), *pred.iterdir())) / 1e6
        _cli_seconds(gt, pred, out)  # warm-up: file cache, bytecode
        runs = [_cli_seconds(gt, pred, out) for _ in range(3)]
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        repeats = 1 if quick else 3
        videos = load_videos(gt, pred)
        reading = best_time(lambda: load_videos(gt, pred), repeats)
        evaluating = best_time(lambda: evaluate_videos(videos), repeats)
    print(f"PoseTrack18 set: {size['videos']} videos, {size['labelled_frames']} labelled frames, "
          f"{size['poses']} GT poses, {megabytes:.1f} MB of JSON")
    print(f"  vidpose eval posetrack, whole process (median of 3): {wall:.3f} s wall, {cpu:.3f} s CPU")
    print(f"    reading + validating {reading:.3f} s, evaluation alone {evaluating:.3f} s "
          "(in this process, best of repeats)")
    figures = {"cli_s": wall, "cli_cpu_s": cpu, "read_s": reading, "evaluate_s": evaluating}
    if quick:
        print(f"  poseval on the full-size set: {POSEVAL_SECONDS} s (not comparable with this "
              "quick set)")
    else:
        ratio = POSEVAL_SECONDS / wall
        print(f"  official poseval, AP + MOT, same size, this kind of machine: {POSEVAL_SECONDS} s "
              f"-> poseval / vidpose = {ratio:.1f}x (goal >= 40x, i.e. <= {POSEVAL_SECONDS / 40:.2f} s)")
        figures["poseval_over_cli"] = ratio
    return figures


def run(quick: bool = False) -> dict[str, float]:
    results = whole_process(quick)
    videos, frames = (3, 10) if quick else (10, 30)
    repeats = 1 if quick else 3
    print()
    print(f"{videos} videos x {frames} frames per row")
    print(f"{'persons/frame':>14} {'poses':>7} {'poses/s':>10} {'loop x':>8}")
    for persons in (2, 8, 16):
        data = random_videos(np.random.default_rng(persons), videos=videos, frames=frames,
                             persons=persons)
        poses = sum(len(f.pr_track) for v in data for f in v.frames)
        fast = evaluate_videos(data)
        ap, counts = evaluate_reference(data)
        np.testing.assert_allclose(fast.ap[:-1], ap, equal_nan=True)
        assert np.array_equal(fast.counts.switches, counts.switches)
        assert np.array_equal(fast.counts.misses, counts.misses)
        vectorised = best_time(lambda: evaluate_videos(data), repeats)
        loop = best_time(lambda: evaluate_reference(data), repeats)
        results[f"poses_per_s_p{persons}"] = poses / vectorised
        results[f"loop_over_vectorised_p{persons}"] = loop / vectorised
        print(f"{persons:>14} {poses:>7} {poses / vectorised:>10.0f} {loop / vectorised:>8.1f}")
    return results


if __name__ == "__main__":
    run()
