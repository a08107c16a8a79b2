"""Every data module's samples have exactly the keys of their TypedDict (the batch type)."""
from __future__ import annotations

from typing import get_type_hints

import pytest

from vidpose.data_modules.boxes import BoxDataModule, BoxSample
from vidpose.data_modules.clips import ClipDataModule
from vidpose.data_modules.crops import CropDataModule, CropSample
from vidpose.data_modules.frames import ClipSample, FrameDataModule, FrameSample, MemoryMapsClipSample
from vidpose.data_modules.pairs import PairDataModule, PairSample
from vidpose.data_modules.sequences import SequenceDataModule
from vidpose.data_modules.track_clips import TrackClipDataModule, TrackClipSample, VideoSample

MEMORY_MAPS = {"clip_length": 2, "val_clip_stride": 2, "map_augmentation": {"baits": 2.0}}


@pytest.mark.parametrize("module_cls, root, overrides, train_type, val_type", [
    (CropDataModule, "posetrack_root", {}, CropSample, CropSample),
    (BoxDataModule, "posetrack_root", {}, BoxSample, BoxSample),
    (FrameDataModule, "coco_root", {"dataset": "coco"}, FrameSample, FrameSample),
    (ClipDataModule, "posetrack_root", MEMORY_MAPS, MemoryMapsClipSample, ClipSample),
    (SequenceDataModule, "posetrack_root", {"clip_length": 2}, ClipSample, ClipSample),
    (PairDataModule, "posetrack_root", {}, PairSample, PairSample),
    (TrackClipDataModule, "posetrack_root", {"clip_length": 2}, TrackClipSample, VideoSample),
])
def test_samples_have_the_declared_keys(module_cls, root, overrides, train_type, val_type,
                                        request, data_module):
    module = data_module(module_cls, request.getfixturevalue(root), **overrides)
    assert set(module.train_set[0]) == set(get_type_hints(train_type))
    assert set(module.val_set[0]) == set(get_type_hints(val_type))
