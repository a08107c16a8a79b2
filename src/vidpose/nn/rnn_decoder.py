"""The RNN pose decoder's networks: input normalisation, LSTM1 (one person per step with a
stop probability) and LSTM2 (refinement of a sequence of persons).

"Unifying part detection and association for multi-person pose estimation" (Sec. 3.1,
3.1.2, 3.3). Plain nn.Modules: the training algorithm (Alg. 1) and the losses live in
``vidpose.methods.rnn_loss``, the LightningModule in ``vidpose.methods.rnn_decoder``.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from vidpose.nn.convlstm import ConvLSTM, State

# The first feedback pass of a person is fed maps drawn from U[0, FEEDBACK_INIT] (Sec. 3.3).
FEEDBACK_INIT = 0.1


def halved_sizes(hidden: int, layers: int, floor: int = 1) -> list[int]:
    """Hidden sizes ``hidden, hidden/2, hidden/4, ...``: the paper halves the state size at
    the output of every ConvLSTM layer; none goes below ``min(floor, hidden)``.

    The decoders pass ``floor`` = J: their last layer's state feeds a 1x1 convolution that
    emits the J heatmaps, and with fewer than J channels that convolution's outputs at a
    pixel span fewer than J directions, so it cannot emit one joint's peak without ghosts
    in other joints' maps (at compact scale hidden 32 over 3 layers left 8 channels for 17
    maps). The paper's sizes (128 over 3 layers: 32 >= 17) are unchanged by the floor.
    """
    sizes = [hidden // 2 ** k for k in range(layers)]
    if layers < 1 or sizes[-1] < 1:
        raise ValueError(f"hidden={hidden} cannot be halved over {layers} layers")
    return [max(size, min(floor, hidden)) for size in sizes]


class RunningNorm(nn.Module):
    """``y = gamma x_hat + beta`` with x_hat normalised by running statistics, always.

    The paper trains with batch size 1 and normalises the input features "with the running
    statistics of the entire data instead of those of a single batch" (Sec. 3.3). In training
    mode each call first updates the per-channel running mean and variance from the batch,
    then normalises with the running values (never the batch's), so a batch of one image is
    normalised like any other. ``momentum`` None keeps the cumulative average over all
    batches seen (the entire data); a float keeps an exponential average whose factor is at
    least 1/n for the n-th batch, so the first batches are not pulled towards the 0/1 start.
    """

    def __init__(self, channels: int, momentum: Optional[float] = None, eps: float = 1e-5) -> None:
        super().__init__()
        if momentum is not None and not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum must be in (0, 1] or None, got {momentum}")
        self.momentum = momentum
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Fold the per-channel statistics of ``x`` (B, C, h, w) into the running ones."""
        var, mean = torch.var_mean(x.float(), dim=(0, 2, 3), correction=0)
        self.num_batches_tracked += 1
        factor = max(self.momentum or 0.0, 1.0 / float(self.num_batches_tracked))
        self.running_mean.lerp_(mean, factor)
        self.running_var.lerp_(var, factor)

    def normalize(self, x: Tensor) -> Tensor:
        """The affine normalisation with the running statistics (no update)."""
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        return x * scale[:, None, None].to(x.dtype) + shift[:, None, None].to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            self.update(x)
        return self.normalize(x)


class PoseDecoderLSTM(nn.Module):
    """LSTM1: ConvLSTM layers that emit one person's J heatmaps per step, and p_t.

    Input of every pass: the normalised features F (c channels) concatenated with the
    current person's J heatmaps (the feedback loop); layer k > 1 takes layer k-1's hidden
    state. A 1x1 convolution turns the last layer's hidden state into J heatmaps (no
    activation); the stop probability p_t = sigmoid(FC(spatial max of every layer's hidden
    state, concatenated)) (Fig. 3).
    """

    def __init__(self, feature_channels: int, num_joints: int, hidden: int = 64,
                 layers: int = 3, kernel: int = 3) -> None:
        super().__init__()
        sizes = halved_sizes(hidden, layers, floor=num_joints)
        self.num_joints = num_joints
        self.lstm = ConvLSTM(feature_channels + num_joints, sizes, kernel)
        self.heatmap = nn.Conv2d(sizes[-1], num_joints, 1)
        self.stop = nn.Linear(sum(sizes), 1)

    def encode(self, features: Tensor) -> Tensor:
        """The features' share of the first layer's gates: the features are the same at
        every step and pass, so they are convolved once (see ``nn.convlstm``)."""
        return self.lstm.static_gates(features)

    def step(self, features: Tensor, state: Optional[State], passes: int = 2,
             encoded: Optional[Tensor] = None) -> tuple[Tensor, Tensor, Tensor, State]:
        """One person: ``passes`` feedback passes over (B, c, h, w) features.

        The first pass is fed U[0, 0.1] maps, each later pass the previous pass's heatmaps;
        the state advances on every pass (Alg. 1 l. 2-8; passes=1 is Table 5's "no loop").
        ``encoded``: :meth:`encode` of ``features``, when the caller keeps it over steps.
        Returns heatmaps (B, J, h, w), stop_prob (B,), stop_logit (B,) of the last pass and
        the new state.
        """
        if passes < 1:
            raise ValueError(f"passes must be at least 1, got {passes}")
        if encoded is None:
            encoded = self.encode(features)
        batch, _, height, width = features.shape
        heatmaps = torch.rand(batch, self.num_joints, height, width, device=features.device,
                              dtype=encoded.dtype) * FEEDBACK_INIT
        for _ in range(passes):
            out, state = self.lstm(heatmaps, state, encoded)
            heatmaps = self.heatmap(out)
        pooled = torch.cat([h.amax(dim=(-2, -1)) for h, _ in state], 1)
        stop_logit = self.stop(pooled).squeeze(1)
        return heatmaps, torch.sigmoid(stop_logit), stop_logit, state


class PoseRefinerLSTM(nn.Module):
    """LSTM2: refines a sequence of persons, each given as LSTM1's J heatmaps.

    Input at every step: the normalised features concatenated with one person's heatmaps;
    ConvLSTM layers with halved hidden sizes; a 1x1 convolution -> J heatmaps (Sec. 3.1.2).
    Its state runs along the sequence, so the order it is fed in matters (Table 3).
    """

    def __init__(self, feature_channels: int, num_joints: int, hidden: int = 64,
                 layers: int = 2, kernel: int = 3) -> None:
        super().__init__()
        sizes = halved_sizes(hidden, layers, floor=num_joints)
        self.lstm = ConvLSTM(feature_channels + num_joints, sizes, kernel)
        self.heatmap = nn.Conv2d(sizes[-1], num_joints, 1)

    def step(self, features: Tensor, heatmaps: Tensor, state: Optional[State],
             encoded: Optional[Tensor] = None) -> tuple[Tensor, State]:
        """One person: features (B, c, h, w) and heatmaps (B, J, h, w) -> refined, new state.

        ``encoded``: ``self.lstm.static_gates(features)``, when kept over steps."""
        if encoded is None:
            encoded = self.lstm.static_gates(features)
        out, state = self.lstm(heatmaps, state, encoded)
        return self.heatmap(out), state

    def forward(self, features: Tensor, sequence: Tensor, state: Optional[State] = None,
                active: Optional[Tensor] = None) -> tuple[Tensor, State]:
        """Run over ``sequence`` (S, B, J, h, w), persons in the order given.

        ``active`` (S, B) bool marks real entries when the images' sequences differ in
        length: an inactive entry leaves that image's state unchanged (its output is
        meaningless). Returns the refined heatmaps (S, B, J, h, w) and the final state.
        """
        if state is None:
            state = self.lstm.zero_state(features.shape[0], features.shape[-2:],
                                         features.device, features.dtype)
        if sequence.shape[0] == 0:
            return sequence.new_zeros(sequence.shape), state
        encoded = self.lstm.static_gates(features)
        refined = []
        for s in range(sequence.shape[0]):
            out, new_state = self.step(features, sequence[s], state, encoded)
            if active is not None:
                keep = active[s][:, None, None, None]
                new_state = [(torch.where(keep, h, h0), torch.where(keep, c, c0))
                             for (h, c), (h0, c0) in zip(new_state, state)]
            state = new_state
            refined.append(out)
        return torch.stack(refined), state
