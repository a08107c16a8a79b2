"""The data modules on the synthetic world, through the same layouts as real data."""
from __future__ import annotations

import numpy as np
import pytest

from vidpose.data_modules.clips import ClipDataModule
from vidpose.data_modules.config import DataConfig
from vidpose.data_modules.crops import CropDataModule
from vidpose.data_modules.frames import FrameDataModule
from vidpose.data_modules.sources import load_split
from vidpose.data_modules.transforms import apply_affine

AUGMENT = {"flip": 0.5, "rotation": 30.0, "scale": 0.25}


@pytest.mark.parametrize("layout, splits", [("posetrack18", ("train", "val")), ("coco", ("train", "val")),
                                            ("ochuman", ("val", "val"))])
def test_every_layout_gives_crops_and_frames(tiny_synth, data_module, layout, splits):
    options = {"train_split": splits[0], "val_split": splits[1], "augment": AUGMENT}
    crops = data_module(CropDataModule, tiny_synth / layout, layout, **options)
    assert len(crops.train_set) > 0 and len(crops.val_set) > 0
    sample = crops.val_set[len(crops.val_set) // 2]
    gt = sample["gt_keypoints"].numpy()
    present = gt[:, 2] > 0
    back = apply_affine(sample["keypoints"].numpy()[present, :2], sample["crop_to_image"].numpy())
    np.testing.assert_allclose(back, gt[present, :2], atol=1e-3)
    frames = data_module(FrameDataModule, tiny_synth / layout, layout, **options)
    batch = next(iter(frames.train_dataloader()))
    assert batch["heatmaps"].amax() > 0.5 and batch["person_mask"].sum() > 0
    assert (batch["num_persons"] > 0).any()


def test_synthetic_clips_and_detections(tiny_synth, data_module):
    root = tiny_synth / "posetrack18"
    # Validation videos are labelled every k-th frame: clips step over the gaps.
    val = load_split(DataConfig(root=str(root)), "val")
    step = min(int(np.diff([f.frame_index for f in frames if f.is_labeled]).min())
               for frames in val.videos().values())
    clips = data_module(ClipDataModule, root, clip_length=2, augment=AUGMENT, val_clip_stride=step)
    sample = clips.train_set[0]
    assert sample["image"].shape[0] == 2 and (sample["track_ids"] >= 0).sum() == sample["num_persons"][0]
    detections = data_module(CropDataModule, root, stage="validate", box_source="detections")
    assert len(detections.val_set) > 0
    assert {int(detections.val_set[i]["person"]) for i in range(len(detections.val_set))} == {-1}
