"""Pose temporal memory: per-crop cost of the module against the plain backbone, and the
memory a tracked person holds.

For each backbone (SimpleBaseline, CPN; ResNet-50 at the paper's 384x288 crops unless
``quick``), one crop batch of 8 persons is run through the plain network (no memory) and
through the memory model reading a full memory of capacity 1, 2, 4, 8 and 16 stored maps
per person (Eq. 1-3, vanilla attention and CoDA). Figures, in one run: the memory model's
time per crop over the plain network's (ratio), and the bytes of one person's memory at
each capacity (stored maps + saved keypoint vectors), against the paper's "(12, 9, 2048)
for SimpleBaseline, (12, 9, 256) for CPN".
"""
from __future__ import annotations

import torch

from vidpose.bench import best_time
from vidpose.callbacks.pose_memory_write import PersonMemory
from vidpose.methods.pose_memory import PoseMemory

CAPACITIES = (1, 2, 4, 8, 16)
PERSONS = 8


def _model(backbone: str, memory: bool, quick: bool) -> PoseMemory:
    resnet, size = ("resnet18", [128, 96]) if quick else ("resnet50", [384, 288])
    model = {"backbone": backbone, "resnet": resnet, "memory": memory, "flip_test": False,
             "capacity": max(CAPACITIES), "replacement": True, "heatmap_threshold": -1.0}
    data = {"dataset": "posetrack18", "synth_preset": None, "input_size": size}
    torch.manual_seed(0)
    return PoseMemory(model, data).eval()


def _memory_bytes(model: PoseMemory, capacity: int) -> int:
    """Bytes held by one person's PersonMemory once ``capacity`` maps are stored."""
    h, w = (s // 32 for s in model.input_size)
    channels = model.read.value.in_channels
    memory = PersonMemory(model.policy)
    heatmaps = torch.rand(model.schema.num_keypoints, h * 8, w * 8)
    for _ in range(capacity):
        memory.write(torch.randn(channels, h, w), heatmaps)
    stored = sum(t.numel() * t.element_size() for t in memory.features)
    saved = memory.saved.numel() * memory.saved.element_size() if memory.saved is not None else 0
    return stored + saved


def run(quick: bool = False) -> dict[str, float]:
    repeats = 1 if quick else 3
    torch.set_num_threads(torch.get_num_threads())
    results: dict[str, float] = {}
    for backbone in ("simple_baseline", "cpn"):
        plain, with_memory = _model(backbone, False, quick), _model(backbone, True, quick)
        crops = torch.randn(PERSONS, 3, *plain.input_size)
        base = best_time(lambda: plain.estimate(crops, [None] * PERSONS, False), repeats)
        top, _ = with_memory.encode(crops[:1])
        print(f"{backbone}: stored map {tuple(top.shape[1:])}, plain {1000 * base / PERSONS:.1f} "
              f"ms/crop")
        print(f"{'capacity':>9} {'vanilla x':>10} {'CoDA x':>8} {'KiB/person':>11}")
        for capacity in CAPACITIES:
            memories = [torch.randn(capacity, *top.shape[1:]) for _ in range(PERSONS)]
            ratios = []
            for crowded in (False, True):
                seconds = best_time(lambda: with_memory.estimate(crops, memories, crowded), repeats)
                ratios.append(seconds / base)
            size = _memory_bytes(with_memory, capacity)
            results[f"{backbone}_vanilla_over_plain_c{capacity}"] = ratios[0]
            results[f"{backbone}_coda_over_plain_c{capacity}"] = ratios[1]
            results[f"{backbone}_bytes_per_person_c{capacity}"] = float(size)
            print(f"{capacity:>9} {ratios[0]:>10.3f} {ratios[1]:>8.3f} {size / 1024:>11.1f}")
    return results
