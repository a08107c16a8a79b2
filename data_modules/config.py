"""The ``data:`` section of an experiment config, as OmegaConf structured dataclasses.

Only simple types, ``Optional``, lists and nested dataclasses, so that OmegaConf can validate
every key and type of a YAML file against it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

DATASETS = ("posetrack18", "coco", "ochuman")
BOX_SOURCES = ("gt", "detections", "detector")


@dataclass
class AugmentConfig:
    """Training augmentation strengths (validation never augments)."""

    flip: float = 0.5  # probability of a horizontal flip (left/right slots swap)
    rotation: float = 30.0  # degrees, uniform in [-rotation, rotation]
    scale: float = 0.25  # scale factor uniform in [1 - scale, 1 + scale]
    color: bool = True  # colour jitter
    blur: float = 0.1  # probability of a Gaussian blur
    noise: float = 0.1  # probability of Gaussian pixel noise
    rotation_prob: float = 0.6  # rotation is applied this often (SimpleBaseline uses 0.6)
    translate: float = 0.0  # bottom-up only: shift as a fraction of the input size


@dataclass
class MapAugmentationConfig:
    """STM-skeletons' augmentations of the memory frames' maps (Dufour et al., Sec. 2.3).

    They prepare the memory encoder for its own mistakes; the loss targets stay clean.
    All zero/False: the memory frames get exactly the clean maps.
    """

    jitter: float = 0.0  # std of a random keypoint displacement, heatmap pixels
    # Random size, shape and orientation of the peaks: each keypoint Gaussian's sigma is scaled
    # per axis by exp(U[-rand, rand]) and turned by a random angle; each limb's width likewise.
    rand: float = 0.0
    baits: float = 0.0  # expected number of false-positive peaks per keypoint or limb map
    dull_clouds: bool = False  # each peak's intensity times U[0, 1]

    def enabled(self) -> bool:
        """Whether any option changes the maps."""
        return self.jitter > 0 or self.rand > 0 or self.baits > 0 or self.dull_clouds


@dataclass
class SequenceConfig:
    """Synthetic sequences from single images: ranges of each cumulative random affine step.

    Every step is drawn independently and composed onto the previous frame's warp, about the
    input's centre (STM-skeletons' pre-training data). The paper gives no ranges; these keep
    a 4-8 frame sequence mostly inside the input.
    """

    translate: float = 0.03  # shift per axis, uniform in [-translate, translate] x input size
    rotation: float = 5.0  # degrees, uniform in [-rotation, rotation]
    scale: float = 0.05  # zoom factor log-uniform in [1 / (1 + scale), 1 + scale]
    shear: float = 3.0  # horizontal shear angle, degrees, uniform in [-shear, shear]
    val_seed: int = 0  # labelled frame i always draws its validation steps from val_seed + i
    # Validate on the split's real video clips (ClipDataModule's windows) instead of synthetic
    # sequences: the paper's pre-trained models are scored on PoseTrack18 videos.
    val_videos: bool = False
    # Train on the split's real video clips and validate on synthetic sequences: the
    # fine-tuned model of Table 2 scored on MS-COCO (with data.val_root/val_dataset).
    train_videos: bool = False


@dataclass
class PairConfig:
    """Self-supervised image pairs: ranges of the random affine that makes image 2 from image 1.

    The keypoint correspondence paper (Sec. 4.3, 6.1) names translation, rotation and
    flipping but gives no ranges; these are ours. They move most keypoints a few feature
    cells and push some out of the input, so that truncation is seen in training.
    """

    translate: float = 0.2  # shift per axis, uniform in [-translate, translate] x input size
    rotation: float = 30.0  # degrees, uniform in [-rotation, rotation]
    scale: float = 0.1  # zoom factor log-uniform in [1 / (1 + scale), 1 + scale]
    flip: float = 0.5  # probability of a horizontal mirror (left/right slots swap)
    val_seed: int = 0  # labelled frame i always draws its validation warp from val_seed + i


@dataclass
class DataConfig:
    """Where the data is, how samples are cut from it and how they are augmented."""

    dataset: str = "posetrack18"  # posetrack18 | coco | ochuman (the on-disk layout)
    root: str = "data/synth/default/posetrack18"
    synth_preset: Optional[str] = "default"  # the runner generates synthetic data when missing
    train_split: str = "train"
    val_split: str = "val"
    # Validation data in another root and layout than the training data (None: root and
    # dataset): STM-skeletons pre-trains on COCO images and validates on PoseTrack18 videos.
    val_root: Optional[str] = None
    val_dataset: Optional[str] = None
    # The keypoint layout samples are re-ordered into and the model predicts (None: the
    # dataset's own): one layout for a chain whose stages read different datasets.
    keypoint_schema: Optional[str] = None
    detections: Optional[str] = None  # detections file; None: ROOT/detections/<split>.json
    # Validation boxes of top-down methods: gt | detections (the file above) | detector (our
    # own detector, run on every frame by the tracking pipeline: memory experiments only)
    box_source: str = "gt"
    detector: Optional[str] = None  # person detector checkpoint, or run:<experiment> (its newest)
    min_box_score: float = 0.0  # detection boxes below this score are not used
    input_size: list[int] = field(default_factory=lambda: [256, 192])  # (h, w)
    heatmap_stride: int = 4
    sigma: float = 2.0  # keypoint Gaussian, heatmap pixels
    subpixel: str = "quarter"  # peak decoding: quarter (SimpleBaseline) | taylor (DARK)
    limb_sigma: float = 1.5  # limb map spread, heatmap pixels
    clip_length: int = 4
    clip_stride: int = 1
    # Validation clips' stride; None: clip_stride. Sparsely labelled val splits (PoseTrack18
    # labels every 4th frame) need the labelling step here.
    val_clip_stride: Optional[int] = None
    batch_size: int = 32
    num_workers: int = 2
    max_train_samples: Optional[int] = None
    max_val_samples: Optional[int] = None
    box_padding: float = 1.25
    min_keypoints: int = 1
    max_persons: int = 20  # bottom-up: keypoints padded to this many persons per frame
    # Bottom-up images (data module `images`): a second validation set in the OCHuman
    # layout, scored as val/crowded_* (the RNN-decoder paper's OCHuman evaluation).
    crowded_root: Optional[str] = None
    crowded_split: str = "val"
    mask_width: float = 2.0  # person mask from the skeleton: half-width in heatmap pixels
    check_images: bool = True  # readers verify that every image file exists
    # How far (px) a labelled keypoint may lie outside its image before the reader refuses
    # it; real PoseTrack18 has head tops some 25 px above the frame.
    outside_tolerance: float = 1.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    map_augmentation: MapAugmentationConfig = field(default_factory=MapAugmentationConfig)  # memory maps
    sequence: SequenceConfig = field(default_factory=SequenceConfig)  # SequenceDataModule
    pair: PairConfig = field(default_factory=PairConfig)  # PairDataModule
