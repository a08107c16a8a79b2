"""Convolutional LSTM (Shi et al., "Convolutional LSTM Network", NeurIPS 2015).

An LSTM whose input-to-state and state-to-state transitions are convolutions, so that the
hidden state h and the cell c are feature maps (B, hidden, h, w) and keep their spatial
layout: the RNN pose decoder's recurrent unit. The four gates come from one convolution over
the concatenation of the input and the previous hidden state:

    i, f, o, g = split(W * [x, h_{t-1}] + b)
    c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g)
    h_t = sigmoid(o) tanh(c_t)

Shi et al. also add peephole terms (W_c o c); like most ConvLSTM code (and the decoder
paper, which does not mention them) this cell leaves them out.

An input part that stays the same over many steps (the RNN decoder's image features) can be
convolved once: the gate convolution is linear, so ``W * [s, x, h] = W_s * s + W_(x,h) *
[x, h]``. :meth:`ConvLSTMCell.static_gates` computes the first term (the bias included) and
``forward(x, state, static)`` adds it, with the same single weight as the plain call.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

State = list[tuple[Tensor, Tensor]]  # (h, c) per layer


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer: (x, (h, c)) -> (h', c')."""

    def __init__(self, in_ch: int, hidden: int, kernel: int = 3) -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd to keep the map size, got {kernel}")
        self.hidden = hidden
        self.gates = nn.Conv2d(in_ch + hidden, 4 * hidden, kernel, padding=kernel // 2)
        # Forget-gate bias 1 (Jozefowicz et al. 2015): the cell keeps its memory at the
        # start of training instead of halving it every step.
        with torch.no_grad():
            self.gates.bias[hidden:2 * hidden].fill_(1.0)

    def static_gates(self, static: Tensor) -> Tensor:
        """The gates' pre-activation from the leading ``static.shape[1]`` input channels,
        bias included: pass it to :meth:`forward` with the remaining channels as ``x``."""
        weight = self.gates.weight[:, : static.shape[1]]
        return F.conv2d(static, weight, self.gates.bias, padding=self.gates.padding)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor],
                static: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """x (B, in_ch, h, w) — or, with ``static`` from :meth:`static_gates`, only the input
        channels after the static ones — and state (h, c) -> (h', c')."""
        h, c = state
        if static is None:
            gates = self.gates(torch.cat([x, h], 1))
        else:
            weight = self.gates.weight[:, -(x.shape[1] + self.hidden):]
            gates = static + F.conv2d(torch.cat([x, h], 1), weight, padding=self.gates.padding)
        i, f, o, g = gates.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvLSTM(nn.Module):
    """A stack of ConvLSTM cells; layer k's input is layer k-1's new hidden state."""

    def __init__(self, in_ch: int, hidden_sizes: list[int], kernel: int = 3) -> None:
        super().__init__()
        if not hidden_sizes or min(hidden_sizes) < 1:
            raise ValueError(f"hidden_sizes must be positive, got {hidden_sizes}")
        inputs = [in_ch, *hidden_sizes[:-1]]
        self.hidden_sizes = list(hidden_sizes)
        self.cells = nn.ModuleList(ConvLSTMCell(i, h, kernel) for i, h in zip(inputs, hidden_sizes))

    def zero_state(self, batch: int, size: tuple[int, int],
                   device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None) -> State:
        """All-zero (h, c) of every layer for ``batch`` maps of ``size`` (h, w)."""
        return [(torch.zeros(batch, n, *size, device=device, dtype=dtype),
                 torch.zeros(batch, n, *size, device=device, dtype=dtype))
                for n in self.hidden_sizes]

    def static_gates(self, static: Tensor) -> Tensor:
        """The first layer's gate term of the leading input channels (see the module doc)."""
        return self.cells[0].static_gates(static)

    def forward(self, x: Tensor, state: Optional[State] = None,
                static: Optional[Tensor] = None) -> tuple[Tensor, State]:
        """x (B, in_ch, h, w) -> (last layer's h, the new state of every layer).

        ``state`` None starts from zeros. With ``static`` (from :meth:`static_gates`) ``x``
        holds only the input channels after the static ones.
        """
        if state is None:
            state = self.zero_state(x.shape[0], x.shape[-2:], x.device, x.dtype)
        new_state: State = []
        for k, (cell, layer_state) in enumerate(zip(self.cells, state)):
            x, c = cell(x, layer_state, static if k == 0 else None)
            new_state.append((x, c))
        return x, new_state
