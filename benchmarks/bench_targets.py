"""Target rendering: vectorised ``vidpose.targets`` against a per-person, per-joint Python loop.

The loop is the classic way (SimpleBaseline's and most bottom-up codes' target generators):
one Gaussian map per person and joint (or limb), merged by maximum. Both give the same maps
(asserted); the figures are the loop's time over the vectorised time, measured in one run.
"""
from __future__ import annotations

import torch

from vidpose.bench import best_time
from vidpose.keypoints import COCO17
from vidpose.targets import render_heatmaps, render_limb_maps

SIZE = (64, 48)  # a 256x192 crop at stride 4
SIGMA = 2.0


def loop_heatmaps(keypoints: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """Reference: for each person, for each present joint, a full-map Gaussian; max-merge."""
    num_p, num_k = keypoints.shape[:2]
    ys, xs = torch.meshgrid(torch.arange(size[0], dtype=torch.float32),
                            torch.arange(size[1], dtype=torch.float32), indexing="ij")
    out = torch.zeros((num_k,) + tuple(size))
    for p in range(num_p):
        for k in range(num_k):
            x, y, v = keypoints[p, k].tolist()
            if v > 0:
                g = torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2))
                out[k] = torch.maximum(out[k], g)
    return out


def loop_limb_maps(keypoints: torch.Tensor, limbs: torch.Tensor, size: tuple[int, int],
                   sigma: float) -> torch.Tensor:
    """Reference: for each person, for each limb with both ends, a distance-to-segment map."""
    ys, xs = torch.meshgrid(torch.arange(size[0], dtype=torch.float32),
                            torch.arange(size[1], dtype=torch.float32), indexing="ij")
    out = torch.zeros((len(limbs),) + tuple(size))
    for p in range(keypoints.shape[0]):
        for l, (i, j) in enumerate(limbs.tolist()):
            ax, ay, av = keypoints[p, i].tolist()
            bx, by, bv = keypoints[p, j].tolist()
            if av > 0 and bv > 0:
                dx, dy = bx - ax, by - ay
                t = (((xs - ax) * dx + (ys - ay) * dy) / max(dx * dx + dy * dy, 1e-12)).clamp(0, 1)
                d2 = (xs - ax - t * dx) ** 2 + (ys - ay - t * dy) ** 2
                out[l] = torch.maximum(out[l], torch.exp(-d2 / (2 * sigma ** 2)))
    return out


def _people(num_persons: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(num_persons, COCO17.num_keypoints, 2, generator=gen) * torch.tensor(SIZE[::-1])
    visible = (torch.rand(num_persons, COCO17.num_keypoints, 1, generator=gen) > 0.2).float() * 2
    return torch.cat([xy, visible], -1)


def run(quick: bool = False) -> dict[str, float]:
    """Speed-up of the vectorised renderers over the loops for 1, 8 and 32 persons."""
    # Targets are rendered in DataLoader workers, which torch runs with one thread each.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure(2 if quick else 5)
    finally:
        torch.set_num_threads(threads)


def _measure(repeats: int) -> dict[str, float]:
    limbs = torch.as_tensor(COCO17.limbs)
    results: dict[str, float] = {}
    print(f"{'persons':>8} {'heatmaps x':>11} {'limb maps x':>12}")
    for num_persons in (1, 8, 32):
        people = _people(num_persons, seed=num_persons)
        torch.testing.assert_close(render_heatmaps(people, SIZE, SIGMA),
                                   loop_heatmaps(people, SIZE, SIGMA), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(render_limb_maps(people, limbs, SIZE, SIGMA),
                                   loop_limb_maps(people, limbs, SIZE, SIGMA), atol=1e-5, rtol=1e-5)
        heat = (best_time(lambda: loop_heatmaps(people, SIZE, SIGMA), repeats)
                / best_time(lambda: render_heatmaps(people, SIZE, SIGMA), repeats))
        limb = (best_time(lambda: loop_limb_maps(people, limbs, SIZE, SIGMA), repeats)
                / best_time(lambda: render_limb_maps(people, limbs, SIZE, SIGMA), repeats))
        results[f"heatmaps_speedup_p{num_persons}"] = heat
        results[f"limb_maps_speedup_p{num_persons}"] = limb
        print(f"{num_persons:>8} {heat:>11.1f} {limb:>12.1f}")
    return results


if __name__ == "__main__":
    run()
