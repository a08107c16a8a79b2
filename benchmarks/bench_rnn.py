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

Matching: ``callbacks.matching.linear_assignment`` (lap's LAPJV behind the forbidden-pair
handling) and bare ``lap.lapjv`` against ``scipy.optimize.linear_sum_assignment`` on the same
random z x (z + 1) heatmap-distance matrices; both must find the same minimum cost.
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
        self.live = 0
        self.peak = 0

    def _release(self, size: int) -> None:
        self.live -= size

    def pack(self, tensor: torch.Tensor) -> object:
        size = tensor.numel() * tensor.element_size()
        self.live += size
        self.peak = max(self.peak, self.live)
        holder = [tensor]
        box = _Box(holder)
        weakref.finalize(box, self._release, size)
        return box

    @staticmethod
    def unpack(box: "_Box") -> torch.Tensor:
        return box.holder[0]


class _Box:
    """What a saved tensor is packed into: its lifetime is the graph's."""

    def __init__(self, holder: list) -> None:
        self.holder = holder


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


def _matching(quick: bool) -> dict[str, float]:
    rng = np.random.default_rng(0)
    repeats = 3 if quick else 20
    results = {}
    print(f"{'cost':>9} {'matcher / scipy time':>21} {'lap.lapjv / scipy':>18}")
    for n in (8, 32, 128):
        cost = rng.random((n, n + 1)) * JOINTS  # z GT persons x z_hat + 1 predictions
        rows, cols = linear_assignment(cost)
        ref_rows, ref_cols = linear_sum_assignment(cost)
        if not np.isclose(cost[rows, cols].sum(), cost[ref_rows, ref_cols].sum()):
            raise AssertionError(f"lap and scipy disagree on a {cost.shape} matrix")
        scipy_time = _per_call(lambda: linear_sum_assignment(cost), repeats)
        ours = _per_call(lambda: linear_assignment(cost), repeats) / scipy_time
        raw = _per_call(lambda: lap.lapjv(cost, extend_cost=True), repeats) / scipy_time
        results[f"matcher_over_scipy_{n}"] = ours
        results[f"lapjv_over_scipy_{n}"] = raw
        print(f"{n:>4}x{n + 1:<4} {ours:>21.2f} {raw:>18.2f}")
    return results


def _per_call(fn, repeats: int, calls: int = 50) -> float:
    """Fastest time of ``calls`` calls, per call (single calls are microseconds)."""
    return best_time(lambda: [fn() for _ in range(calls)], repeats) / calls


def run(quick: bool = False) -> dict[str, float]:
    return {**_memory(quick), **_matching(quick)}


if __name__ == "__main__":
    run()
