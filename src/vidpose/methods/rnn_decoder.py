"""The RNN pose decoder: one person per ConvLSTM step over Associative Embedding features.

"Unifying part detection and association for multi-person pose estimation" (the suite's
``rnn`` paper). A frozen, trained Associative Embedding (AE) stacked hourglass gives the
features, chosen by ``model.input_features`` and concatenated over all stacks: ``outputs``
feeds each stack's whole output (J heatmaps, J tags, any extra maps; the default, and the
only choice for an AE without extra maps); ``intermediate`` feeds only each stack's
``extra_outputs`` maps, pose-ae-train's 34 maps after the heatmaps and tags, which are the
paper's "intermediate features of all stacks" (c = 4 x 34; Sec. 3.3). They are normalised
with running statistics (:class:`~vidpose.nn.rnn_decoder.RunningNorm`), and LSTM1
(:class:`~vidpose.nn.rnn_decoder.PoseDecoderLSTM`) emits one person's J heatmaps per step,
each in ``passes`` feedback passes (2 in the paper), until its stop probability p_t falls
below omega. Optionally LSTM2 (:class:`~vidpose.nn.rnn_decoder.PoseRefinerLSTM`) refines
the persons in a chosen order (Table 3).

Training is Alg. 1 (:func:`~vidpose.methods.rnn_loss.within_image_batching`) under
Lightning's manual optimisation: the decoder back-propagates every T steps within an image,
so one optimiser step spans several backward passes. Only the decoder is trained; the AE
stays frozen in eval mode. Images need different numbers of backward passes, so under DDP
the per-backward gradient sync is off and the decoder's gradients are averaged over the
ranks once per optimiser step.

Inference: a joint is the heatmap argmax with the quarter-pixel refinement (the heatmap
codec, ``data.subpixel``); a joint whose maximum is below tau (0.015) is discarded: score 0,
and, since a COCO results file cannot omit it and pycocotools scores every joint by its
coordinates, placed at the mean of the person's kept joints, as pose-ae-train (on which the
paper's code is built) writes a missing joint (``bottom_up.place_dropped_joints``). The
person score (the paper leaves it open) is p_t times the mean maximum of the person's kept
joints; a person with no kept joint is not emitted. Validation scores both this decoder
(``rnn``) and AE's own grouping (``ae``) on the same AE forward pass.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Optional

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from vidpose.codec import HeatmapCodec
from vidpose.data_modules.datasets import as_data_config
from vidpose.data_modules.frames import FrameSample
from vidpose.errors import ConfigError
from vidpose.keypoints import get_schema
from vidpose.methods import check_stride, load_trained, model_config
from vidpose.methods.assoc_embedding import FEATURE_SETS
from vidpose.methods.bottom_up import BottomUpEvaluation, place_dropped_joints
from vidpose.methods.common import adam_with_steps, log_losses
from vidpose.methods.rnn_loss import (
    LOSS_CONFIGS,
    LSTM2_INPUTS,
    ORDERINGS,
    REDUCTIONS,
    TrainingOptions,
    lstm2_inputs,
    within_image_batching,
)
from vidpose.nn.convlstm import State
from vidpose.nn.hourglass import check_input_size
from vidpose.nn.rnn_decoder import PoseDecoderLSTM, PoseRefinerLSTM, RunningNorm, halved_sizes
from vidpose.pose import Pose
from vidpose.targets import render_heatmaps


@dataclass
class RNNDecoderConfig:
    """The ``model:`` section of an RNN pose decoder experiment."""

    # The trained AE checkpoint whose features are decoded (run:assoc_embedding resolves to
    # that experiment's newest checkpoint). Set to None in saved checkpoints, which carry
    # the AE's config and weights themselves.
    features: Optional[str] = None
    # What of each AE stack is fed (see the module docstring): outputs | intermediate.
    input_features: str = "outputs"
    # LSTM1's first-layer state channels, halved per layer but never below J, the maps the
    # last layer's state is turned into (nn.rnn_decoder.halved_sizes; paper: not given)
    hidden: int = 64
    layers: int = 3  # LSTM1's ConvLSTM layers (paper: 3)
    kernel: int = 3  # ConvLSTM kernel (paper: 3)
    passes: int = 2  # feedback passes per person (Table 5: 1 = no loop, 2 = paper, 3)
    lstm2: bool = False  # append LSTM2 (Sec. 3.1.2)
    lstm2_layers: int = 2  # LSTM2's ConvLSTM layers (paper: 2; Table 7: 2, 3, 4)
    # LSTM2's input order (Table 3): learned | random | confidence | inverse | canonical
    ordering: str = "learned"
    # The persons LSTM2 is fed in training: emitted (those inference would emit, as it is
    # fed at inference) | matched (only those matched to a GT person, the r steps Eq. 4
    # indexes; inference still feeds every emitted person). Eq. 4's loss is on the matched
    # persons either way (methods/rnn_loss.py, LSTM2_INPUTS).
    lstm2_input: str = "emitted"
    # Table 4: a_a = (a, a') (paper's best), a_b, b_a, b_b; see methods/rnn_loss.py.
    loss_config: str = "a_a"
    within_image_batch: int = 8  # T, steps per back-propagation (Alg. 1; paper: 8)
    # Eq. 2/4's per-joint l_2 over pixels: mean (pose-ae-train's) or sum (the literal squared
    # l2 norm, what every rnn_* experiment sets at both scales; paper: not stated).
    heatmap_reduction: str = "mean"
    # Eq. 3's (stop loss's) weight in the total; the paper weighs all terms equally (1).
    # With the summed l_2 the heatmap term outweighs it ~100:1 per person (methods/rnn_loss.py).
    stop_weight: float = 1.0
    omega_train: float = 0.2689  # stop threshold in training: sigmoid(-1) (paper)
    # Stop threshold at inference. The paper states only the training value; using the same
    # keeps inference stopping where training taught the network to stop.
    omega: float = 0.2689
    # MAX_ITERATIONS of Alg. 1 and the most persons emitted at inference; None: the data's
    # max_persons + 1.
    max_steps: Optional[int] = None
    tau: float = 0.015  # a joint whose heatmap maximum is below gets score 0 (paper)
    # RunningNorm's momentum; None averages over all batches seen ("the entire data").
    norm_momentum: Optional[float] = None
    lr: float = 1.0e-4  # Adam (paper)
    weight_decay: float = 0.0
    lr_steps: list[int] = field(default_factory=lambda: [4])  # epochs: 1e-5 from epoch 4 (paper)
    lr_factor: float = 0.1


def _model_config(model: dict[str, Any]) -> RNNDecoderConfig:
    cfg = model_config(RNNDecoderConfig, model, "rnn_decoder",
                       {"ordering": ORDERINGS, "loss_config": LOSS_CONFIGS,
                        "heatmap_reduction": REDUCTIONS, "input_features": FEATURE_SETS,
                        "lstm2_input": LSTM2_INPUTS},
                       ("hidden", "layers", "kernel", "passes", "lstm2_layers",
                        "within_image_batch", "lr", "stop_weight"))
    if cfg.kernel % 2 == 0:
        raise ConfigError(f"model.kernel: expected an odd size, got {cfg.kernel}")
    for key in ("layers", "lstm2_layers"):
        try:
            halved_sizes(cfg.hidden, getattr(cfg, key))
        except ValueError:
            raise ConfigError(f"model.hidden: {cfg.hidden} cannot be halved over "
                              f"model.{key}={getattr(cfg, key)} layers") from None
    for key in ("omega_train", "omega"):
        if not 0.0 < getattr(cfg, key) < 1.0:
            raise ConfigError(f"model.{key}: expected a probability in (0, 1), "
                              f"got {getattr(cfg, key)}")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        raise ConfigError(f"model.max_steps: expected a positive count, got {cfg.max_steps}")
    if cfg.norm_momentum is not None and not 0.0 < cfg.norm_momentum <= 1.0:
        raise ConfigError(f"model.norm_momentum: expected a value in (0, 1] or null, "
                          f"got {cfg.norm_momentum}")
    return cfg


def _plain(section: Any) -> dict:
    """A hyperparameter section as a plain dict (checkpoints store what they were given)."""
    return OmegaConf.to_container(section) if isinstance(section, DictConfig) else dict(section)


def emit_persons(features: Tensor, decoder: PoseDecoderLSTM, passes: int, omega: float,
                 max_steps: int) -> list[tuple[Tensor, Tensor]]:
    """LSTM1 at inference, all images at once: step until p_t < omega or ``max_steps``.

    features (B, c, h, w), normalised. Returns per image the emitted persons' heatmaps
    (n, J, h, w) and stop probabilities (n,) in emission order; the step that stops emits
    nothing.
    """
    batch = features.shape[0]
    encoded = decoder.encode(features)
    emitted: list[tuple[list[Tensor], list[Tensor]]] = [([], []) for _ in range(batch)]
    active = list(range(batch))
    state: Optional[State] = None
    for _ in range(max_steps):
        index = torch.tensor(active, device=features.device)
        heatmaps, stop_prob, _, state = decoder.step(features[index], state, passes,
                                                     encoded[index])
        going = (stop_prob >= omega).cpu().tolist()
        for k, i in enumerate(active):
            if going[k]:
                emitted[i][0].append(heatmaps[k])
                emitted[i][1].append(stop_prob[k])
        keep = [k for k, go in enumerate(going) if go]
        if not keep:
            break
        keep_index = torch.tensor(keep, device=features.device)
        state = [(h[keep_index], c[keep_index]) for h, c in state]
        active = [active[k] for k in keep]
    empty = features.new_zeros((0, decoder.num_joints, *features.shape[-2:]))
    return [(torch.stack(maps) if maps else empty,
             torch.stack(probs) if probs else features.new_zeros(0))
            for maps, probs in emitted]


def refine_persons(features: Tensor, refiner: PoseRefinerLSTM,
                   persons: list[tuple[Tensor, Tensor]], ordering: str) -> list[Tensor]:
    """LSTM2 at inference: each image's persons fed in ``ordering``; returns the refined
    heatmaps per image in the persons' original (emission) order."""
    given = {i: p for i, p in enumerate(persons) if len(p[0])}
    if not given:
        return [maps for maps, _ in persons]
    sequence, active, orders = lstm2_inputs(given, features.shape[0], ordering, features.device)
    refined, _ = refiner(features, sequence, None, active)
    out = [maps for maps, _ in persons]
    for i, order in orders.items():
        maps = torch.empty_like(out[i])
        maps[order] = refined[: len(order), i]
        out[i] = maps
    return out


