"""Pose temporal memory: the write operation and its policies (quality gate, replacement, FIFO).

Pose temporal memory, "write": after a person's heatmaps H are predicted from the enhanced
feature map F~,

1. each keypoint's quality score is the maximum of its heatmap after normalising it to
   [0, 1], adding 0.5 and blurring it with a Gaussian (``keypoint_quality``);
2. keypoint feature replacement: the feature vector at a keypoint whose score is above
   ``high`` is saved for that keypoint; at a keypoint whose score is below ``low`` the
   feature vector is replaced by the one saved earlier (heatmap and feature map share the
   grid up to their stride);
3. the heatmap score, the sum of the keypoint scores, gates the write: above
   ``heatmap_threshold`` F~ is stored, and past ``capacity`` the oldest stored map leaves
   (FIFO: the paper finds recent features weigh most).

One ``PersonMemory`` per track; the tracking pipeline creates and looks them up.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class MemoryWritePolicy:
    """The write operation's settings (the paper gives no threshold values: ours)."""

    capacity: int = 16
    # Heatmap score (sum of keypoint scores) a map must exceed to be written. Each keypoint
    # scores at least 0.5, so a gate below K x 0.5 (8.5 for 17 keypoints) writes every map.
    # Measured: the 296 val crops of the synthetic default set (ground-truth boxes, online
    # pipeline with flip test) through a compact SimpleBaseline with memory after 51 training
    # steps (val mAP 11.4) score 11.1-15.3, quantiles 5/25/50/75/95% = 11.3 / 11.5 / 11.7 /
    # 13.2 / 14.0; 11.5 keeps that model's weakest quarter of frames out of the memory (maps
    # near blank: mean keypoint score 0.68) and a better-trained model's fewer.
    heatmap_threshold: float = 11.5
    replacement: bool = True  # keypoint feature replacement on/off
    # Keypoint scores run from 0.5 (nothing) to 1.5 (a peak of height 1). On our trained
    # compact SimpleBaseline's val keypoints the quartiles are 0.78 / 0.88 / 0.98: the
    # thresholds save about a quarter of the keypoints and replace the weakest fifth.
    high: float = 1.0  # keypoint score above which its feature vector is saved
    low: float = 0.75  # keypoint score below which its feature vector is replaced
    blur_sigma: float = 1.0  # Gaussian blur of the normalised heatmap, heatmap pixels

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {self.capacity}")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")


def _gaussian_kernel(sigma: float) -> Tensor:
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return kernel / kernel.sum()


