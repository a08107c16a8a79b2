"""PoseTrack evaluation: the vectorised evaluator against the per-joint loop formulation.

``vidpose.metrics.posetrack`` (arrays per frame, CLEAR-MOT state for all joints at once)
against ``posetrack_reference`` (poseval's structure: loops over predicted persons x GT
persons x joints, one dictionary-based accumulator per joint). Both get the same random
tracking results with misses, false positives, ID switches and score ties, and must give
the same AP and MOT counts (asserted). Figures: predicted poses evaluated per second by the
vectorised evaluator, and the loop's time over the vectorised time, in one run.
"""
from __future__ import annotations

import numpy as np

from vidpose.bench import best_time
from vidpose.metrics.posetrack import evaluate_videos
from vidpose.metrics.posetrack_reference import evaluate_reference, random_videos


def run(quick: bool = False) -> dict[str, float]:
    videos, frames = (3, 10) if quick else (10, 30)
    repeats = 1 if quick else 3
    results: dict[str, float] = {}
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
