"""Pose temporal memory data (Wang et al.): clips of one track's crops, and whole videos.

The pose temporal memory holds the features of one person instance over the past frames of
a video, and its read operation (Eq. 1-3) aggregates them into the current frame's feature.
For the read to be learned, training samples are clips of ``clip_length`` top-down crops of
the *same track*, in frame order: the method writes the earlier frames into the memory and
reads it for the later ones. Each frame is cropped around that frame's own person box, with
one geometric augmentation draw (scale, rotation, flip) shared by the whole clip so the
memory sees one consistent view, and photometric noise drawn per frame. Each sample also
carries its video's crowdedness (:mod:`vidpose.crowd`), which picks CoDA or vanilla attention.

Validation runs the paper's online pipeline (detect, crop, read, write, track) video by
video, so a validation item is a video: the method walks ``VideoDataset.videos[i]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from vidpose.codec import HeatmapCodec
from vidpose.crowd import persons_per_frame
from vidpose.data_modules.clips import clip_windows
from vidpose.data_modules.config import DataConfig
from vidpose.data_modules.crops import person_box
from vidpose.data_modules.datasets import PoseDataModule, WorkerSeeded, evenly_spaced, read_image
from vidpose.data_modules.transforms import CropTransform, normalize
from vidpose.errors import ConfigError
from vidpose.pose import PoseDataset


@dataclass(frozen=True)
class TrackClip:
    """One track followed through one window of labelled frames."""

    frames: tuple[int, ...]  # indices into the PoseDataset's frames, in time order
    persons: tuple[int, ...]  # the track's pose index within each of those frames
    track_id: int


def track_clips(data: PoseDataset, length: int, stride: int) -> list[TrackClip]:
    """Every (window, track) with the track labelled in all the window's frames.

    Windows are :func:`clip_windows`' (``length`` labelled frames ``stride`` apart in one
    video, which refuse a labelled person without a track id); a labelled pose always has a
    :func:`person_box`. Crowd regions are no track.
    """
    return [TrackClip(window.frames, tuple(int(p) for p in persons), int(track_id))
            for window in clip_windows(data, length, stride)
            for persons, track_id in zip(window.rows.T, window.track_ids)
            if (persons >= 0).all() and not any(
                data.frames[f].poses[p].iscrowd for f, p in zip(window.frames, persons))]


class TrackClipSample(TypedDict):
    """One track's crops in T frames; a collated batch adds a leading B dim."""

    image: Tensor  # float32 (T, 3, H, W), normalised
    heatmaps: Tensor  # float32 (T, K, H/s, W/s)
    target_weight: Tensor  # float32 (T, K)
    keypoints: Tensor  # float32 (T, K, 3) in crop pixels
    crop_to_image: Tensor  # float64 (T, 2, 3)
    frame: Tensor  # int64 (T,): indices into the PoseDataset's frames
    track_id: Tensor  # int64 ()
    persons_per_frame: Tensor  # float32 (): the video's crowdedness


class TrackClipDataset(Dataset, WorkerSeeded):
    """Training clips of one track's crops with SimpleBaseline's targets per frame."""

    def __init__(self, data: PoseDataset, clips: list[TrackClip], cfg: DataConfig) -> None:
        self.data = data
        self.clips = clips
        self.schema = data.schema
        self.codec = HeatmapCodec.from_data(cfg)
        self.transform = CropTransform(self.codec.input_size, self.schema, cfg.box_padding,
                                       cfg.augment)
        self.annotated = torch.from_numpy(self.schema.annotated_mask)
        crowdedness = persons_per_frame(data)
        video_of = {id(frame): name for name, frames in data.videos().items() for frame in frames}
        self.crowdedness = [crowdedness[video_of[id(data.frames[clip.frames[0]])]]
                            for clip in clips]

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> TrackClipSample:
        self.reseed(self.transform.photometric)
        clip = self.clips[index]
        params = self.transform.draw()  # one geometric draw for every frame of the clip
        crops = []
        for frame_index, person in zip(clip.frames, clip.persons):
            frame = self.data.frames[frame_index]
            pose = frame.poses[person]
            crops.append(self.transform(read_image(self.data, frame), person_box(pose),
                                        pose.keypoints, params=params))
        keypoints = torch.from_numpy(np.stack([crop.keypoints for crop in crops])).float()
        heatmaps, target_weight = self.codec.encode(keypoints, self.annotated)
        return {
            "image": normalize(np.stack([crop.image for crop in crops])),
            "heatmaps": heatmaps,
            "target_weight": target_weight,
            "keypoints": keypoints,
            "crop_to_image": torch.from_numpy(np.stack([crop.crop_to_image for crop in crops])),
            "frame": torch.tensor(clip.frames, dtype=torch.int64),
            "track_id": torch.tensor(clip.track_id, dtype=torch.int64),
            "persons_per_frame": torch.tensor(self.crowdedness[index], dtype=torch.float32),
        }


class VideoSample(TypedDict):
    video: Tensor  # int64 (): index into VideoDataset.videos and .names; batches of one


class VideoDataset(Dataset):
    """Validation: one item per video. ``videos[i]`` lists its frame indices into
    ``data.frames`` in frame order, labelled or not: the online pipeline decides which frames
    it runs on and scores. ``max_videos`` keeps that many videos spread over the split."""

    def __init__(self, data: PoseDataset, max_videos: int | None = None) -> None:
        self.data = data
        groups = data.videos()
        position = {id(frame): i for i, frame in enumerate(data.frames)}
        names = list(groups)
        self.names: list[str] = [names[i] for i in evenly_spaced(len(names), max_videos)]
        self.videos: list[list[int]] = [[position[id(frame)] for frame in groups[name]]
                                        for name in self.names]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> VideoSample:
        index = range(len(self.names))[index]  # IndexError past the end ends iteration
        return {"video": torch.tensor(index, dtype=torch.int64)}


class TrackClipDataModule(PoseDataModule):
    """Pose temporal memory: track clips for training, whole videos (batch size 1) for
    validation."""

    def make_dataset(self, data: PoseDataset, split: str,
                     train: bool) -> TrackClipDataset | VideoDataset:
        cfg = self.cfg
        if not train:
            return VideoDataset(data, cfg.max_val_samples)
        clips = track_clips(data, cfg.clip_length, cfg.clip_stride)
        if not clips:
            raise ConfigError(f"no track labelled in {cfg.clip_length} frames {cfg.clip_stride} "
                              f"apart in split {split!r} of {data.source}; lower "
                              f"data.clip_length or set data.clip_stride to the split's "
                              f"labelling step")
        return TrackClipDataset(data, self.spread(clips, train), cfg)

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:
            raise RuntimeError("call setup() before asking for a dataloader")
        return DataLoader(self.val_set, batch_size=1, shuffle=False)
