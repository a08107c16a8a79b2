"""STM-skeletons against plain per-person STM: per-frame cost as the number of persons grows.

Dufour et al. give STM-skeletons one output channel per keypoint and limb over all persons,
so one pass serves every person; plain STM (Oh et al.) tracks one object per pass, so a
frame costs one pass per person. The per-frame step of online tracking is measured: segment
the query frame with a memory of 2 frames, then memorize it with its predicted maps. CPU
inference on one thread, ResNet-18, 128x128 input. Figures are each model's time over its
own one-person time, and plain over skeletons at the same number of persons, all measured in
this run. Each figure is a best of several timings taken in interleaved rounds (every
configuration once per round), so a burst of load from elsewhere hits all of them alike.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import torch

from vidpose.keypoints import POSETRACK18
from vidpose.nn.stm import STM, num_maps_for

SIZE = 128
MEMORY_FRAMES = 2
PERSONS = (1, 5, 10, 20)


def _online_step(model: STM, query: torch.Tensor, memory: tuple[torch.Tensor, torch.Tensor]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Segment ``query`` from ``memory``, then memorize it with its own predicted maps."""
    logits = model.segment(query, *memory)
    return model.memorize(query, logits.sigmoid())


def _memory(model: STM, frames: torch.Tensor, maps: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values of ``frames`` (T, 3, H, W) with ``maps`` (T, C, h, w), stacked on dim 2."""
    keys, values = model.memorize(frames, maps)
    return keys.permute(1, 0, 2, 3)[None], values.permute(1, 0, 2, 3)[None]


Config = tuple[str, int]  # (model, persons)


def _interleaved_best_times(calls: dict[Config, Callable[[], Any]], rounds: int
                            ) -> dict[Config, float]:
    """Fastest of ``rounds`` timings of each call, after one warm-up round."""
    for fn in calls.values():
        fn()
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def run(quick: bool = False) -> dict[str, float]:
    """Time ratios for 1, 5, 10 and 20 persons: STM-skeletons flat, plain STM linear."""
    repeats = 2 if quick else 4
    torch.manual_seed(0)
    num_maps = num_maps_for("skeletons", POSETRACK18.num_keypoints, len(POSETRACK18.limbs))
    skeletons = STM(num_maps, "resnet18").eval()
    plain = STM(num_maps_for("skeleton_map", POSETRACK18.num_keypoints,
                             len(POSETRACK18.limbs)), "resnet18").eval()
    frames, query = torch.randn(MEMORY_FRAMES, 3, SIZE, SIZE), torch.randn(1, 3, SIZE, SIZE)
    stride4 = SIZE // 4
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            # STM-skeletons: all persons' maps merged by max into one memory, one pass a frame
            # whatever the number of persons (timed at each count all the same, so that its
            # figures go through the same measurement as plain STM's).
            shared = _memory(skeletons, frames,
                             torch.rand(MEMORY_FRAMES, num_maps, stride4, stride4))
            # Plain STM: one memory (of one skeleton map) per person, one pass per person.
            per_person = [_memory(plain, frames, torch.rand(MEMORY_FRAMES, 1, stride4, stride4))
                          for _ in range(max(PERSONS))]
            calls = {("skeletons", p): (lambda: _online_step(skeletons, query, shared))
                     for p in PERSONS}
            calls.update({("plain", p): (lambda p=p: [_online_step(plain, query, memory)
                                                      for memory in per_person[:p]])
                          for p in PERSONS})
            times = _interleaved_best_times(calls, repeats)
    finally:
        torch.set_num_threads(threads)
    results: dict[str, float] = {}
    print(f"ResNet-18, {SIZE}x{SIZE}, memory of {MEMORY_FRAMES} frames; "
          f"STM-skeletons with {num_maps} maps; time / one-person time")
    print(f"{'persons':>8} {'skeletons x':>12} {'plain STM x':>12} {'plain/skeletons':>16}")
    for persons in PERSONS:
        skel = times["skeletons", persons] / times["skeletons", 1]
        per = times["plain", persons] / times["plain", 1]
        versus = times["plain", persons] / times["skeletons", persons]
        results[f"skeletons_p{persons}"] = skel
        results[f"plain_p{persons}"] = per
        results[f"plain_over_skeletons_p{persons}"] = versus
        print(f"{persons:>8} {skel:>12.2f} {per:>12.2f} {versus:>16.2f}")
    return results


if __name__ == "__main__":
    run()
