"""Bottom-up samples: whole frames (and, through :mod:`clips`, windows of frames) with maps.

A sample is a window of ``T`` frames of one video (``T = 1`` for single frames) and a
fixed table of person rows: row ``j`` of frame ``t`` is one pose of that frame or empty.
Single frames list their persons; clips give each track one row for the whole window,
so that a row means the same person in every frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from vidpose.data_modules.config import DataConfig
from vidpose.data_modules.datasets import PoseDataModule, WorkerSeeded, labelled_frame_indices, read_image
from vidpose.data_modules.map_augmentation import check_map_augmentation, render_memory_maps
from vidpose.data_modules.transforms import FrameTransform, compose_affine, normalize
from vidpose.errors import ConfigError, InputError
from vidpose.pose import Frame, PoseDataset
from vidpose.targets import render_heatmaps, render_limb_maps, render_person_mask


@dataclass(frozen=True)
class Window:
    """Frames of one sample and its person rows."""

    frames: tuple[int, ...]  # indices into the PoseDataset's frames, in time order
    rows: np.ndarray  # (T, P) pose index within each frame, -1 where the row is empty
    track_ids: np.ndarray  # (P,) the track of each row (-1 when unknown)


def frame_window(data: PoseDataset, index: int) -> Window:
    """A single-frame window: one row per pose with at least one labelled keypoint."""
    poses = data.frames[index].poses
    rows = [i for i, pose in enumerate(poses) if pose.num_visible > 0]
    return Window((index,), np.array([rows], dtype=np.int64).reshape(1, -1),
                  np.array([poses[i].track_id for i in rows], dtype=np.int64))


def check_max_persons(windows: list[Window], data: PoseDataset, max_persons: int) -> None:
    """Refuse up front, not mid-epoch, a window with more person rows than ``max_persons``."""
    for window in windows:
        if window.rows.shape[1] > max_persons:
            frame = data.frames[window.frames[0]]
            raise ConfigError(f"data.max_persons={max_persons} is too small: image "
                              f"{frame.image_id} ({frame.file_name}) of {data.source} needs "
                              f"{window.rows.shape[1]} person rows; raise data.max_persons")


def segmentation_mask(frame: Frame, pose_indices: list[int], source: str) -> np.ndarray | None:
    """Union of the COCO segmentations (polygons or RLE) of some poses, (H, W) uint8."""
    rles = []
    for i in pose_indices:
        pose = frame.poses[i]
        seg = pose.segmentation
        try:
            if isinstance(seg, list):
                rles.extend(mask_utils.frPyObjects(seg, frame.height, frame.width))
            elif isinstance(seg.get("counts"), list):
                rles.append(mask_utils.frPyObjects(seg, frame.height, frame.width))
            else:
                rles.append(seg)
        except (TypeError, ValueError, AttributeError, KeyError) as err:
            raise InputError(f"not a COCO polygon list or RLE: {err}", file=source,
                             record=f"annotation {pose.ann_id}", field="segmentation") from None
    if not rles:
        return None
    return mask_utils.decode(mask_utils.merge(rles, intersect=False))


def drop_outside(keypoints: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """Set absent, in place, the ``(..., K, 3)`` keypoints that lie outside the input."""
    h, w = input_size
    x, y = keypoints[..., 0], keypoints[..., 1]
    keypoints[(x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)] = 0.0
    return keypoints


class TorchRandom:
    """A torch generator that :class:`WorkerSeeded` re-seeds like an albumentations pipeline."""

    def __init__(self) -> None:
        self.generator = torch.Generator()

    def set_random_seed(self, seed: int) -> None:
        self.generator.manual_seed(seed)


@dataclass
class Views:
    """A window's frames after the geometric transform, before maps are drawn."""

    frames: list[Frame]
    images: np.ndarray  # (T, H, W, 3) uint8 at the input size
    keypoints: np.ndarray  # (T, P, K, 3) input pixels
    image_to_input: np.ndarray  # (T, 2, 3) float64


