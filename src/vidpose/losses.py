"""Every method's training loss, each citing its paper; a method never imports another method
for its loss. This module sits below the methods (it imports torch and ``vidpose.nn`` only).
The RNN pose decoder's Hungarian-matched loss keeps its own module,
:mod:`vidpose.methods.rnn_loss`: a matcher and a chunking state machine, not a formula.
"""
from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from vidpose.nn.hourglass import split_maps


def _masked_mean(values: Tensor, counted: Tensor) -> Tensor:
    """Mean of ``values`` over the ``counted`` ones (0 with none, graph kept)."""
    weight = counted.to(values.dtype)
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


def _joint_losses(heatmaps: Tensor, target: Tensor, target_weight: Tensor) -> Tensor:
    """(B, K): 0.5 x the per-joint mean squared error of the target-weighted heatmaps; its
    mean over all joints is :func:`joints_mse_loss`."""
    weight = target_weight[:, :, None, None].to(heatmaps.dtype)
    return 0.5 * ((heatmaps - target) * weight).pow(2).mean(dim=(-2, -1))


def joints_mse_loss(heatmaps: Tensor, target: Tensor, target_weight: Tensor) -> Tensor:
    """0.5 x the mean squared error of the target-weighted heatmaps (the official JointsMSELoss
    of SimpleBaseline, Xiao et al., ECCV 2018).

    A joint with weight 0 (unlabelled, outside the crop) contributes nothing to the sum; the
    mean still runs over all joints, as in the official code.
    """
    return _joint_losses(heatmaps, target, target_weight).mean()


def cpn_loss(global_heatmaps: list[Tensor], refined: Tensor, target: Tensor,
             target_weight: Tensor, hard_keypoints: int = 8) -> Tensor:
    """GlobalNet L2 on all joints at every level + RefineNet L2 with online hard keypoint mining
    (CPN, Chen et al., CVPR 2018).

    Each GlobalNet level adds the SimpleBaseline's ``joints_mse_loss`` (0.5 x MSE, weight-0
    joints contribute nothing). The paper gives each level a Gaussian of its own width; here
    every level is trained on the one ``target``. The RefineNet term is, per sample, the mean
    of the ``hard_keypoints`` largest per-joint losses among the labelled joints (weight > 0;
    all of them when fewer are labelled, nothing from a sample with none), averaged over the
    batch, so that training concentrates on the joints still predicted badly.
    """
    if hard_keypoints < 1:
        raise ValueError(f"hard_keypoints must be at least 1, got {hard_keypoints}")
    global_loss = torch.stack([joints_mse_loss(h, target, target_weight)
                               for h in global_heatmaps]).sum()
    joint = _joint_losses(refined, target, target_weight)
    # Unlabelled joints rank below every labelled one and are then left out of the mean.
    ranked = joint.masked_fill(target_weight <= 0, float("-inf"))
    hardest = ranked.topk(min(hard_keypoints, joint.shape[1]), dim=1).values
    picked = torch.isfinite(hardest)
    per_sample = torch.where(picked, hardest, 0.0).sum(1) / picked.sum(1).clamp(min=1)
    return global_loss + per_sample.mean()


def heatmap_bce_loss(logits: Tensor, target: Tensor, target_weight: Tensor) -> Tensor:
    """Binary cross-entropy of (B, K, h, w) heatmap logits against Gaussian targets, each
    joint's map weighted by ``target_weight`` (B, K); the mean runs over every pixel of every
    joint (weight-0 joints add zeros), as SimpleBaseline's MSE does. The two-stage
    estimator's heatmap loss (Rafi et al., ECCV 2020, appendix 0.A.1)."""
    weight = target_weight[:, :, None, None].to(logits.dtype).expand_as(logits)
    return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), weight=weight)


