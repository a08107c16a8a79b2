"""Crowdedness of a video: the average number of persons per labelled frame.

The pose temporal memory paper (Wang et al., Sec. 3.2) measures how crowded a video is by
"the average number of appearance people" in it, and splits the videos above 8 off the
PoseTrack18 validation set as its crowd subset (Table 2): there CoDA, which learns
dissimilarity, beats vanilla attention on occluded keypoints. A person here is a ground
truth pose that is not a crowd region and has at least one labelled keypoint; only labelled
frames count, so sparsely labelled videos are not diluted by their empty frames.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from vidpose.errors import ConfigError
from vidpose.pose import PoseDataset


def persons_per_frame(data: PoseDataset) -> dict[str, float]:
    """Per video (``PoseDataset.videos`` names): mean persons over its labelled frames,
    0.0 for a video without a labelled frame."""
    out = {}
    for name, frames in data.videos().items():
        counts = [sum(not pose.iscrowd and pose.num_visible > 0 for pose in frame.poses)
                  for frame in frames if frame.is_labeled]
        out[name] = float(np.mean(counts)) if counts else 0.0
    return out


def crowd_videos(data: PoseDataset, threshold: float) -> list[str]:
    """The videos with strictly more than ``threshold`` persons per frame (the paper: 8)."""
    return [name for name, mean in persons_per_frame(data).items() if mean > threshold]


def video_subset(data: PoseDataset, videos: Iterable[str]) -> PoseDataset:
    """The frames of ``videos`` only, in their original order; an unknown name is refused."""
    wanted = set(videos)
    groups = data.videos()
    unknown = sorted(wanted - groups.keys())
    if unknown:
        raise ConfigError(f"videos {unknown} are not among the {len(groups)} videos of "
                          f"{data.source or 'the data set'}")
    keep = {id(frame) for name in wanted for frame in groups[name]}
    return PoseDataset([frame for frame in data.frames if id(frame) in keep], data.schema,
                       data.image_root, data.source)
