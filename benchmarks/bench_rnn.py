"""RNN pose decoder: training memory against persons per image, within-image batching
(Alg. 1) against full back-propagation, and lap against scipy for the Hungarian matching.

Memory: one Alg. 1 pass of LSTM1 (3 ConvLSTM layers, 2 feedback passes) over one image
(the paper's batch size 1) holding 8, 16 or 32 persons, run for z + 1 steps, with T = 8
and with T = z + 1 (full back-propagation: one backward at the end). The figure is the
peak of the bytes autograd keeps for backward (saved tensors alive at once, counted through
``torch.autograd.graph.saved_tensors_hooks``): the activation memory the paper's 1080 Ti
ran out of ("a maximum of 8 iterations"). With T = 8 it should stay flat in the number of
persons; with full back-propagation it grows linearly. Ratios are against T = 8 at 8
persons. Time per image is reported as a ratio too (detaching costs nothing).

Matching: ``callbacks.matching.linear_assignment`` (scipy below ``LAP_FROM`` rows or
columns, lap's JV on a padded square from there) against a bare
``scipy.optimize.linear_sum_assignment`` call, per size from 2x2 to 64x65: random z x (z + 1)
heatmap-distance matrices (the RNN loss's GT persons x predictions) and square ones. Time per
call is summed over 20 different matrices per size (JV's work varies from matrix to matrix),
best of 3; the ratio is the median over 5 alternating rounds. The third column is
``lap.lapjv(extend_cost=True)``, the matcher before. All three must find the same minimum
cost. Goal: matcher / scipy <= 1 at every size; below ``LAP_FROM`` the matcher is scipy
itself, and what it adds is one Python call (about 0.1 us against scipy's 0.6 us at 2x2).
"""
from __future__ import annotations

import time
import weakref

import lap
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from vidpose.bench import best_time
from vidpose.callbacks.matching import linear_assignment
from vidpose.methods.rnn_loss import TrainingOptions, within_image_batching
from vidpose.nn.rnn_decoder import PoseDecoderLSTM

PERSONS = (8, 16, 32)
JOINTS = 17


class SavedBytes:
    """Peak bytes of the tensors autograd saves for backward, alive at the same time."""

    def __init__(self) -> None:
        self.live = self.peak = 0

    def pack(self, tensor: torch.Tensor) -> "_Box":
        size = tensor.numel() * tensor.element_size()
        self.live += size
        self.peak = max(self.peak, self.live)
        box = _Box(tensor)
        weakref.finalize(box, lambda: setattr(self, "live", self.live - size))
        return box

    @staticmethod
    def unpack(box: "_Box") -> torch.Tensor:
        return box.tensor


class _Box:
    """What a saved tensor is packed into: its lifetime is the graph's."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor


def _alg1(decoder: PoseDecoderLSTM, features: torch.Tensor, gt: torch.Tensor, steps: int,
          batch_steps: int) -> int:
    """One training pass of Alg. 1; returns the peak saved bytes."""
    counter = SavedBytes()
    options = TrainingOptions(passes=2, batch_steps=batch_steps, max_steps=steps)
    present = torch.ones(gt.shape[:2], dtype=torch.bool)
    decoder.zero_grad()
    with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
        within_image_batching(features, gt, present, decoder, lambda loss: loss.backward(),
                              options)
    return counter.peak


def _memory(quick: bool) -> dict[str, float]:
    size = (16, 20) if quick else (32, 40)  # the maps of a 128 x 160 input
    channels, hidden = 68, 32  # 2 AE stacks x (17 heatmaps + 17 tags); LSTM1 32/16/8
    torch.manual_seed(0)
    decoder = PoseDecoderLSTM(channels, JOINTS, hidden, 3, 3)
    # An untrained stop head keeps p near 0.5 > omega: every image runs its z + 1 steps.
    results, base_bytes, base_time = {}, None, None
    print(f"maps {size[0]}x{size[1]}, {channels} feature channels, hidden {hidden}; "
          "peak saved-for-backward bytes and time per image, ratios to T = 8 at 8 persons")
    print(f"{'persons':>8} {'T=8 mem x':>10} {'full mem x':>11} {'T=8 time x':>11} "
          f"{'full time x':>12}")
    # One untimed pass first: the first call pays for allocator and kernel warm-up.
    _alg1(decoder, torch.rand(1, channels, *size), torch.rand(1, 2, JOINTS, *size), 3, 8)
    for persons in PERSONS:
        features = torch.rand(1, channels, *size)
        gt = torch.rand(1, persons, JOINTS, *size)
        row = {}
        for name, t in (("T8", 8), ("full", persons + 1)):
            start = time.perf_counter()
            peak = _alg1(decoder, features, gt, persons + 1, t)
            seconds = time.perf_counter() - start
            if base_bytes is None:
                base_bytes, base_time = peak, seconds
            row[name] = (peak / base_bytes, seconds / base_time)
            results[f"memory_{name}_{persons}_persons_x"] = peak / base_bytes
            results[f"time_{name}_{persons}_persons_x"] = seconds / base_time
        print(f"{persons:>8} {row['T8'][0]:>10.2f} {row['full'][0]:>11.2f} "
              f"{row['T8'][1]:>11.2f} {row['full'][1]:>12.2f}")
    return results


MATCHING_SIZES = ((2, 2), (4, 5), (8, 9), (16, 17), (32, 33), (64, 65), (4, 4), (8, 8),
                  (16, 16), (32, 32), (64, 64))


def _matching(quick: bool) -> dict[str, float]:
    rng = np.random.default_rng(0)
    rounds_ = 1 if quick else 5
    results = {}
    print(f"{'cost':>9} {'matcher / scipy time':>21} {'lap extend_cost / scipy':>24}")
    for n, m in MATCHING_SIZES:
        costs = [rng.random((n, m)) * JOINTS for _ in range(20)]
        for cost in costs:
            rows, cols = linear_assignment(cost)
            ref_rows, ref_cols = linear_sum_assignment(cost)
            _, x, _ = lap.lapjv(cost, extend_cost=True)
            lap_rows = np.flatnonzero(x >= 0)
            totals = (cost[rows, cols].sum(), cost[lap_rows, x[lap_rows]].sum())
            if not np.allclose(totals, cost[ref_rows, ref_cols].sum()):
                raise AssertionError(f"the matchers disagree on a {cost.shape} matrix")
        calls = max(1, 2000 // (n * m))
        solvers = {"scipy": linear_sum_assignment, "matcher": linear_assignment,
                   "before": lambda c: lap.lapjv(c, extend_cost=True)}
        # Rounds alternate the three, and each ratio is the median over rounds of the
        # same-round ratio: load from other processes hits all three alike.
        rounds: dict[str, list[float]] = {name: [] for name in solvers}
        for _ in range(rounds_):
            for name, fn in solvers.items():
                # Fastest of ``calls`` passes, per pass (single calls are microseconds).
                rounds[name].append(best_time(lambda: [[fn(c) for c in costs] for _ in range(calls)],
                                              3) / calls)
        ours, before = (float(np.median(np.divide(rounds[name], rounds["scipy"])))
                        for name in ("matcher", "before"))
        results[f"matcher_over_scipy_{n}x{m}"] = ours
        results[f"lap_extend_over_scipy_{n}x{m}"] = before
        print(f"{n:>4}x{m:<4} {ours:>21.2f} {before:>24.2f}")
    return results


def run(quick: bool = False) -> dict[str, float]:
    return {**_memory(quick), **_matching(quick)}


if __name__ == "__main__":
    run()
