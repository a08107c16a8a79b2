"""Associative Embedding: the bottom-up baseline of the RNN pose decoder paper.

Newell, Huang, Deng, "Associative Embedding: End-to-End Learning for Joint Detection and
Grouping" (NeurIPS 2017). A stacked hourglass (:mod:`vidpose.nn.hourglass`, pose-ae-train's
layout) predicts per stack J joint heatmaps shared by all persons and J tag maps; each
stack is supervised (intermediate supervision). The losses (:func:`vidpose.losses.ae_loss`),
summed over stacks:

* heatmap loss: squared error to the max-merged ground-truth heatmaps, averaged per pixel;
* pull loss: per person, the mean squared deviation of its joints' tags from its reference
  tag (their mean), averaged over the persons of an image;
* push loss: the mean over ordered pairs of distinct persons of
  ``exp(-||ref_n - ref_n'||^2 / 2)`` (the paper's Gaussian with sigma 1; pose-ae-train's
  code averages over pairs without the self-pairs of the paper's 1/N^2 sum).

Tags are read at the heatmap cell of each labelled keypoint; a person with no labelled
keypoint (all pushed out by augmentation) is not a person for the tag losses. Loss weights
and the optimiser are pose-ae-train's (1, 1e-3, 1e-3; Adam 2e-4).

Inference groups the last stack's heatmaps and tags with AE's heuristics
(:mod:`vidpose.grouping`). :meth:`AssociativeEmbedding.features` gives the RNN pose decoder
its input, one of :data:`FEATURE_SETS` taken from every stack and concatenated: ``outputs``,
all of a stack's maps (J heatmaps, J x tag_dim tags, the extra maps), or ``intermediate``,
only its ``extra_outputs`` maps: pose-ae-train's 34 outputs after the heatmaps and tags, the
paper's "intermediate features of all stacks" (c = 4 x 34 for COCO).
The network sees RGB in [0, 1], as pose-ae-train trains it: the data's ImageNet
normalisation is undone in :meth:`forward`, so official checkpoints work unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import lightning as L
import torch
from torch import Tensor

from vidpose.data_modules.datasets import as_data_config
from vidpose.data_modules.frames import FrameSample
from vidpose.data_modules.transforms import IMAGENET_MEAN, IMAGENET_STD
from vidpose.decode import REFINEMENTS, heatmap_to_crop
from vidpose.errors import ConfigError
from vidpose.grouping import GroupingConfig, ae_joint_order, group_batch
from vidpose.keypoints import get_schema
from vidpose.losses import ae_loss
from vidpose.methods import check_choices, check_positive, check_stride, model_config
from vidpose.methods.bottom_up import BottomUpEvaluation, place_dropped_joints
from vidpose.methods.common import adam_with_steps, log_losses
from vidpose.nn.hourglass import STEM_STRIDE, StackedHourglass, check_input_size, load_pose_ae, split_maps
from vidpose.pose import Pose

# What the RNN pose decoder may be fed from each stack (see the module docstring).
FEATURE_SETS = ("outputs", "intermediate")


@dataclass
class AssocEmbeddingConfig:
    """The ``model:`` section of an Associative Embedding experiment (pose-ae-train's values)."""

    num_stacks: int = 4
    channels: int = 256
    depth: int = 4  # pooling levels of each hourglass
    increase: int = 128  # channels added at each hourglass level
    tag_dim: int = 1
    # Unsupervised output maps after the tags; pose-ae-train's 68 outputs have 34, so its
    # checkpoint needs 34. The paper leaves them unexplained; they are not trained here.
    extra_outputs: int = 0
    # Batch norm after every convolution with a ReLU: pose-ae-train's Conv option, off in its
    # trained model (so off to load it); on, training from scratch converges much faster.
    batch_norm: bool = False
    pretrained: Optional[str] = None  # a pose-ae-train checkpoint (checkpoint.pth.tar)
    heatmap_weight: float = 1.0
    pull_weight: float = 1.0e-3
    push_weight: float = 1.0e-3
    lr: float = 2.0e-4
    weight_decay: float = 0.0
    # pose-ae-train drops the lr to 1e-5 after 200k iterations; the epoch count for that
    # depends on the data, so the schedule is left to the experiment.
    lr_steps: list[int] = field(default_factory=list)  # epochs
    lr_factor: float = 0.1
    detection_threshold: float = 0.2
    tag_threshold: float = 1.0
    max_persons: int = 30
    nms_kernel: int = 3
    # Sub-pixel step of each grouped joint (vidpose.decode.REFINEMENTS): pose-ae-train's
    # quarter pixel towards the higher neighbour, or DARK's Taylor step (ours, for small
    # persons: at stride 4 a quarter-pixel error is most of COCO's OKS tolerance).
    subpixel: str = "quarter"


def _model_config(model: dict[str, Any]) -> AssocEmbeddingConfig:
    cfg = model_config(AssocEmbeddingConfig, model, "assoc_embedding")
    check_positive(cfg, ("num_stacks", "channels", "depth", "tag_dim", "max_persons",
                         "nms_kernel", "tag_threshold", "lr"))
    check_choices(cfg, {"subpixel": REFINEMENTS})
    if cfg.nms_kernel % 2 == 0:
        raise ConfigError(f"model.nms_kernel: expected an odd window, got {cfg.nms_kernel}")
    for key in ("increase", "extra_outputs"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"model.{key}: expected a value >= 0, got {getattr(cfg, key)}")
    return cfg


class AssociativeEmbedding(BottomUpEvaluation, L.LightningModule):
    """Stacked hourglass with AE heatmaps and tags, grouped by AE's heuristics; COCO AP per
    validation set through :class:`BottomUpEvaluation`."""

    DECODERS = ("ae",)

    def __init__(self, model: dict, data: dict, schema: str = "coco17") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = _model_config(model)
        data_cfg = as_data_config(data)
        self.stride = int(data_cfg.heatmap_stride)
        check_stride(self.stride, STEM_STRIDE, "the hourglass")
        try:
            check_input_size(*data_cfg.input_size, self.cfg.depth)
        except ValueError as err:
            raise ConfigError(f"data.input_size / model.depth: {err}") from None
        keypoint_schema = get_schema(schema)
        self.num_joints = keypoint_schema.num_keypoints
        self.grouping = GroupingConfig(self.cfg.detection_threshold, self.cfg.tag_threshold,
                                       self.cfg.max_persons, self.cfg.nms_kernel,
                                       ae_joint_order(keypoint_schema), self.cfg.subpixel)
        self.network = StackedHourglass(self.cfg.num_stacks, self.cfg.channels, self.num_joints,
                                        self.cfg.depth, self.cfg.increase, self.cfg.tag_dim,
                                        self.cfg.extra_outputs, self.cfg.batch_norm)
        if self.cfg.pretrained:
            load_pose_ae(self.network, self.cfg.pretrained)
            # The weights now live in the state dict: a checkpoint rebuilds without the file.
            self.hparams["model"] = {**model, "pretrained": None}
        # The data's ImageNet normalisation, undone before the network (see the docstring).
        self.register_buffer("pixel_mean", torch.from_numpy(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("pixel_std", torch.from_numpy(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)

    def channels_of(self, which: str) -> int:
        """Channels of :meth:`features` for ``which`` of :data:`FEATURE_SETS`."""
        return self.cfg.num_stacks * (self.network.out_channels - self._first_channel(which))

    def _first_channel(self, which: str) -> int:
        """The first of each stack's output channels that ``which`` takes (it takes the
        rest): 0 for ``outputs``, the one after the heatmaps and tags for ``intermediate``."""
        if which not in FEATURE_SETS:
            raise ConfigError(f"model.input_features: {which!r} is not one of {FEATURE_SETS}")
        if which == "outputs":
            return 0
        if self.cfg.extra_outputs == 0:
            raise ConfigError("model.input_features: 'intermediate' feeds each stack's extra "
                              "output maps, but the AE has none (train or load it with "
                              "model.extra_outputs=34, pose-ae-train's layout)")
        return self.num_joints * (1 + self.cfg.tag_dim)

    def forward(self, image: Tensor) -> list[Tensor]:
        """(B, 3, H, W) normalised images -> each stack's maps (B, C, H/4, W/4): J heatmaps,
        J x tag_dim tags, then ``extra_outputs`` maps."""
        return self.network(image * self.pixel_std + self.pixel_mean)

    def select_features(self, outputs: list[Tensor], which: str = "outputs") -> Tensor:
        """The RNN pose decoder's input from the stacks' maps of :meth:`forward`: ``which``
        of :data:`FEATURE_SETS` from every stack, concatenated stack by stack,
        (B, :meth:`channels_of`, H/4, W/4)."""
        first = self._first_channel(which)
        return torch.cat([output[:, first:] for output in outputs], 1)

    def features(self, image: Tensor, which: str = "outputs") -> Tensor:
        """:meth:`select_features` of the images' forward pass."""
        return self.select_features(self(image), which)

    @torch.no_grad()
    def group(self, outputs: list[Tensor]) -> list[list[Pose]]:
        """AE grouping of the last stack's heatmaps and tags, per image; keypoints in input
        pixels (x, y, detection value; a joint not found has value 0 and sits at the mean of
        the person's found joints), ``Pose.score`` the mean detection value."""
        heatmaps, tags = split_maps(outputs[-1], self.num_joints, self.cfg.tag_dim)
        grouped = group_batch(heatmaps, tags, self.grouping)
        return [[self._to_input(pose) for pose in poses] for poses in grouped]

    def _to_input(self, pose: Pose) -> Pose:
        """A grouped person in input pixels; a joint it lacks (0, 0, 0 from the grouping)
        goes where pose-ae-train writes it, the mean of its found joints
        (:func:`place_dropped_joints`), not to the map's corner."""
        keypoints = place_dropped_joints(pose.keypoints)
        keypoints[:, :2] = heatmap_to_crop(keypoints[:, :2], self.stride)
        return Pose(keypoints, score=pose.score)

    def predict_poses(self, batch: FrameSample) -> dict[str, list[list[Pose]]]:
        return {"ae": self.group(self(batch["image"]))}

    def training_step(self, batch: FrameSample, batch_idx: int) -> Tensor:
        losses = ae_loss(self(batch["image"]), batch, self.cfg, self.stride)
        return log_losses(self, losses, batch["image"].shape[0])

    def configure_optimizers(self) -> dict[str, Any]:
        return adam_with_steps(self, self.cfg)