def keypoint_quality(heatmaps: Tensor, blur_sigma: float = 1.0) -> tuple[Tensor, Tensor]:
    """(..., K, h, w) heatmaps -> (..., K) quality scores and (..., K, 2) x, y of their maxima
    (map pixels); leading dimensions (persons of a batch) are scored in one pass.

    Each map is normalised to [0, 1], shifted by +0.5, blurred (separable Gaussian, edges
    replicated) and its maximum taken. "Normalised to [0, 1]" is read as clipping: the
    heatmap values are already confidences on that scale, so a confident clean peak (height
    1, sigma 2) scores about 1.4, a weak one (height 0.3) about 0.75 and an isolated spike
    about 0.66. A per-map min-max stretch would score every smooth map alike whatever its
    height: on our trained compact SimpleBaseline all 612 val keypoints of a video scored
    1.11-1.39 that way, so no keypoint ever fell below a low-quality threshold.
    """
    lead, (h, w) = heatmaps.shape[:-2], heatmaps.shape[-2:]
    normalised = (heatmaps.reshape(-1, 1, h, w).float().clamp(0.0, 1.0) + 0.5)
    kernel = _gaussian_kernel(blur_sigma).to(heatmaps.device)
    pad = len(kernel) // 2
    blurred = F.conv2d(F.pad(normalised, (pad, pad, 0, 0), mode="replicate"), kernel.reshape(1, 1, 1, -1))
    blurred = F.conv2d(F.pad(blurred, (0, 0, pad, pad), mode="replicate"), kernel.reshape(1, 1, -1, 1))
    best = blurred.reshape(-1, h * w).max(1)
    xy = torch.stack([best.indices % w, best.indices // w], 1)
    return best.values.reshape(lead), xy.reshape(*lead, 2)


class PersonMemory:
    """One track's stored maps and saved keypoint feature vectors.

    What is stored is the caller's: the pose memory model writes each enhanced map F~ as its
    projected memory rows (``MemoryRead.project``: W_K F~ then W_V F~ per position), so that
    a read never projects a stored map again; keypoint feature replacement acts on those
    rows exactly as on F~ (the projections are linear per position). A map may carry streams
    ``(S, C, h, w)``: with the flip test, stream 1 holds the mirrored crop's map, whose
    keypoints sit at the mirrored cells, so that the mirrored pass reads a mirrored memory.
    The caller detaches what must not be trained through (training keeps W_K / W_V's graph).
    """

    def __init__(self, policy: MemoryWritePolicy) -> None:
        self.policy = policy
        # Stored maps in the read's layout, ([S,] C, capacity, h, w), allocated at the first
        # write: ``stacked`` is a view of it, and FIFO overwrites the oldest slot (the read
        # sums over memory rows, Eq. 1-2, so their order changes nothing).
        self.ring: Tensor | None = None
        self.written = 0
        self.saved: Tensor | None = None  # (S, K, C) last high-quality vector per keypoint
        self.has_saved: Tensor | None = None  # (K,) bool

    @property
    def features(self) -> list[Tensor]:
        """The stored maps, oldest first."""
        capacity = self.policy.capacity
        first = max(self.written - capacity, 0) % capacity
        return [self.ring.select(-3, (first + i) % capacity) for i in range(min(self.written, capacity))]

    def stacked(self) -> Tensor | None:
        """(T, [S,] C, h, w) of the stored maps in slot order (a view), or None while empty."""
        if not self.written:
            return None
        return self.ring.narrow(-3, 0, min(self.written, self.policy.capacity)).movedim(-3, 0)

    def write(self, features: Tensor, heatmaps: Tensor,
              quality: tuple[Tensor, Tensor] | None = None) -> bool:
        """Refine ``features`` ((C, h, w), or (S, C, h, w) streams) by keypoint feature
        replacement and store them if the heatmap score passes the gate; returns whether
        they were stored. ``quality``: this person's ``keypoint_quality(heatmaps)`` when the
        caller scored a batch at once."""
        scores, xy = quality if quality is not None else keypoint_quality(heatmaps, self.policy.blur_sigma)
        if self.policy.replacement:  # first stage: it also saves from frames the gate drops
            streams = features if features.dim() == 4 else features[None]
            streams = self._replace(streams, scores, xy, heatmaps.shape[-2:])
            features = streams if features.dim() == 4 else streams[0]
        if float(scores.sum()) <= self.policy.heatmap_threshold:
            return False
        if self.ring is None:
            self.ring = features.new_empty((*features.shape[:-2], self.policy.capacity, *features.shape[-2:]))
        # In place also in training: the read copies out of the ring, which saves no tensor
        # for the backward pass, so a later write leaves earlier reads' gradients intact.
        self.ring.select(-3, self.written % self.policy.capacity).copy_(features)
        self.written += 1
        return True

    def _replace(self, features: Tensor, scores: Tensor, xy: Tensor, map_size: torch.Size) -> Tensor:
        """Keypoint feature replacement on (S, C, h, w): save high-quality keypoints' vectors,
        put the saved ones back at low-quality keypoints (out of place, so that a training
        graph through the stored rows stays valid)."""
        num_streams, channels, height, width = features.shape
        if self.saved is None or self.saved.shape[0] != num_streams:
            self.saved = features.new_zeros(num_streams, len(scores), channels)
            self.has_saved = torch.zeros(len(scores), dtype=torch.bool, device=features.device)
        # Heatmap pixel -> feature-map cell on the same relative grid; the mirrored stream's
        # cell of a keypoint is the mirror image of it.
        scale = torch.tensor([width / map_size[1], height / map_size[0]], device=xy.device)
        x, y = (xy.float() * scale).floor().long().unbind(1)
        cells = (torch.stack([x, width - 1 - x])[:num_streams] + width * y).to(features.device)
        flat = features.flatten(2)  # (S, C, h w)
        at_keypoints = flat.gather(2, cells[:, None, :].expand(-1, channels, -1))  # (S, C, K)
        high = (scores > self.policy.high).to(features.device)
        self.saved = torch.where(high[None, :, None], at_keypoints.transpose(1, 2), self.saved)
        self.has_saved = self.has_saved | high
        low = (scores < self.policy.low).to(features.device) & self.has_saved
        if not bool(low.any()):
            return features
        chosen = low.nonzero().squeeze(1)
        streams = torch.arange(num_streams, device=features.device)[:, None].expand(-1, len(chosen))
        rows = flat.transpose(1, 2).index_put((streams, cells[:, chosen]), self.saved[:, chosen])
        return rows.transpose(1, 2).reshape(features.shape)