def heatmaps_to_poses(heatmaps: Tensor, stop_prob: Tensor, tau: float,
                      codec: HeatmapCodec) -> list[Pose]:
    """One image's persons (n, J, h, w) with their p_t (n,) -> Poses in input pixels.

    Joints: ``codec.decode`` (argmax + quarter-pixel shift by default), score = heatmap
    maximum; below ``tau`` a joint is dropped: score 0, at the mean of the kept joints
    (:func:`place_dropped_joints`). Person score: p_t x the mean maximum of the kept joints;
    a person without one is dropped.
    """
    if not len(heatmaps):
        return []
    coords, scores = codec.decode(heatmaps)
    kept = scores >= tau
    scores = torch.where(kept, scores, torch.zeros_like(scores))
    joint_mean = scores.sum(-1) / kept.sum(-1).clamp_min(1)
    keypoints = torch.cat([coords, scores[..., None]], -1)
    person_scores = stop_prob.float() * joint_mean
    return [Pose(place_dropped_joints(keypoints[n].cpu().numpy()), score=float(person_scores[n]))
            for n in range(len(heatmaps)) if kept[n].any()]


class RNNPoseDecoder(BottomUpEvaluation, L.LightningModule):
    """Frozen AE features -> RunningNorm -> LSTM1 (+ LSTM2); Alg. 1 training; COCO AP of
    the RNN decoder and of AE's grouping per validation set."""

    DECODERS = ("rnn", "ae")
    # Model keys that only change how a trained decoder is run: `vidpose eval` applies the
    # experiment's values of these to a loaded checkpoint (Fig. 6's omega on one model).
    INFERENCE_KEYS = ("omega", "tau")

    def __init__(self, model: dict, data: dict, schema: str = "coco17",
                 feature_model: Optional[dict] = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.cfg = _model_config(model)
        data_cfg = as_data_config(data)
        self.codec = HeatmapCodec.from_data(data_cfg)
        self.stride = self.codec.stride
        self.num_joints = get_schema(schema).num_keypoints
        self.ae = self._feature_model(model, feature_model, schema)
        check_stride(self.stride, self.ae.stride, "the AE feature extractor")
        if self.ae.num_joints != self.num_joints:
            raise ConfigError(f"schema {schema!r} has {self.num_joints} joints but the AE "
                              f"features were trained for {self.ae.num_joints}")
        try:
            check_input_size(*data_cfg.input_size, self.ae.cfg.depth)
        except ValueError as err:
            raise ConfigError(f"data.input_size: {err}") from None
        channels = self.ae.channels_of(self.cfg.input_features)
        cfg = self.cfg
        self.norm = RunningNorm(channels, cfg.norm_momentum)
        self.lstm1 = PoseDecoderLSTM(channels, self.num_joints, cfg.hidden, cfg.layers, cfg.kernel)
        self.lstm2 = (PoseRefinerLSTM(channels, self.num_joints, cfg.hidden, cfg.lstm2_layers,
                                      cfg.kernel) if cfg.lstm2 else None)
        self.max_steps = cfg.max_steps or int(data_cfg.max_persons) + 1
        self.options = TrainingOptions(cfg.passes, cfg.within_image_batch, cfg.omega_train,
                                       self.max_steps, cfg.loss_config, cfg.ordering,
                                       cfg.heatmap_reduction, cfg.lstm2_input,
                                       cfg.stop_weight)

    def _feature_model(self, model: dict, feature_model: Optional[dict], schema: str) -> nn.Module:
        """The frozen AE: loaded from ``model.features``, or rebuilt from ``feature_model``
        (a saved checkpoint's AE config; its weights then come from the state dict)."""
        from vidpose.methods.assoc_embedding import AssociativeEmbedding

        if self.cfg.features and feature_model is not None:
            raise ConfigError("model.features: give either an AE checkpoint or feature_model "
                              "(the AE config a saved RNN decoder carries), not both")
        if self.cfg.features:
            ae = load_trained("assoc_embedding", self.cfg.features, "model.features")
            # The AE's config travels in this module's checkpoint, its weights in the state
            # dict: load_from_checkpoint rebuilds the AE without the file.
            self.hparams["feature_model"] = {"model": _plain(ae.hparams["model"]),
                                             "data": _plain(ae.hparams["data"]),
                                             "schema": ae.hparams.get("schema", schema)}
            self.hparams["model"] = {**model, "features": None}
        elif feature_model is not None:
            ae = AssociativeEmbedding(feature_model["model"], feature_model["data"],
                                      feature_model.get("schema", schema))
        else:
            raise ConfigError("model.features: the RNN decoder needs a trained AE checkpoint "
                              "(e.g. model.features=run:assoc_embedding)")
        ae.requires_grad_(False)
        return ae.eval()

    def use_settings(self, model: dict[str, Any], data: dict[str, Any]) -> None:
        """Run this trained decoder with ``model``'s values of INFERENCE_KEYS (the data and
        every trained setting stay the checkpoint's)."""
        changed = {k: model[k] for k in self.INFERENCE_KEYS if k in model}
        self.hparams["model"] = {**self.hparams["model"], **changed}
        self.cfg = _model_config(self.hparams["model"])

    def train(self, mode: bool = True) -> "RNNPoseDecoder":
        """Lightning's train mode for the decoder; the frozen AE stays in eval mode."""
        super().train(mode)
        self.ae.eval()
        return self

    @torch.no_grad()
    def features(self, image: Tensor) -> Tensor:
        """The AE's features of (B, 3, H, W) normalised images, ``model.input_features`` of
        every stack (not normalised here)."""
        return self.ae.features(image, self.cfg.input_features)

    def ground_truth(self, batch: FrameSample,
                     size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Per-person GT heatmaps (B, P, J, h, w) and which rows are GT persons (B, P): rows
        with at least one present keypoint (augmentation may have pushed all out)."""
        keypoints = batch["keypoints"].float()
        present = (keypoints[..., 2] > 0).any(-1)
        # Only up to the last row that is a person anywhere in the batch: padding rows cost.
        rows = int(present.any(0).nonzero().max()) + 1 if present.any() else 0
        keypoints = keypoints[:, :rows].clone()
        keypoints[..., :2] /= self.stride
        heatmaps = render_heatmaps(keypoints, size, self.codec.sigma, per_person=True)
        return heatmaps, present[:, :rows]

    def decoder_modules(self) -> nn.ModuleList:
        """What is trained: the input norm's affine, LSTM1 and LSTM2 (never the AE)."""
        return nn.ModuleList([m for m in (self.norm, self.lstm1, self.lstm2) if m is not None])

    def training_step(self, batch: FrameSample, batch_idx: int) -> None:
        optimizer = self.optimizers()
        features = self.features(batch["image"])
        gt_heatmaps, gt_present = self.ground_truth(batch, tuple(features.shape[-2:]))
        optimizer.zero_grad()
        # Images differ in how many within-image batches (backward passes) they need, so
        # ranks cannot meet at each backward: DDP's per-backward sync is off, and the
        # accumulated gradients are averaged over the ranks once, before the step.
        strategy = self.trainer.strategy
        no_sync = getattr(strategy, "block_backward_sync", contextlib.nullcontext)
        with no_sync():
            run = within_image_batching(features, gt_heatmaps.to(features.dtype), gt_present,
                                        self.lstm1, self.manual_backward, self.options,
                                        self.norm, self.lstm2)
        if self.trainer.world_size > 1:
            self._average_gradients()
        optimizer.step()
        size = batch["image"].shape[0]
        log_losses(self, {name: torch.tensor(value) for name, value in run.losses.items()}, size)
        self.log("train/persons_predicted", sum(run.predicted) / size, on_step=False,
                 on_epoch=True, batch_size=size)

    def _average_gradients(self) -> None:
        """All-reduce (mean) the decoder's gradients over the ranks, in one flat tensor."""
        params = list(self.decoder_modules().parameters())
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = self.trainer.strategy.reduce(torch.cat([g.flatten() for g in grads]),
                                            reduce_op="mean")
        for param, grad in zip(params, flat.split([p.numel() for p in params])):
            param.grad = grad.view_as(param).clone()

    def on_train_epoch_end(self) -> None:
        # Manual optimisation: Lightning leaves the (per-epoch) lr schedule to the module.
        self.lr_schedulers().step()

    def configure_optimizers(self) -> dict[str, Any]:
        return adam_with_steps(self.decoder_modules(), self.cfg)

    @torch.no_grad()
    def decode(self, features: Tensor) -> list[list[Pose]]:
        """AE features (B, c, h, w) -> the persons of each image, keypoints in input pixels."""
        normed = self.norm.normalize(features)
        persons = emit_persons(normed, self.lstm1, self.cfg.passes, self.cfg.omega, self.max_steps)
        maps = [m for m, _ in persons]
        if self.lstm2 is not None:
            maps = refine_persons(normed, self.lstm2, persons, self.cfg.ordering)
        return [heatmaps_to_poses(m, p, self.cfg.tau, self.codec)
                for m, (_, p) in zip(maps, persons)]

    @torch.no_grad()
    def predict_poses(self, batch: FrameSample) -> dict[str, list[list[Pose]]]:
        """Both decoders on one AE forward pass: the features are ``model.input_features``
        of its stacks' outputs (``AssociativeEmbedding.select_features``)."""
        outputs = self.ae(batch["image"])
        features = self.ae.select_features(outputs, self.cfg.input_features)
        return {"rnn": self.decode(features), "ae": self.ae.group(outputs)}
