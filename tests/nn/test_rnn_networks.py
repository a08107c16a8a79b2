"""The RNN pose decoder's networks: running-statistics norm, LSTM1's step, LSTM2's sequence."""
from __future__ import annotations

import pytest
import torch

from vidpose.nn.rnn_decoder import PoseDecoderLSTM, PoseRefinerLSTM, RunningNorm, halved_sizes


def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)


def test_running_norm_normalises_with_running_statistics_in_training():
    torch.manual_seed(0)
    norm = RunningNorm(3).train()
    first = torch.randn(1, 3, 4, 5) * 2 + 1  # batch size 1 works
    out = norm(first)
    mean1, var1 = _stats(first)
    # The first batch is the whole data seen so far: normalised to zero mean, unit variance.
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(out.var(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)
    second = torch.randn(2, 3, 4, 5) - 3
    out = norm(second)
    mean2, var2 = _stats(second)
    running_mean, running_var = (mean1 + mean2) / 2, (var1 + var2) / 2
    expected = ((second - running_mean[:, None, None])
                / torch.sqrt(running_var[:, None, None] + 1e-5))
    assert torch.allclose(out, expected, atol=1e-5)
    # Not the batch's own statistics: the output of the shifted batch is not centred.
    assert out.mean() < -0.5
    assert torch.allclose(norm.running_mean, running_mean, atol=1e-6)
    assert int(norm.num_batches_tracked) == 2


def test_running_norm_in_eval_mode_does_not_update_and_is_affine():
    norm = RunningNorm(2)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([2.0, 1.0]))
        norm.bias.copy_(torch.tensor([0.0, -1.0]))
        norm.running_mean.copy_(torch.tensor([1.0, 0.0]))
        norm.running_var.copy_(torch.tensor([4.0, 1.0]) - 1e-5)
    norm.eval()
    x = torch.tensor([3.0, 2.0]).reshape(1, 2, 1, 1)
    assert torch.allclose(norm(x).flatten(), torch.tensor([2.0 * (3 - 1) / 2, 2.0 - 1.0]))
    assert int(norm.num_batches_tracked) == 0
    out = norm.train()(x)
    out.sum().backward()
    assert norm.weight.grad is not None and norm.bias.grad is not None
    assert {"running_mean", "running_var"} <= set(norm.state_dict())


def test_running_norm_momentum_is_at_least_one_over_n():
    norm = RunningNorm(1, momentum=0.4)
    values = [1.0, 5.0, 2.0]
    for v in values:
        norm.update(torch.full((1, 1, 2, 2), v))
    # factors: 1 (first batch), max(0.4, 1/2) = 0.5, max(0.4, 1/3) = 0.4
    expected = 1.0
    expected = expected + 0.5 * (5.0 - expected)
    expected = expected + 0.4 * (2.0 - expected)
    assert norm.running_mean.item() == pytest.approx(expected)
    with pytest.raises(ValueError):
        RunningNorm(1, momentum=0.0)


def test_halved_sizes():
    assert halved_sizes(32, 3) == [32, 16, 8]
    with pytest.raises(ValueError):
        halved_sizes(4, 4)
    assert halved_sizes(32, 3, floor=17) == [32, 17, 17]
    assert halved_sizes(128, 3, floor=17) == [128, 64, 32]  # the paper's sizes: no floor hit
    assert halved_sizes(8, 2, floor=17) == [8, 8]  # never above the first layer


@pytest.mark.parametrize("network, layers", [(PoseDecoderLSTM, 3), (PoseRefinerLSTM, 3)])
def test_last_layer_can_emit_every_joint_map(network, layers):
    """The compact decoder (hidden 32 over 3 layers) had 8 channels before its 1x1 heatmap
    convolution: its 17 output maps spanned 8 directions per pixel, so no joint's peak came
    without ghosts in other maps, and on oracle features the heatmap loss stalled near the
    all-zero answer's. The last state now has a channel per joint: the convolution has rank J."""
    torch.manual_seed(0)
    decoder = network(feature_channels=5, num_joints=17, hidden=32, layers=layers)
    assert decoder.lstm.hidden_sizes == [32, 17, 17]
    weight = decoder.heatmap.weight.flatten(1)
    assert torch.linalg.matrix_rank(weight) == 17
    paper = network(feature_channels=5, num_joints=17, hidden=128, layers=3)
    assert paper.lstm.hidden_sizes == [128, 64, 32]


