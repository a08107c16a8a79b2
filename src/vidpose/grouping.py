"""Associative Embedding's heuristic grouping of joint detections into persons.

Newell, Huang, Deng (NeurIPS 2017), as the official code groups (pose-ae-train,
``utils/group.py``) and as the RNN pose decoder paper describes it (Sec. 2.2), the baseline
that paper replaces with a learned decoder:

1. candidates: per joint map, the local maxima of a ``nms_kernel`` max-pool, the
   ``max_persons`` strongest, those above ``detection_threshold``;
2. joint type by joint type in a fixed order (head, shoulders, hips, elbows, wrists, knees,
   ankles: pose-ae-train's ``partOrder``), the candidates are matched to the persons grouped
   so far by the Hungarian algorithm on ``round(tag distance) * 100 - detection value`` (the
   distance to the mean tag of the person's joints; the detection value breaks ties towards
   strong detections, pose-ae-train's ``use_detection_val``); a pair counts only when the
   tag distance is below ``tag_threshold``;
3. every candidate left unmatched starts a new person, up to ``max_persons`` persons.

The tag distance is the root mean square over the tag dimensions (pose-ae-train's). A pair
at or beyond ``tag_threshold`` is forbidden in the matching itself, rather than matched and
then rejected as pose-ae-train does, so the Hungarian step pairs every candidate it can.
Joints get the quarter-pixel shift towards the higher neighbour
(:func:`vidpose.decode.quarter_shift`; ``subpixel="taylor"``: DARK's Newton step instead); a person's score is the mean detection value over
all J joints, 0 for the joints it lacks (pose-ae-train's test code).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor

from vidpose.callbacks.matching import linear_assignment
from vidpose.decode import heatmap_local_peaks, quarter_shift, taylor_shift
from vidpose.keypoints import Schema
from vidpose.pose import Pose

# pose-ae-train's partOrder by name: after the head's slots come these, in this order.
_BODY_ORDER = ("left_shoulder", "right_shoulder", "left_hip", "right_hip", "left_elbow",
               "right_elbow", "left_wrist", "right_wrist", "left_knee", "right_knee",
               "left_ankle", "right_ankle")


@dataclass(frozen=True)
class GroupingConfig:
    """Thresholds of AE's grouping (pose-ae-train's ``Params`` defaults)."""

    detection_threshold: float = 0.2
    tag_threshold: float = 1.0
    max_persons: int = 30  # candidates per joint type and persons per image
    nms_kernel: int = 3
    joint_order: tuple[int, ...] = ()  # the order joint types are grouped in; () = 0..K-1
    subpixel: str = "quarter"  # the joints' sub-pixel step: quarter_shift or taylor_shift


def ae_joint_order(schema: Schema) -> tuple[int, ...]:
    """pose-ae-train's grouping order in ``schema``: the head slots in schema order, then
    shoulders, hips, elbows, wrists, knees, ankles (COCO17: 0-6, 11, 12, 7-10, 13-16)."""
    body = [schema.index[name] for name in _BODY_ORDER if name in schema.index]
    return tuple([k for k in range(schema.num_keypoints) if k not in body] + body)


def _match_joint_type(tags: np.ndarray, values: np.ndarray, tag_sum: np.ndarray,
                      tag_count: np.ndarray, tag_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian pairs (candidate rows, person cols) of one joint type's candidates, tags
    (N, D) and detection values (N,), with the persons whose tags sum to ``tag_sum`` (P, D)
    over ``tag_count`` (P,) joints."""
    mean_tags = tag_sum / tag_count[:, None]
    distance = np.sqrt(((tags[:, None, :] - mean_tags[None]) ** 2).mean(-1))
    cost = np.round(distance) * 100.0 - values[:, None]
    return linear_assignment(np.where(distance < tag_threshold, cost, np.inf))


def _group_image(coords: np.ndarray, values: np.ndarray, valid: np.ndarray, tags: np.ndarray,
                 cfg: GroupingConfig) -> list[Pose]:
    """Persons of one image from its candidates: coords (K, M, 2), values (K, M), valid
    (K, M), tags (K, M, D), strongest candidate first in each joint type."""
    num_joints, tag_dim = coords.shape[0], tags.shape[-1]
    joints = np.zeros((0, num_joints, 3))  # x, y, detection value of each person's joints
    tag_sum, tag_count = np.zeros((0, tag_dim)), np.zeros(0)
    for k in cfg.joint_order or range(num_joints):
        keep = valid[k]
        if not keep.any():
            continue
        found = np.concatenate([coords[k][keep], values[k][keep, None]], -1)  # (N, 3)
        found_tags = tags[k][keep]
        rows = cols = np.zeros(0, dtype=np.int64)
        if len(joints):
            rows, cols = _match_joint_type(found_tags, found[:, 2], tag_sum, tag_count,
                                           cfg.tag_threshold)
        joints[cols, k] = found[rows]
        tag_sum[cols] += found_tags[rows]
        tag_count[cols] += 1
        # Unmatched candidates start persons, strongest first, while there is room.
        new = np.setdiff1d(np.arange(len(found)), rows)[: cfg.max_persons - len(joints)]
        started = np.zeros((len(new), num_joints, 3))
        started[:, k] = found[new]
        joints = np.concatenate([joints, started])
        tag_sum = np.concatenate([tag_sum, found_tags[new]])
        tag_count = np.concatenate([tag_count, np.ones(len(new))])
    return [Pose(person, score=float(person[:, 2].mean())) for person in joints]


def group_batch(heatmaps: Tensor, tags: Tensor, cfg: GroupingConfig) -> list[list[Pose]]:
    """AE grouping of each image of a batch: heatmaps (B, K, h, w), tags (B, K, h, w, D).

    Returns per image its persons, keypoints (K, 3) x, y in heatmap pixels and detection
    value (0, 0, 0 for a joint the person lacks), ``Pose.score`` the mean detection value.
    Candidates, their tags and sub-pixel shifts are found for the whole batch at once; the
    matching runs joint type by joint type per image.
    """
    heatmaps, tags = heatmaps.detach().float(), tags.detach().float()
    if tags.shape[:4] != heatmaps.shape or tags.dim() != 5:
        raise ValueError(f"tags {tuple(tags.shape)} do not fit heatmaps "
                         f"{tuple(heatmaps.shape)}: expected (B, K, h, w, D)")
    coords, values, valid = heatmap_local_peaks(heatmaps, cfg.detection_threshold,
                                                cfg.max_persons, cfg.nms_kernel)
    width = heatmaps.shape[-1]
    index = (coords[..., 1] * width + coords[..., 0]).long()  # (B, K, M)
    flat_tags = tags.flatten(2, 3)  # (B, K, h*w, D)
    found_tags = flat_tags.gather(2, index[..., None].expand(-1, -1, -1, tags.shape[-1]))
    shift = taylor_shift if cfg.subpixel == "taylor" else quarter_shift
    refined = coords + shift(heatmaps, coords)
    arrays = [t.cpu().numpy().astype(np.float64) for t in (refined, values, found_tags)]
    valid_np = valid.cpu().numpy()
    return [_group_image(arrays[0][b], arrays[1][b], valid_np[b], arrays[2][b], cfg)
            for b in range(heatmaps.shape[0])]


def group_poses(heatmaps: Tensor, tags: Tensor, cfg: GroupingConfig) -> list[Pose]:
    """AE grouping of one image: heatmaps (K, h, w), tags (K, h, w) or (K, h, w, D); see
    :func:`group_batch`."""
    if tags.dim() == 3:
        tags = tags.unsqueeze(-1)
    return group_batch(heatmaps[None], tags[None], cfg)[0]
