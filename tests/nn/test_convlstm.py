"""ConvLSTM: the gate equations by hand, the stacking, and the static-input shortcut."""
from __future__ import annotations

import math

import pytest
import torch

from vidpose.nn.convlstm import ConvLSTM, ConvLSTMCell


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def test_cell_follows_the_lstm_equations_by_hand():
    cell = ConvLSTMCell(1, 1, kernel=1)
    with torch.no_grad():
        # gates i, f, o, g: weights on (x, h) and biases
        cell.gates.weight.copy_(torch.tensor([[1.0, 0.5], [0.0, 1.0], [2.0, 0.0], [1.0, -1.0]])
                                .reshape(4, 2, 1, 1))
        cell.gates.bias.copy_(torch.tensor([0.0, 1.0, -1.0, 0.5]))
    x, h0, c0 = 0.4, 0.2, -0.3
    h, c = cell(torch.full((1, 1, 1, 1), x), (torch.full((1, 1, 1, 1), h0),
                                              torch.full((1, 1, 1, 1), c0)))
    i = _sigmoid(x + 0.5 * h0)
    f = _sigmoid(h0 + 1.0)
    o = _sigmoid(2 * x - 1.0)
    g = math.tanh(x - h0 + 0.5)
    c_expected = f * c0 + i * g
    assert c.item() == pytest.approx(c_expected, rel=1e-6)
    assert h.item() == pytest.approx(o * math.tanh(c_expected), rel=1e-6)


def test_forget_gate_starts_open():
    cell = ConvLSTMCell(3, 4)
    assert torch.equal(cell.gates.bias[4:8], torch.ones(4))


def test_stack_feeds_each_layer_the_previous_hidden_state():
    torch.manual_seed(0)
    lstm = ConvLSTM(5, [8, 4, 2])
    x = torch.randn(2, 5, 6, 7)
    out, state = lstm(x)
    assert out.shape == (2, 2, 6, 7)
    assert [tuple(h.shape) for h, _ in state] == [(2, 8, 6, 7), (2, 4, 6, 7), (2, 2, 6, 7)]
    zero = lstm.zero_state(2, (6, 7))
    layer_input, expected = x, []
    for cell, layer_state in zip(lstm.cells, zero):
        layer_input, c = cell(layer_input, layer_state)
        expected.append((layer_input, c))
    for (h, c), (h_e, c_e) in zip(state, expected):
        assert torch.allclose(h, h_e) and torch.allclose(c, c_e)
    assert torch.equal(out, state[-1][0])
    # A second step starts from the given state, not from zeros.
    out2, _ = lstm(x, state)
    assert not torch.allclose(out2, out)


def test_static_gates_give_the_same_values_and_gradients():
    torch.manual_seed(1)
    lstm = ConvLSTM(7, [6, 3])
    static, rest = torch.randn(2, 4, 5, 5), torch.randn(2, 3, 5, 5)
    state = [(torch.randn(2, n, 5, 5), torch.randn(2, n, 5, 5)) for n in (6, 3)]
    plain, _ = lstm(torch.cat([static, rest], 1), state)
    grad_plain = torch.autograd.grad(plain.square().sum(), list(lstm.parameters()))
    shortcut, _ = lstm(rest, state, lstm.static_gates(static))
    grad_shortcut = torch.autograd.grad(shortcut.square().sum(), list(lstm.parameters()))
    assert torch.allclose(plain, shortcut, atol=1e-6)
    for a, b in zip(grad_plain, grad_shortcut):
        assert torch.allclose(a, b, atol=1e-5)


def test_zero_state_and_bad_sizes():
    lstm = ConvLSTM(3, [4, 2])
    state = lstm.zero_state(3, (2, 5), dtype=torch.float64)
    assert all(h.dtype == torch.float64 and not h.any() and not c.any() for h, c in state)
    with pytest.raises(ValueError, match="odd"):
        ConvLSTMCell(3, 4, kernel=2)
    with pytest.raises(ValueError, match="hidden_sizes"):
        ConvLSTM(3, [4, 0])