class FrameSample(TypedDict):
    """One frame; P is ``data.max_persons``; a collated batch adds a leading B dim."""

    image: Tensor  # float32 (3, H, W), normalised
    heatmaps: Tensor  # float32 (K, h, w), max over persons
    limb_maps: Tensor  # float32 (L, h, w) over schema.limbs
    person_mask: Tensor  # float32 (1, h, w): segmentations where annotated, else skeletons
    keypoints: Tensor  # float32 (P, K, 3) in input pixels, absent where they leave the input
    num_persons: Tensor  # int64 ()
    frame: Tensor  # int64 (): index into the PoseDataset's frames
    image_to_input: Tensor  # float64 (2, 3)


class ClipSample(FrameSample):
    """FrameSample's keys with a leading T dim (then B when collated), plus:"""

    track_ids: Tensor  # int64 (P,): each row's track


class MemoryMapsClipSample(ClipSample):
    """A training clip with a ``data.map_augmentation`` option on adds the maps STM-skeletons
    memorises, drawn with :mod:`map_augmentation`'s mistakes (the loss targets stay clean)."""

    memory_heatmaps: Tensor  # float32 (T, K, h, w)
    memory_limb_maps: Tensor  # float32 (T, L, h, w)


class FrameDataset(Dataset, WorkerSeeded):
    """Windows of frames with heatmaps, limb maps and person masks."""

    def __init__(self, data: PoseDataset, windows: list[Window], cfg: DataConfig, train: bool,
                 clip: bool = False) -> None:
        self.data = data
        self.windows = windows
        self.clip = clip
        self.schema = data.schema
        self.limbs = self.schema.limbs
        self.input_size = (int(cfg.input_size[0]), int(cfg.input_size[1]))
        self.stride = int(cfg.heatmap_stride)
        self.heatmap_size = (self.input_size[0] // self.stride, self.input_size[1] // self.stride)
        self.sigma, self.limb_sigma = float(cfg.sigma), float(cfg.limb_sigma)
        self.mask_width = float(cfg.mask_width)
        self.max_persons = int(cfg.max_persons)
        check_max_persons(windows, data, self.max_persons)
        self.train = train
        self.transform = FrameTransform(self.input_size, self.schema, cfg.augment if train else None)
        check_map_augmentation(maps := cfg.map_augmentation)
        # The memory frames' maps of STM-skeletons: training clips only, when an option is on.
        self.map_augmentation = maps if train and clip and maps.enabled() else None
        self.random = TorchRandom()
        # Heatmap pixel x holds input pixel x * stride (vidpose.decode.heatmap_to_crop).
        self.input_to_heatmap = np.diag([1.0 / self.stride, 1.0 / self.stride, 1.0])[:2]

    def __len__(self) -> int:
        return len(self.windows)

    def _gather(self, window: Window) -> tuple[np.ndarray, np.ndarray, list[Frame]]:
        """Images (T, H, W, 3) and row keypoints (T, P, K, 3) in image pixels."""
        frames = [self.data.frames[i] for i in window.frames]
        images = [read_image(self.data, frame) for frame in frames]
        if any(image.shape != images[0].shape for image in images):
            raise InputError(f"frames of one video differ in size: "
                             f"{[image.shape[:2] for image in images]}", file=self.data.source,
                             record=f"image {frames[0].image_id}", field="width/height")
        keypoints = np.stack([self._row_keypoints(frame, rows)
                              for frame, rows in zip(frames, window.rows)])
        return np.stack(images), keypoints, frames

    def _row_keypoints(self, frame: Frame, rows: np.ndarray) -> np.ndarray:
        """(P, K, 3) keypoints of the poses that ``rows`` picks; zeros for rows of -1."""
        table = np.zeros((len(frame.poses) + 1, self.schema.num_keypoints, 3))
        if frame.poses:
            table[:-1] = np.stack([pose.keypoints for pose in frame.poses])
        return table[rows]  # -1 picks the last entry, the empty pose

    def _person_mask(self, frame: Frame, keypoints_hm: Tensor, rows: np.ndarray,
                     image_to_input: np.ndarray) -> Tensor:
        """(1, h, w): annotated segmentations warped to the heatmap, the skeleton elsewhere."""
        has_seg = np.array([bool(pose.segmentation) for pose in frame.poses] + [False])
        skeleton = keypoints_hm.clone()
        # Rows whose pose has a segmentation are drawn from it instead (row -1: no pose).
        skeleton[torch.from_numpy(has_seg[rows]), :, 2] = 0
        with_seg = np.flatnonzero(has_seg).tolist()
        mask = render_person_mask(skeleton, self.limbs, self.heatmap_size, self.mask_width)
        seg = segmentation_mask(frame, with_seg, self.data.source)
        if seg is not None:
            to_heatmap = compose_affine(self.input_to_heatmap, image_to_input)
            h, w = self.heatmap_size
            warped = cv2.warpAffine(seg.astype(np.float32), to_heatmap, (w, h),
                                    flags=cv2.INTER_LINEAR, borderValue=0.0)
            mask = torch.maximum(mask, torch.from_numpy(warped >= 0.5).float()[None])
        return mask

    def views(self, window: Window) -> Views:
        """The window's frames and keypoints through the (augmenting) frame transform."""
        images, keypoints, frames = self._gather(window)
        sample = self.transform(images, keypoints)
        affines = np.repeat(sample.image_to_input[None], len(frames), axis=0)
        return Views(frames, sample.images, sample.keypoints, affines)

    def __getitem__(self, index: int) -> FrameSample | ClipSample:
        pipelines = [self.transform.pipeline] if self.transform.pipeline is not None else []
        self.reseed(*pipelines, self.random)
        window = self.windows[index]
        return self.assemble(window, self.views(window))

    def assemble(self, window: Window, views: Views) -> FrameSample | ClipSample:
        """The sample dict of a window's transformed frames: images, maps, masks, keypoints."""
        kps = drop_outside(views.keypoints, self.input_size)
        kps_t = torch.from_numpy(kps).float()
        on_map = kps_t.clone()
        on_map[..., :2] /= self.stride
        masks = torch.stack([self._person_mask(frame, on_map[t], window.rows[t],
                                               views.image_to_input[t])
                             for t, frame in enumerate(views.frames)])
        num_t, num_p = window.rows.shape
        out = {
            "image": normalize(views.images),
            "heatmaps": render_heatmaps(on_map, self.heatmap_size, self.sigma),
            "limb_maps": render_limb_maps(on_map, self.limbs, self.heatmap_size, self.limb_sigma),
            "person_mask": masks,
            "keypoints": F.pad(kps_t, (0, 0, 0, 0, 0, self.max_persons - num_p)),
            "num_persons": torch.full((num_t,), num_p, dtype=torch.int64),
            "frame": torch.tensor(window.frames, dtype=torch.int64),
            "image_to_input": torch.from_numpy(np.ascontiguousarray(views.image_to_input)),
        }
        if self.map_augmentation is not None:
            out["memory_heatmaps"], out["memory_limb_maps"] = render_memory_maps(
                on_map, self.limbs, self.heatmap_size, self.sigma, self.limb_sigma,
                self.map_augmentation, self.random.generator)
        if not self.clip:
            return {key: value[0] for key, value in out.items()}
        out["track_ids"] = F.pad(torch.from_numpy(window.track_ids), (0, self.max_persons - num_p),
                                 value=-1)
        return out


class FrameDataModule(PoseDataModule):
    """Bottom-up whole frames: every labelled frame, resized and padded to ``input_size``."""

    def make_dataset(self, data: PoseDataset, split: str, train: bool) -> FrameDataset:
        windows = self.spread([frame_window(data, i) for i in labelled_frame_indices(data)], train)
        return FrameDataset(data, windows, self.cfg, train)
