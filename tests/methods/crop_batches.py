"""A hand-made crop data module with the crop batch keys, for the method tests.

A module of its own (not conftest) so that DDP-spawned processes can import it by name.

Two PoseTrack18 videos of three frames (one frame unlabelled), persons with head boxes and
track ids, crops related to the image by known affines, and heatmap targets rendered by
``vidpose.targets`` at stride 4. Images are noise: the tests that need meaningful heatmaps
use an oracle that returns the targets.
"""
from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from vidpose.keypoints import POSETRACK18
from vidpose.pose import Frame, Pose, PoseDataset
from vidpose.targets import render_heatmaps

INPUT_SIZE = (64, 48)  # h, w
STRIDE = 4
SIGMA = 1.5
DATA = {"input_size": list(INPUT_SIZE), "heatmap_stride": STRIDE, "sigma": SIGMA}
SMALL_MODEL = {"resnet": "resnet18", "deconv_filters": 16}


def _person(rng: np.random.Generator, origin: np.ndarray, track_id: int) -> Pose:
    """A person inside the 96 x 128 image region at ``origin`` (what one crop covers)."""
    keypoints = np.zeros((17, 3))
    keypoints[:, 0] = origin[0] + rng.uniform(12, 80, 17)  # clear of the heatmap border
    keypoints[:, 1] = origin[1] + rng.uniform(12, 112, 17)
    keypoints[:, 2] = 2.0
    keypoints[POSETRACK18.indices(["left_ear", "right_ear"])] = 0.0
    keypoints[POSETRACK18.index["left_knee"], 2] = 0.0  # one joint not labelled
    head = np.array([keypoints[2, 0] - 10, keypoints[2, 1] - 10, 20.0, 20.0])
    return Pose(keypoints, box=np.array([*origin, 96.0, 128.0]), track_id=track_id, head_box=head)


def make_dataset(seed: int = 0) -> PoseDataset:
    rng = np.random.default_rng(seed)
    frames = []
    for v, video in enumerate(("v1", "v2")):
        for i in range(3):
            labelled = not (video == "v1" and i == 1)
            poses = ([_person(rng, np.array([20.0, 10.0]), 1), _person(rng, np.array([200.0, 30.0]), 2)]
                     if labelled else [])
            frames.append(Frame(image_id=100 * (v + 1) + i, file_name=f"images/val/{video}/{i:06d}.jpg",
                                width=400, height=300, poses=poses, video=video, frame_index=i,
                                is_labeled=labelled))
    return PoseDataset(frames, POSETRACK18, "/nowhere")


def crop_sample(dataset: PoseDataset, frame: int, person: int, shift: float = 0.0,
                detection: bool = False) -> dict[str, torch.Tensor]:
    """One crop batch entry: the person's box region at half resolution (image = 2 x crop).

    ``detection`` makes it a detection-box crop (no GT attached, person -1); ``shift`` moves
    the box by that many image pixels.
    """
    pose = dataset.frames[frame].poses[person]
    origin = pose.box[:2] + shift
    crop_to_image = np.array([[2.0, 0.0, origin[0]], [0.0, 2.0, origin[1]]])
    crop_kps = pose.keypoints.copy()
    crop_kps[:, :2] = (pose.keypoints[:, :2] - origin) / 2.0
    weight = (crop_kps[:, 2] > 0) & POSETRACK18.annotated_mask
    on_map = crop_kps.copy()
    on_map[:, :2] /= STRIDE
    on_map[:, 2] = weight
    size = (INPUT_SIZE[0] // STRIDE, INPUT_SIZE[1] // STRIDE)
    return {
        "image": torch.randn(3, *INPUT_SIZE),
        "heatmaps": render_heatmaps(torch.from_numpy(on_map).float()[None], size, SIGMA),
        "target_weight": torch.from_numpy(weight).float(),
        "keypoints": torch.from_numpy(crop_kps).float(),
        "crop_to_image": torch.from_numpy(crop_to_image),
        "frame": torch.tensor(frame),
        "person": torch.tensor(-1 if detection else person),
        "score": torch.tensor(0.8 if detection else 1.0),
        "track_id": torch.tensor(-1 if detection else pose.track_id),
        "gt_keypoints": torch.from_numpy(np.zeros((17, 3)) if detection else pose.keypoints).float(),
        "head_size": torch.tensor(0.0 if detection else 0.6 * float(np.hypot(20, 20))),
    }


class HandCropDataModule(L.LightningDataModule):
    """GT crops of every labelled person, plus two overlapping detection crops of one person.

    ``repeat_first`` appends a copy of the first crop, as DistributedSampler pads a rank.
    """

    def __init__(self, batch_size: int = 3, repeat_first: bool = False) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.val_data = make_dataset()
        self.samples = [crop_sample(self.val_data, f, p)
                        for f, frame in enumerate(self.val_data.frames) for p in range(len(frame.poses))]
        self.samples += [crop_sample(self.val_data, 3, 0, shift=0.0, detection=True),
                         crop_sample(self.val_data, 3, 0, shift=1.0, detection=True)]
        if repeat_first:
            self.samples.append(self.samples[0])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.samples, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.samples, batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
