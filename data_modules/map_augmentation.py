"""STM-skeletons' data augmentation for refinement: noisy maps for the memory frames.

At test time the memory encoder reads the model's own, imperfect maps; trained only on
ground truth it never learns to correct them. Dufour et al. (Sec. 2.3, Fig. 4) therefore
draw the memory frames' keypoint and edge (limb) maps with four kinds of mistakes:

* jitter: every keypoint moved by a small Gaussian displacement (its limbs follow it);
* rand: each peak with a random size, shape and orientation (anisotropic keypoint
  Gaussians, limbs of random width);
* baits: false-positive peaks at random places, Poisson(``baits``) per map;
* dull_clouds: each peak's height multiplied by U[0, 1].

The loss targets stay the clean maps of :mod:`vidpose.targets`, which also draws these.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch import Tensor

from vidpose.data_modules.config import MapAugmentationConfig
from vidpose.errors import ConfigError
from vidpose.targets import render_gaussian_peaks, render_heatmaps, render_limb_maps, render_segment_peaks


def check_map_augmentation(cfg: MapAugmentationConfig) -> None:
    """Refuse negative strengths, naming the key."""
    for name in ("jitter", "rand", "baits"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"data.map_augmentation.{name} must be >= 0; got {getattr(cfg, name)}")


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator) -> Tensor:
    return torch.rand(shape, generator=generator).mul_(high - low).add_(low)


def jitter_keypoints(keypoints: Tensor, std: float, generator: torch.Generator) -> Tensor:
    """Present keypoints ``(..., K, 3)`` moved by N(0, std^2) per axis; absent ones untouched."""
    noise = torch.randn(keypoints.shape[:-1] + (2,), generator=generator).to(keypoints)
    moved = keypoints.clone()
    moved[..., :2] += std * noise * (keypoints[..., 2:] > 0)
    return moved


def _bait_groups(count: int, baits: float, generator: torch.Generator) -> Tensor:
    """The map of every false-positive peak: Poisson(``baits``) of them in each of ``count``."""
    per_map = torch.poisson(torch.full((count,), float(baits)), generator=generator).long()
    return torch.repeat_interleave(torch.arange(count), per_map)


def _random_points(n: int, size: Sequence[int], generator: torch.Generator) -> Tensor:
    """``(n, 2)`` x, y uniform over a map of ``size`` (h, w)."""
    extent = torch.tensor([size[1] - 1.0, size[0] - 1.0])
    return torch.rand((n, 2), generator=generator) * extent


def _spreads(n: int, sigma: float, rand: float, axes: int,
             generator: torch.Generator) -> Tensor:
    """``(n, axes)`` spreads: ``sigma`` times exp(U[-rand, rand]) per peak and axis."""
    if rand <= 0:
        return torch.full((n, axes), float(sigma))
    return float(sigma) * _uniform((n, axes), -rand, rand, generator).exp_()


def _intensities(n: int, dull_clouds: bool, generator: torch.Generator) -> Tensor:
    return torch.rand(n, generator=generator) if dull_clouds else torch.ones(n)


def _keypoint_maps(keypoints: Tensor, size: Sequence[int], sigma: float, cfg: MapAugmentationConfig,
                   generator: torch.Generator, like: Tensor) -> Tensor:
    """CPU ``(M, P, K, 3)`` -> ``(M, K, h, w)`` with rand, baits and dull_clouds, rendered on
    ``like``'s device and dtype."""
    num_m, _, num_k, _ = keypoints.shape
    m, p, k = (keypoints[..., 2] > 0).nonzero(as_tuple=True)
    centers, group = keypoints[m, p, k, :2], m * num_k + k
    count = num_m * num_k
    if cfg.baits > 0:
        bait_group = _bait_groups(count, cfg.baits, generator)
        centers = torch.cat([centers, _random_points(len(bait_group), size, generator)])
        group = torch.cat([group, bait_group])
    n = len(group)
    sigmas = _spreads(n, sigma, cfg.rand, 2, generator)
    angles = _uniform((n,), 0.0, math.pi, generator) if cfg.rand > 0 else torch.zeros(n)
    intensity = _intensities(n, cfg.dull_clouds, generator)
    maps = render_gaussian_peaks(centers.to(like), group.to(like.device), count, size,
                                 sigmas.to(like), angles.to(like), intensity.to(like))
    return maps.reshape(num_m, num_k, *maps.shape[-2:])


def _limb_maps(keypoints: Tensor, limbs: np.ndarray, size: Sequence[int], limb_sigma: float,
               cfg: MapAugmentationConfig, generator: torch.Generator, like: Tensor) -> Tensor:
    """CPU ``(M, P, K, 3)`` -> ``(M, L, h, w)`` with rand (limb width), baits and dull_clouds,
    rendered on ``like``'s device and dtype.

    A bait limb starts at a random point and runs in a random direction for up to a quarter
    of the map's larger side.
    """
    pairs = torch.as_tensor(np.asarray(limbs), dtype=torch.long).reshape(-1, 2)
    num_m, num_l = keypoints.shape[0], len(pairs)
    start, end = keypoints[..., pairs[:, 0], :], keypoints[..., pairs[:, 1], :]
    m, p, limb = ((start[..., 2] > 0) & (end[..., 2] > 0)).nonzero(as_tuple=True)
    a, b, group = start[m, p, limb, :2], end[m, p, limb, :2], m * num_l + limb
    count = num_m * num_l
    if cfg.baits > 0:
        bait_group = _bait_groups(count, cfg.baits, generator)
        n = len(bait_group)
        origin = _random_points(n, size, generator).to(a)
        length = _uniform((n,), 0.0, max(size) / 4.0, generator).to(a)
        heading = _uniform((n,), 0.0, 2.0 * math.pi, generator).to(a)
        direction = torch.stack([torch.cos(heading), torch.sin(heading)], -1)
        a, b = torch.cat([a, origin]), torch.cat([b, origin + length[:, None] * direction])
        group = torch.cat([group, bait_group])
    n = len(group)
    widths = _spreads(n, limb_sigma, cfg.rand, 1, generator)[:, 0]
    intensity = _intensities(n, cfg.dull_clouds, generator)
    maps = render_segment_peaks(a.to(like), b.to(like), group.to(like.device), count, size,
                                widths.to(like), intensity.to(like))
    return maps.reshape(num_m, num_l, *maps.shape[-2:])


