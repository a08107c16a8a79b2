"""Pose temporal memory: per-crop cost of the module against the plain backbone, and the
memory a tracked person holds.

For each network (SimpleBaseline, CPN; ResNet-50 at the paper's 384x288 crops unless
``quick``), one crop batch of 8 persons is run through the plain network (no memory) and
through the memory model with a full memory of capacity 1, 2, 4, 8 and 16 stored maps per
person, read by vanilla attention and by CoDA (Eq. 1-3). The memory model's time per crop
is a whole frame's work: the read (one attention over the stored keys and values) and the
write (keypoint quality, keypoint feature replacement, the new map's W_K / W_V projection,
FIFO). Figures, in one run: that time over the plain network's, the two timed alternately
(the median of 3 same-round ratios; the goal is <= 1.15 at capacity 16, the paper's
0.7 -> 0.6 fps being 1.17x), and the bytes of one person's memory at each capacity (stored keys + values + saved keypoint vectors), against the
paper's stored map "(12, 9, 2048) for SimpleBaseline, (12, 9, 256) for CPN". Without the
flip test for both networks: it doubles both sides alike.
"""
from __future__ import annotations

import statistics
import time

import torch

from vidpose.bench import best_time
from vidpose.callbacks.pose_memory_write import PersonMemory, keypoint_quality
from vidpose.methods.pose_memory import PoseMemory

CAPACITIES = (1, 2, 4, 8, 16)
PERSONS = 8


def _model(network: str, memory: bool, quick: bool, capacity: int = max(CAPACITIES)) -> PoseMemory:
    resnet, size = ("resnet18", [128, 96]) if quick else ("resnet50", [384, 288])
    model = {"network": network, "resnet": resnet, "memory": memory, "flip_test": False,
             "capacity": capacity, "replacement": True, "heatmap_threshold": -1.0}
    data = {"dataset": "posetrack18", "synth_preset": None, "input_size": size}
    torch.manual_seed(0)
    return PoseMemory(model, data).eval()


def _full_memories(model: PoseMemory, capacity: int, like: torch.Tensor) -> list[PersonMemory]:
    """PERSONS memories filled to ``capacity`` with projected random maps (streams of 1)."""
    memories = []
    heatmaps = torch.rand(model.schema.num_keypoints, like.shape[-2] * 8, like.shape[-1] * 8)
    with torch.no_grad():
        for _ in range(PERSONS):
            memory = PersonMemory(model.policy)
            for _ in range(capacity):
                memory.write(model.read.project(torch.randn(1, *like.shape)), heatmaps)
            memories.append(memory)
    return memories


def _frame(model: PoseMemory, crops: torch.Tensor, memories: list[PersonMemory],
           crowded: bool) -> None:
    """One frame of the online pipeline's model work: read, then write every person."""
    heatmaps, written = model.estimate(crops, [m.stacked() for m in memories], crowded)
    scores, xy = keypoint_quality(heatmaps, model.policy.blur_sigma)
    for i, memory in enumerate(memories):
        memory.write(written[i], heatmaps[i], (scores[i], xy[i]))


def _memory_bytes(memory: PersonMemory) -> int:
    stored = sum(t.numel() * t.element_size() for t in memory.features)
    saved = memory.saved.numel() * memory.saved.element_size() if memory.saved is not None else 0
    return stored + saved


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(quick: bool = False) -> dict[str, float]:
    rounds = 1 if quick else 3
    results: dict[str, float] = {}
    for network in ("simple_baseline", "cpn"):
        plain = _model(network, False, quick)
        crops = torch.randn(PERSONS, 3, *plain.input_size)

        def plain_frame() -> None:
            plain.estimate(crops, [None] * PERSONS, False)

        base = best_time(plain_frame, rounds)
        with torch.no_grad():
            top, _ = plain.net.encode(crops[:1])
        print(f"{network}: stored map {tuple(top.shape[1:])}, plain {1000 * base / PERSONS:.1f} "
              f"ms/crop")
        print(f"{'capacity':>9} {'vanilla x':>10} {'CoDA x':>8} {'KiB/person':>11}")
        for capacity in CAPACITIES:
            with_memory = _model(network, True, quick, capacity)
            memories = _full_memories(with_memory, capacity, top[0])
            frames = [lambda crowded=crowded: _frame(with_memory, crops, memories, crowded)
                      for crowded in (False, True)]
            for frame in frames:
                frame()  # warm-up
            # The plain network and the memory model alternate, and each ratio is the median
            # of same-round ratios: a machine whose speed drifts during the run (frequency,
            # other jobs) moves both sides of a ratio alike.
            rounds_ = [[_seconds(frame) / _seconds(plain_frame) for frame in frames]
                       for _ in range(rounds)]
            ratios = [statistics.median(r[i] for r in rounds_) for i in range(2)]
            size = _memory_bytes(memories[0])
            results[f"{network}_vanilla_over_plain_c{capacity}"] = ratios[0]
            results[f"{network}_coda_over_plain_c{capacity}"] = ratios[1]
            results[f"{network}_bytes_per_person_c{capacity}"] = float(size)
            print(f"{capacity:>9} {ratios[0]:>10.3f} {ratios[1]:>8.3f} {size / 1024:>11.1f}",
                  flush=True)
    return results
