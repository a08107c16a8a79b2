"""Pose temporal memory on a top-down SimpleBaseline or CPN, trained on track clips and
validated by the online tracking pipeline.

The memory module sits on the backbone's stride-32 feature map F (SimpleBaseline: the
ResNet's C5; CPN: GlobalNet's 256-channel lateral of C5, the paper's (12, 9, 256) map):

* read (``nn/attention.py``, Eq. 1-3): F~ = alpha F + (1 - alpha) m~, m~ aligned from the
  person's stored maps by vanilla attention (uncrowded videos) or CoDA (crowded videos);
* the rest of the network turns F~ into heatmaps H;
* write (``callbacks/pose_memory_write.py``): F~ refined by keypoint feature replacement,
  stored when the heatmap score passes the gate, FIFO within the capacity.

Training (the paper is silent on it; ours): clips of ``data.clip_length`` crops of one
track. Frame t reads the memory written from frames 0..t-1 of its clip by the same write
policy as at test time, so the read learns from the memories it will meet. Stored maps are
detached (as online), so W_K, W_Q, W_V and alpha learn through the read, and the backbone
through the current frame. ``model.memory=false`` trains the same network on the same clips
without the module: the paper's "w/o memory" baseline.

Validation runs the online pipeline (``tracking/online.py``) over every video of the split,
with boxes from ``data.box_source`` (ground truth, a detection file or our detector), and
scores PoseTrack mAP and MOTA on the whole split and on its crowd subset (videos with more
than ``model.crowd_threshold`` ground-truth persons per frame: the paper's subset). The
CoDA switch there reads no ground truth: it counts the pipeline's boxes
(``model.crowdedness``). Training, which has the labels, switches on the clip's video's
ground-truth persons per frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Optional

import lightning as L
import numpy as np
import torch
from torch import Tensor

from vidpose.callbacks.pose_memory_write import MemoryWritePolicy, PersonMemory, keypoint_quality
from vidpose.codec import HeatmapCodec
from vidpose.crowd import crowd_videos, video_subset
from vidpose.data_modules.datasets import as_data_config
from vidpose.data_modules.track_clips import TrackClipSample
from vidpose.decode import flip_back
from vidpose.errors import ConfigError
from vidpose.evaluation.scoring import score_poses
from vidpose.keypoints import get_schema
from vidpose.losses import cpn_loss, joints_mse_loss
from vidpose.methods import check_choices, check_stride, model_config
from vidpose.methods.common import adam_with_steps, log_losses
from vidpose.methods.video_validation import VideoValidation
from vidpose.nn.attention import MemoryRead
from vidpose.nn.resnet import ARCHITECTURES, load_imagenet
from vidpose.nn.top_down import TOP_DOWN_NETS, crop_to_input, pad_to_stride, top_down_net
from vidpose.pose import Frame, Pose, PoseDataset
from vidpose.tracking.boxes import BoxSource
from vidpose.tracking.online import OnlineTopDown, TrackingConfig, track_video

ATTENTIONS = ("switch", "vanilla", "coda")
# Each network's loss on (intermediate heatmaps, heatmaps, target, weight) and the config.
LOSSES: dict[str, Callable[..., Tensor]] = {
    "simple_baseline": lambda intermediate, *maps, cfg: joints_mse_loss(*maps),
    "cpn": lambda *maps, cfg: cpn_loss(*maps, cfg.hard_keypoints),
}
HEATMAP_STRIDE = 4


@dataclass
class PoseMemoryConfig:
    """The ``model:`` section of a pose temporal memory experiment."""

    network: str = "simple_baseline"  # simple_baseline | cpn
    resnet: str = "resnet50"
    pretrained: Optional[str] = None  # local torchvision ImageNet state dict of the ResNet
    deconv_filters: int = 256  # SimpleBaseline head
    cpn_channels: int = 256  # CPN pyramid width (the stored map's channels)
    hard_keypoints: int = 8  # CPN RefineNet's online hard keypoint mining
    # The memory module (false: the baseline without it).
    memory: bool = True
    attention: str = "switch"  # switch (CoDA on crowded videos) | vanilla | coda
    heads: int = 8
    embed_channels: int = 256  # c_bar of W_K, W_Q
    alpha: float = 0.5  # initial balance of the current map against the aligned memory
    capacity: int = 16
    heatmap_threshold: float = 11.5  # the write gate (sum of keypoint scores; MemoryWritePolicy)
    replacement: bool = True  # keypoint feature replacement
    high: float = 1.0  # keypoint quality thresholds of the replacement (see MemoryWritePolicy)
    low: float = 0.75
    blur_sigma: float = 1.0
    # The online pipeline (tracking/online.py: TrackingConfig).
    association_iou: float = 0.3
    max_age: int = 1
    tracker: str = "memory"  # memory | greedy_iou | greedy_oks
    track_threshold: float = 0.3
    crowd_threshold: float = 8.0  # persons per frame: the CoDA switch and the crowd subset
    # The CoDA switch at test time, from the boxes (never ground-truth counts):
    # running_mean (boxes per frame of the video so far) | frame (this frame's boxes).
    crowdedness: str = "running_mean"
    oks_nms_thr: float = 0.9
    joint_threshold: float = 0.0
    flip_test: bool = True
    # Optimisation.
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_steps: list[int] = field(default_factory=lambda: [90, 120])  # epochs
    lr_factor: float = 0.1

    def policy(self) -> MemoryWritePolicy | None:
        if not self.memory:
            return None
        return MemoryWritePolicy(self.capacity, self.heatmap_threshold, self.replacement,
                                 self.high, self.low, self.blur_sigma)

    def tracking(self, box_padding: float) -> TrackingConfig:
        return TrackingConfig(self.association_iou, self.max_age, self.tracker,
                              self.track_threshold, box_padding, self.oks_nms_thr,
                              self.joint_threshold, self.crowd_threshold, self.crowdedness)


def _model_config(model: dict[str, Any]) -> PoseMemoryConfig:
    cfg = model_config(PoseMemoryConfig, model, "pose_memory")
    check_choices(cfg, {"network": TOP_DOWN_NETS, "attention": ATTENTIONS,
                        "resnet": ARCHITECTURES})
    try:
        cfg.policy()
        cfg.tracking(1.25)
    except ValueError as err:
        raise ConfigError(f"model: {err}") from None
    return cfg


def pad_memories(memories: list[Tensor | None], like: Tensor) -> tuple[Tensor, Tensor]:
    """Each person's stored rows (T_i, C', h, w) or None -> (N, max T_i, C', h, w)
    zero-padded (dtype and device of ``like``) and the (N, max T_i) mask of real slots."""
    length = max([len(m) for m in memories if m is not None], default=0)
    shape = next(tuple(m.shape[1:]) for m in memories if m is not None)
    # Empty, then only the padding zeroed: at capacity every slot is filled, and a zero
    # fill of the whole batch of stored rows costs as much as the copy. Laid out (N, C', T,
    # h, w) so that MemoryRead's rows of it are views: this is the read's only copy.
    out = like.new_empty((len(memories), shape[0], max(length, 1)) + shape[1:]).transpose(1, 2)
    valid = torch.zeros(len(memories), max(length, 1), dtype=torch.bool, device=like.device)
    for i, memory in enumerate(memories):
        filled = 0 if memory is None else len(memory)
        if filled:
            out[i, :filled] = memory.to(like)
            valid[i, :filled] = True
        if filled < out.shape[1]:
            out[i, filled:] = 0
    return out, valid


class PoseMemory(VideoValidation, L.LightningModule):
    """SimpleBaseline or CPN with the pose temporal memory module (or without: the baseline)."""

    # trainer.precision=auto trains this method in bf16 where the CPU is fast at it: its
    # learning test passes under `pytest -m slow tests/methods/test_pose_memory.py --bf16`.

    # Model keys that only change how a trained model is run: `vidpose eval` and
    # `vidpose track` apply the experiment's values for these to a loaded checkpoint.
    INFERENCE_KEYS = ("attention", "capacity", "heatmap_threshold", "replacement", "high", "low",
                      "blur_sigma", "association_iou", "max_age", "tracker", "track_threshold",
                      "crowd_threshold", "crowdedness", "oks_nms_thr", "joint_threshold", "flip_test")

    def __init__(self, model: dict, data: dict, schema: str = "posetrack18") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = _model_config(model)
        self.schema = get_schema(schema)
        self.data_cfg = as_data_config(data)
        self.codec = HeatmapCodec.from_data(self.data_cfg)
        self.input_size = self.codec.input_size
        self.stride = HEATMAP_STRIDE
        check_stride(self.data_cfg.heatmap_stride, HEATMAP_STRIDE, "a pose memory model")
        # Named as in SimpleBaseline (net.backbone, net.head): its checkpoints initialise this.
        self.net = top_down_net(self.cfg.network, self.cfg.resnet, self.schema.num_keypoints,
                                self.cfg.deconv_filters, self.cfg.cpn_channels)
        if self.cfg.pretrained:
            load_imagenet(self.net.backbone, self.cfg.pretrained)
            self.hparams["model"] = {**model, "pretrained": None}
        self.read = (MemoryRead(self.net.memory_channels, self.cfg.embed_channels, self.cfg.heads,
                                self.cfg.alpha) if self.cfg.memory else None)
        self.policy = self.cfg.policy()

    def use_settings(self, model: dict[str, Any], data: dict[str, Any]) -> None:
        """Run this trained model with the experiment's inference settings: ``model``'s values
        of INFERENCE_KEYS and ``data``'s sources (the input size stays the trained one)."""
        changed = {k: model[k] for k in self.INFERENCE_KEYS if k in model}
        self.hparams["model"] = {**self.hparams["model"], **changed}
        self.cfg = _model_config(self.hparams["model"])
        self.policy = self.cfg.policy() if self.read is not None else None
        data = {**data, "input_size": list(self.input_size), "heatmap_stride": self.stride}
        self.hparams["data"] = data
        self.data_cfg = as_data_config(data)
        self.codec = HeatmapCodec.from_data(self.data_cfg)  # data.subpixel of the experiment

    def decode(self, top: Tensor, skips: list[Tensor]) -> tuple[list[Tensor], Tensor]:
        """F~ (and skips) -> intermediate heatmaps (CPN's GlobalNet) and final heatmaps, at
        stride 4 of the unpadded input."""
        intermediate, heatmaps = self.net.decode(top, skips)
        return ([crop_to_input(h, self.input_size, self.stride) for h in intermediate],
                crop_to_input(heatmaps, self.input_size, self.stride))

    def _crowded(self, flags: Tensor) -> Tensor:
        """The crowdedness switch: per sample, CoDA (True) or vanilla attention."""
        if self.cfg.attention == "switch":
            return flags
        return torch.full_like(flags, self.cfg.attention == "coda")

    def _read(self, top: Tensor, memories: list[Tensor | None], crowded: Tensor) -> Tensor:
        """F~ from F and each person's stored memory rows (``MemoryRead.project``)."""
        if self.read is None or all(m is None for m in memories):
            return top
        memory, valid = pad_memories(memories, top)
        return self.read(top, memory, self._crowded(crowded), valid)

    def forward(self, image: Tensor, memories: list[Tensor | None] | None = None,
                crowded: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B, 3, H, W) crops, each person's stored memory rows (T, c_bar + C, h, w) or None
        -> heatmaps and F~."""
        top, skips = self.net.encode(pad_to_stride(image))
        if memories is not None:
            crowded = torch.zeros(len(top), dtype=torch.bool, device=top.device) \
                if crowded is None else crowded
            top = self._read(top, memories, crowded)
        return self.decode(top, skips)[1], top

    @torch.no_grad()
    def estimate(self, crops: Tensor, memories: list[Tensor | None],
                 crowded: bool) -> tuple[Tensor, Tensor | None]:
        """The pipeline's call (``tracking.online.Estimator``): heatmaps with flip test, and
        what to write: each person's F~ projected to memory rows, (N, S, c_bar + C, h, w).

        Stream 0 is the crop's; with the flip test, stream 1 is the mirrored crop's F~, which
        the mirrored pass reads back: a CNN's features of a mirrored crop are not the mirror
        image of the crop's (left and right limbs swap their look), and the read attends over
        positions without order, so mirroring the stored maps (the old read) changed nothing.
        ``memories``: each person's stored rows (T, S, c_bar + C, h, w) or None."""
        self.eval()
        crops = crops.to(self.device)
        flags = torch.full((len(crops),), bool(crowded), device=self.device)
        heatmaps, enhanced = self(crops, self._stream(memories, 0), flags)
        streams = [enhanced]
        if self.cfg.flip_test:
            flipped, mirrored = self(crops.flip(-1), self._stream(memories, 1), flags)
            heatmaps = 0.5 * (heatmaps + flip_back(flipped, self.schema.flip_index, True))
            streams.append(mirrored)
        if self.read is None:
            return heatmaps, None
        return heatmaps, self.read.project(torch.stack(streams, 1))

    def _stream(self, memories: list[Tensor | None], stream: int) -> list[Tensor | None]:
        """One stream of each person's stored rows (T, S, C', h, w) -> (T, C', h, w)."""
        if any(m is not None and m.shape[1] <= stream for m in memories):
            raise ValueError(f"a stored memory has no stream {stream}: it was written with "
                             f"flip_test={not self.cfg.flip_test}")
        return [m[:, stream] if m is not None else None for m in memories]

    def training_step(self, batch: TrackClipSample, batch_idx: int) -> Tensor:
        images = batch["image"]  # (B, T, 3, H, W)
        batch_size, length = images.shape[:2]
        top, skips = self.net.encode(pad_to_stride(images.flatten(0, 1)))
        top = top.unflatten(0, (batch_size, length))
        skips = [s.unflatten(0, (batch_size, length)) for s in skips]
        crowded = batch["persons_per_frame"] > self.cfg.crowd_threshold
        memories = [PersonMemory(self.policy) for _ in range(batch_size)] if self.read else []
        loss = images.new_zeros(())
        read_any = False
        for t in range(length):
            stored = [m.stacked() for m in memories]
            read_any = read_any or any(m is not None for m in stored)
            enhanced = self._read(top[:, t], stored, crowded)
            intermediate, heatmaps = self.decode(enhanced, [s[:, t] for s in skips])
            loss = loss + LOSSES[self.cfg.network](
                intermediate, heatmaps, batch["heatmaps"][:, t], batch["target_weight"][:, t],
                cfg=self.cfg)
            if memories and t < length - 1:  # the last frame's map is never read
                # Stored maps are detached (as online); their rows keep W_K / W_V's graph.
                rows = self.read.project(enhanced.detach())
                scores, xy = keypoint_quality(heatmaps.detach(), self.policy.blur_sigma)
                for b, memory in enumerate(memories):
                    memory.write(rows[b], heatmaps[b].detach(), (scores[b], xy[b]))
        if self.read is not None and not read_any:
            # The gate wrote nothing to read (early training: near-blank maps): the read's
            # weights join the graph at zero weight, as DDP (find_unused_parameters off)
            # expects every parameter to receive a gradient.
            loss = loss + 0.0 * sum(p.sum() for p in self.read.parameters())
        if self.read is not None:
            self.log("train/alpha", self.read.alpha.detach(), on_step=True, batch_size=batch_size)
        return log_losses(self, {"loss": loss / length}, batch_size)

    def configure_optimizers(self) -> dict[str, Any]:
        return adam_with_steps(self, self.cfg)

    def pipeline(self, boxes: BoxSource) -> OnlineTopDown:
        return OnlineTopDown(self, boxes, self.cfg.tracking(float(self.data_cfg.box_padding)))

    def track(self, pipeline: OnlineTopDown, frames: Iterable[tuple[Frame, np.ndarray]],
              video: str) -> Iterator[Frame]:
        """One video through the pipeline: its CoDA switch counts the boxes it is given."""
        return track_video(pipeline, frames)

    def extra_scores(self, data: PoseDataset, poses: dict[int, list[Pose]]) -> dict[str, float]:
        return {f"crowd/{k}": v for k, v in self._crowd_scores(data, poses).items()}

    def _crowd_scores(self, data: PoseDataset, poses: dict[int, list[Pose]]) -> dict[str, float]:
        """mAP and MOTA on the split's crowd subset ({} when no video is crowded enough)."""
        videos = crowd_videos(data, self.cfg.crowd_threshold)
        if not videos:
            return {}
        subset = video_subset(data, videos)
        position = {id(frame): i for i, frame in enumerate(data.frames)}
        kept = {j: poses.get(position[id(frame)], []) for j, frame in enumerate(subset.frames)}
        scores = score_poses(subset, kept, self.device)
        return {"mAP": scores["mAP"], "MOTA": scores["MOTA"], "videos": float(len(videos))}