def render_memory_maps(keypoints: Tensor | np.ndarray, limbs: np.ndarray, size: Sequence[int],
                       sigma: float, limb_sigma: float, cfg: MapAugmentationConfig,
                       generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Keypoint and limb maps of memory frames with the augmentations of ``cfg``.

    keypoints ``(..., P, K, 3)`` in heatmap pixels (``(T, P, K, 3)`` for a clip), limbs
    ``(L, 2)``, size (h, w). Returns heatmaps ``(..., K, h, w)`` and limb maps
    ``(..., L, h, w)``, merged over persons by maximum. With every option off these are
    exactly :func:`render_heatmaps` and :func:`render_limb_maps`. ``generator`` (CPU) draws
    all randomness, so a seeded generator gives the same maps.
    """
    keypoints = torch.as_tensor(keypoints)
    keypoints = keypoints if keypoints.is_floating_point() else keypoints.float()
    if cfg.jitter > 0:
        keypoints = jitter_keypoints(keypoints, cfg.jitter, generator)
    if not (cfg.rand > 0 or cfg.baits > 0 or cfg.dull_clouds):
        # Jitter alone only moves the keypoints: the clean renderer draws them.
        return (render_heatmaps(keypoints, size, sigma),
                render_limb_maps(keypoints, limbs, size, limb_sigma))
    lead = keypoints.shape[:-3]
    # Peaks are drawn on the CPU, where the generator lives; maps where the keypoints are.
    flat = keypoints.reshape(math.prod(lead), *keypoints.shape[-3:]).cpu()
    heatmaps = _keypoint_maps(flat, size, sigma, cfg, generator, keypoints)
    limb_maps = _limb_maps(flat, limbs, size, limb_sigma, cfg, generator, keypoints)
    return (heatmaps.reshape(*lead, *heatmaps.shape[1:]),
            limb_maps.reshape(*lead, *limb_maps.shape[1:]))


def type_colors(count: int) -> np.ndarray:
    """``(count, 3)`` RGB in [0, 1]: evenly spaced, fully saturated hues, one per map type."""
    hsv = np.stack([np.arange(count) * 180 // max(count, 1), np.full(count, 255),
                    np.full(count, 255)], -1).astype(np.uint8)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0].astype(np.float32) / 255.0


def colorize(maps: Tensor) -> np.ndarray:
    """``(C, h, w)`` maps in [0, 1] -> RGB uint8 ``(h, w, 3)``: each type in its colour, max
    over types (the paper's Fig. 4 look)."""
    values = maps.detach().cpu().numpy().clip(0.0, 1.0)
    rgb = (values[..., None] * type_colors(len(values))[:, None, None, :]).max(0, initial=0.0)
    return (rgb * 255.0).round().astype(np.uint8)


def _panel(maps: Tensor, title: str, zoom: int) -> np.ndarray:
    image = colorize(maps)
    image = cv2.resize(image, (image.shape[1] * zoom, image.shape[0] * zoom),
                       interpolation=cv2.INTER_NEAREST)
    band = np.full((22, image.shape[1], 3), 255, dtype=np.uint8)
    cv2.putText(band, title, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([band, image])


def preview_map_augmentation(keypoints: Tensor | np.ndarray, limbs: np.ndarray, size: Sequence[int],
                             sigma: float, limb_sigma: float, cfg: MapAugmentationConfig,
                             path: str | Path, seed: int = 0) -> Path:
    """Write a PNG like the paper's Fig. 4: clean vs augmented keypoint and edge maps.

    keypoints ``(P, K, 3)``: one frame, heatmap pixels. Top row keypoint maps, bottom row
    edge maps; left clean, right with ``cfg``'s augmentations (drawn from ``seed``). Each
    keypoint or edge type has its own colour. Returns the path written.
    """
    keypoints = torch.as_tensor(keypoints)[None]
    clean = (render_heatmaps(keypoints, size, sigma)[0],
             render_limb_maps(keypoints, limbs, size, limb_sigma)[0])
    noisy = render_memory_maps(keypoints, limbs, size, sigma, limb_sigma, cfg,
                               torch.Generator().manual_seed(seed))
    zoom = max(1, math.ceil(256 / max(size)))
    gap = np.full((22 + int(size[0]) * zoom, 6, 3), 255, dtype=np.uint8)
    rows = [np.hstack([_panel(clean[i], f"{kind} clean", zoom), gap,
                       _panel(noisy[i][0], f"{kind} augmented", zoom)])
            for i, kind in enumerate(("keypoints", "edges"))]
    sheet = np.vstack([rows[0], np.full((6, rows[0].shape[1], 3), 255, np.uint8), rows[1]])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path