def offset_l1_loss(offsets: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean absolute error of the (B, K, 2, h, w) offsets over the components of the cells
    in ``mask`` (B, K, h, w); 0 when no cell is masked. The two-stage estimator's joint
    offset loss (Rafi et al., ECCV 2020, appendix 0.A.1, the deltas of Eq. 7)."""
    error = (offsets - target.to(offsets.dtype)).abs()
    return _masked_mean(error, mask[:, :, None].expand_as(offsets))


STM_MAP_LOSSES = ("focal", "mse", "cc")  # model.loss of STM-skeletons (Tables 1-2)


def stm_focal_loss(logits: Tensor, target: Tensor, gamma: float = 2.0) -> Tensor:
    """Binary focal loss with soft targets (Lin et al. 2017, the form for continuous maps):
    ``-[t (1-p)^g log p + (1-t) p^g log(1-p)]``, mean over pixels. STM-skeletons' "Focal
    Loss" (Dufour et al., Tables 1-3)."""
    p = torch.sigmoid(logits)
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    loss = -(target * (1 - p).pow(gamma) * log_p + (1 - target) * p.pow(gamma) * log_not_p)
    return loss.mean()


def correlation_loss(logits: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    """1 - Pearson correlation coefficient of each map with its target, mean over maps
    (STM-skeletons' "CC-Loss", Dufour et al., Table 1)."""
    p = torch.sigmoid(logits).flatten(2)
    t = target.flatten(2)
    p, t = p - p.mean(-1, keepdim=True), t - t.mean(-1, keepdim=True)
    cc = (p * t).sum(-1) / (p.norm(dim=-1) * t.norm(dim=-1) + eps)
    return (1 - cc).mean()


def map_loss(name: str, logits: Tensor, target: Tensor, gamma: float) -> Tensor:
    """The STM map loss ``name`` (one of :data:`STM_MAP_LOSSES`) of logits against maps."""
    if name == "focal":
        return stm_focal_loss(logits, target, gamma)
    if name == "mse":
        return F.mse_loss(torch.sigmoid(logits), target)
    return correlation_loss(logits, target)


class CenterNetWeights(Protocol):
    """The fields of ``CenterNetConfig`` that :func:`centernet_loss` reads."""

    focal_alpha: float
    focal_beta: float
    size_weight: float
    offset_weight: float


def centernet_focal_loss(logits: Tensor, target: Tensor, alpha: float = 2.0,
                         beta: float = 4.0) -> Tensor:
    """CornerNet's penalty-reduced pixel-wise focal loss (CenterNet Eq. 1).

    Pixels where ``target`` is exactly 1 are centres: ``-(1 - p)^alpha log p``; every other
    pixel is background, its penalty reduced near a centre: ``-(1 - y)^beta p^alpha
    log(1 - p)``. The sum is divided by the number of centres (by 1 when there is none).
    ``p`` is clamped to [1e-4, 1 - 1e-4] as in CenterNet's code, which bounds the loss.
    """
    p = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    target = target.float()
    centre = target.eq(1).float()
    positive = torch.log(p) * (1 - p) ** alpha * centre
    negative = torch.log(1 - p) * p ** alpha * (1 - target) ** beta * (1 - centre)
    return -(positive.sum() + negative.sum()) / centre.sum().clamp_min(1.0)


def gather_at(maps: Tensor, index: Tensor) -> Tensor:
    """Values of (B, C, h, w) ``maps`` at flat cells ``index`` (B, P): (B, P, C). The
    regression losses read the centres this way, and CenterNet's decoding its peaks."""
    flat = maps.flatten(2)
    return flat.gather(2, index[:, None, :].expand(-1, flat.shape[1], -1)).transpose(1, 2)


def center_l1(maps: Tensor, index: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """L1 between the (B, 2, h, w) regression maps at the centres and the (B, P, 2) targets,
    averaged over the masked persons' coordinates (CenterNet's RegL1Loss, Eq. 2 and 3)."""
    weight = mask[..., None].expand_as(target).float()
    error = (gather_at(maps.float(), index) - target.float()).abs() * weight
    return error.sum() / (weight.sum() + 1e-4)


def centernet_loss(outputs: dict[str, Tensor], batch: dict[str, Tensor],
                   cfg: CenterNetWeights) -> dict[str, Tensor]:
    """The three losses and their weighted sum ``loss``: L_k + size_weight L_size +
    offset_weight L_off (0.1 and 1 in the paper, CenterNet Eq. 4)."""
    losses = {
        "heatmap_loss": centernet_focal_loss(outputs["heatmap"], batch["heatmap"],
                                             cfg.focal_alpha, cfg.focal_beta),
        "size_loss": center_l1(outputs["size"], batch["index"], batch["size"], batch["mask"]),
        "offset_loss": center_l1(outputs["offset"], batch["index"], batch["offset"], batch["mask"]),
    }
    losses["loss"] = (losses["heatmap_loss"] + cfg.size_weight * losses["size_loss"]
                      + cfg.offset_weight * losses["offset_loss"])
    return losses


class AELossWeights(Protocol):
    """The fields of ``AssocEmbeddingConfig`` that :func:`ae_loss` reads."""

    tag_dim: int
    heatmap_weight: float
    pull_weight: float
    push_weight: float


def keypoint_cells(keypoints: Tensor, stride: int, size: tuple[int, int]) -> Tensor:
    """Flat heatmap cell (B, P, K) of each keypoint in input pixels: the nearest cell to
    ``x / stride`` (where its Gaussian peaks), clamped to the map."""
    height, width = size
    x = torch.round(keypoints[..., 0] / stride).long().clamp(0, width - 1)
    y = torch.round(keypoints[..., 1] / stride).long().clamp(0, height - 1)
    return y * width + x


def tag_losses(tags: Tensor, cells: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
    """AE's pull and push losses (Newell et al., NeurIPS 2017, the grouping loss L_g),
    averaged over the batch.

    tags (B, K, h, w, D); cells (B, P, K) flat cells of the keypoints; present (B, P, K)
    the labelled keypoints. Pull: per image, the mean over persons of the mean over joints
    of the squared deviation (averaged over tag dimensions) from the person's mean tag.
    Push: per image, the mean over ordered pairs of distinct persons of
    ``exp(-||ref_n - ref_n'||^2 / 2)``. An image with no person (pull) or fewer than two
    (push) adds 0.
    """
    batch, num_persons, num_joints = cells.shape
    flat = tags.flatten(2, 3)  # (B, K, h*w, D)
    index = cells.transpose(1, 2)[..., None].expand(-1, -1, -1, flat.shape[-1])
    joint_tags = flat.gather(2, index).transpose(1, 2)  # (B, P, K, D)
    mask = present.to(tags.dtype)
    count = mask.sum(-1)  # (B, P)
    is_person = count > 0
    reference = (joint_tags * mask[..., None]).sum(2) / count.clamp_min(1)[..., None]
    deviation = ((joint_tags - reference[:, :, None]) ** 2).mean(-1)  # (B, P, K)
    person_pull = (deviation * mask).sum(-1) / count.clamp_min(1)
    persons = is_person.sum(-1).to(tags.dtype)
    pull = (person_pull * is_person).sum(-1) / persons.clamp_min(1)
    distance2 = ((reference[:, :, None] - reference[:, None]) ** 2).sum(-1)  # (B, P, P)
    distinct = ~torch.eye(num_persons, dtype=torch.bool, device=tags.device)
    pairs = (is_person[:, :, None] & is_person[:, None] & distinct).to(tags.dtype)
    push = (torch.exp(-distance2 / 2) * pairs).sum((1, 2)) / pairs.sum((1, 2)).clamp_min(1)
    return pull.mean(), push.mean()


def ae_loss(outputs: list[Tensor], batch: dict[str, Tensor], cfg: AELossWeights,
            stride: int) -> dict[str, Tensor]:
    """``heatmap_loss``, ``pull_loss``, ``push_loss`` (each summed over stacks: intermediate
    supervision) and their weighted sum ``loss`` (Associative Embedding, Newell et al.);
    keypoints in input pixels, ``stride`` input pixels per cell."""
    target = batch["heatmaps"].float()
    keypoints = batch["keypoints"].float()
    num_joints = target.shape[1]
    rows = torch.arange(keypoints.shape[1], device=keypoints.device)
    present = (keypoints[..., 2] > 0) & (rows[None, :, None] < batch["num_persons"][:, None, None])
    cells = keypoint_cells(keypoints, stride, tuple(target.shape[-2:]))
    heatmap_loss = pull_loss = push_loss = target.new_zeros(())
    for output in outputs:
        heatmaps, tags = split_maps(output.float(), num_joints, cfg.tag_dim)
        heatmap_loss = heatmap_loss + ((heatmaps - target) ** 2).mean()
        pull, push = tag_losses(tags, cells, present)
        pull_loss, push_loss = pull_loss + pull, push_loss + push
    return {"heatmap_loss": heatmap_loss, "pull_loss": pull_loss, "push_loss": push_loss,
            "loss": (cfg.heatmap_weight * heatmap_loss + cfg.pull_weight * pull_loss
                     + cfg.push_weight * push_loss)}


def siamese_loss(affinity: Tensor, targets: Tensor, counted: Tensor, eps: float = 1e-6) -> Tensor:
    """Eq. 4: binary cross-entropy between the softmax maps (clamped into (0, 1), since a
    softmax output can round to 0 or 1) and G, averaged over the positions of each map and
    over the ``counted`` (B, P, K) keypoints (those present in image 1)."""
    p = affinity.float().clamp(eps, 1.0 - eps)
    t = targets.float()
    bce = -(t * torch.log(p) + (1.0 - t) * torch.log1p(-p))
    return _masked_mean(bce.mean((-2, -1)), counted)


def refinement_loss(logits: Tensor, targets: Tensor, counted: Tensor) -> Tensor:
    """Eq. 5: binary cross-entropy between the refined maps (as logits) and G, averaged like
    :func:`siamese_loss`."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")
    return _masked_mean(bce.mean((-2, -1)), counted)