def _decoder() -> PoseDecoderLSTM:
    torch.manual_seed(0)
    return PoseDecoderLSTM(feature_channels=5, num_joints=3, hidden=8, layers=3)


def test_decoder_step_shapes_and_halved_layers():
    decoder = _decoder()
    features = torch.randn(2, 5, 6, 7)
    heatmaps, prob, logit, state = decoder.step(features, None, passes=2)
    assert heatmaps.shape == (2, 3, 6, 7)
    assert prob.shape == logit.shape == (2,)
    assert torch.allclose(prob, torch.sigmoid(logit))
    # halved, but the last layer keeps a channel per joint (J = 3)
    assert [h.shape[1] for h, _ in state] == [8, 4, 3]


def test_decoder_feedback_loop_and_stop_head():
    """Pass 1 is fed U[0, 0.1] maps, pass 2 pass 1's heatmaps; the state advances on each
    pass; p comes from the spatial max of every layer's hidden state."""
    decoder = _decoder()
    features = torch.randn(2, 5, 6, 7)
    fed, produced = [], []
    decoder.lstm.register_forward_hook(lambda m, args, out: fed.append(args[0].detach().clone()))
    decoder.heatmap.register_forward_hook(lambda m, args, out: produced.append(out.detach()))
    torch.manual_seed(3)
    heatmaps, _, logit, state = decoder.step(features, None, passes=2)
    assert len(fed) == 2 and len(produced) == 2
    assert fed[0].shape == (2, 3, 6, 7) and fed[0].min() >= 0 and fed[0].max() <= 0.1
    assert torch.equal(fed[1], produced[0])
    assert torch.equal(heatmaps, produced[1])
    # By hand: the same two passes through the ConvLSTM on the full input.
    torch.manual_seed(3)
    init = torch.rand(2, 3, 6, 7) * 0.1
    out, s = decoder.lstm(torch.cat([features, init], 1))
    out, s = decoder.lstm(torch.cat([features, decoder.heatmap(out)], 1), s)
    assert torch.allclose(decoder.heatmap(out), heatmaps, atol=1e-5)
    pooled = torch.cat([h.amax(dim=(2, 3)) for h, _ in s], 1)
    assert torch.allclose(decoder.stop(pooled).squeeze(1), logit, atol=1e-5)
    assert torch.allclose(state[0][0], s[0][0], atol=1e-6)


def test_one_pass_is_no_loop_and_encoded_features_are_reusable():
    decoder = _decoder()
    features = torch.randn(1, 5, 4, 4)
    torch.manual_seed(5)
    a = decoder.step(features, None, passes=1)
    torch.manual_seed(5)
    b = decoder.step(features, None, passes=1, encoded=decoder.encode(features))
    assert torch.allclose(a[0], b[0], atol=1e-6) and torch.allclose(a[2], b[2], atol=1e-6)
    with pytest.raises(ValueError):
        decoder.step(features, None, passes=0)


def test_refiner_runs_a_sequence_and_masks_inactive_entries():
    torch.manual_seed(0)
    refiner = PoseRefinerLSTM(feature_channels=4, num_joints=2, hidden=8, layers=2)
    features = torch.randn(2, 4, 5, 5)
    sequence = torch.randn(3, 2, 2, 5, 5)
    refined, state = refiner(features, sequence)
    assert refined.shape == sequence.shape
    manual_state = None
    for s in range(3):
        out, manual_state = refiner.step(features, sequence[s], manual_state)
        assert torch.allclose(refined[s], out, atol=1e-6)
    # Image 1 has one person only: its state stays as after that person.
    active = torch.tensor([[True, True], [True, False], [True, False]])
    _, masked = refiner(features, sequence, None, active)
    _, after_one = refiner(features[1:], sequence[:1, 1:])
    for (h, c), (h1, c1) in zip(masked, after_one):
        assert torch.allclose(h[1:], h1, atol=1e-6) and torch.allclose(c[1:], c1, atol=1e-6)
    assert torch.allclose(masked[0][0][:1], state[0][0][:1], atol=1e-6)
    empty, _ = refiner(features, sequence[:0])
    assert empty.shape == (0, 2, 2, 5, 5)
