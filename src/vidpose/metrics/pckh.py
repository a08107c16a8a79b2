"""PCKh: the share of joints predicted within a fraction of the head size of the ground truth.

Andriluka et al. (MPII, CVPR 2014); PoseTrack's per-frame pose metric uses the same
normaliser, 0.6 x the head-box diagonal (poseval). A joint counts when it is labelled in the
ground truth (v > 0), its slot is annotated in the dataset's schema and the person has a
head size; it is correct when ``||pred - gt|| <= threshold * head_size``. ``total`` pools
all counted joints (MPII's "total"), ``per_joint`` is per keypoint slot (NaN where no joint
counted).

Samples are keyed by a per-person id and de-duplicated at compute time, so the repeated
samples with which DistributedSampler pads the last batch of a rank cannot change the
result: 2 processes give exactly what 1 gives.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


class PCKh(Metric):
    """PCKh@threshold over persons identified by ``ids``; ``compute`` gives percentages."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, threshold: float = 0.5, num_joints: int = 17,
                 annotated_mask: Sequence[bool] | np.ndarray | Tensor | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threshold = float(threshold)
        self.num_joints = int(num_joints)
        mask = (torch.ones(num_joints, dtype=torch.bool) if annotated_mask is None
                else torch.as_tensor(np.asarray(annotated_mask), dtype=torch.bool))
        if mask.shape != (num_joints,):
            raise ValueError(f"annotated_mask must have shape ({num_joints},), got {tuple(mask.shape)}")
        self.register_buffer("annotated_mask", mask, persistent=False)
        self.add_state("ids", default=[], dist_reduce_fx="cat")
        self.add_state("correct", default=[], dist_reduce_fx="cat")
        self.add_state("valid", default=[], dist_reduce_fx="cat")

    def update(self, pred: Tensor, gt: Tensor, head_size: Tensor, ids: Tensor) -> None:
        """pred (B, K, 2|3) and gt (B, K, 3) in image pixels, head_size (B,), ids (B,) int64."""
        batch = gt.shape[0]
        if gt.shape != (batch, self.num_joints, 3) or pred.shape[:2] != (batch, self.num_joints) \
                or pred.shape[2] not in (2, 3):
            raise ValueError(f"expected pred (B, {self.num_joints}, 2|3) and gt "
                             f"(B, {self.num_joints}, 3), got {tuple(pred.shape)} and {tuple(gt.shape)}")
        if head_size.shape != (batch,) or ids.shape != (batch,):
            raise ValueError(f"expected head_size and ids of shape ({batch},), got "
                             f"{tuple(head_size.shape)} and {tuple(ids.shape)}")
        if ids.dtype != torch.int64:
            raise ValueError(f"ids must be int64, got {ids.dtype}")
        head_size = head_size.to(gt.dtype)
        distance = (pred[..., :2].to(gt.dtype) - gt[..., :2]).norm(dim=-1)
        correct = distance <= self.threshold * head_size[:, None]
        valid = (gt[..., 2] > 0) & (head_size[:, None] > 0) & self.annotated_mask.to(gt.device)
        self.ids.append(ids)
        # uint8 rather than bool: every torch.distributed backend can gather it.
        self.correct.append(correct.to(torch.uint8))
        self.valid.append(valid.to(torch.uint8))

    def compute(self) -> dict[str, Any]:
        """{"total": percent (float), "per_joint": (K,) percent}; NaN where nothing counted."""
        if isinstance(self.ids, list) and not self.ids:
            return {"total": float("nan"),
                    "per_joint": torch.full((self.num_joints,), float("nan"))}
        ids = dim_zero_cat(self.ids)
        correct, valid = dim_zero_cat(self.correct).bool(), dim_zero_cat(self.valid).bool()
        unique, inverse = torch.unique(ids, return_inverse=True)
        # The first occurrence of each id stands for it; padding repeats are dropped.
        position = torch.arange(len(ids), device=ids.device)
        first = torch.full((len(unique),), len(ids), device=ids.device, dtype=torch.long)
        first = first.scatter_reduce(0, inverse, position, reduce="amin")
        hits = (correct[first] & valid[first]).sum(0).double()
        counted = valid[first].sum(0).double()
        per_joint = torch.where(counted > 0, 100.0 * hits / counted.clamp_min(1), float("nan"))
        total = 100.0 * hits.sum() / counted.sum() if counted.sum() > 0 else torch.tensor(float("nan"))
        return {"total": float(total), "per_joint": per_joint.float()}
