"""The RNN pose decoder's losses and Alg. 1 (within-image batching), by hand and by learning."""
from __future__ import annotations

import math

import pytest
import torch
from rnn_scripted import ScriptedDecoder
from torch import Tensor

from vidpose.methods.rnn_decoder import emit_persons, refine_persons
from vidpose.methods.rnn_loss import (
    TrainingOptions,
    chunk_loss,
    eligible_steps,
    heatmap_cost,
    heatmap_l2,
    match_persons,
    order_persons,
    predicted_count,
    stop_targets,
    within_image_batching,
)
from vidpose.nn.rnn_decoder import PoseDecoderLSTM, PoseRefinerLSTM, RunningNorm
from vidpose.targets import render_heatmaps

OMEGA = 0.2689


@pytest.mark.parametrize("z_hat, z, expected", [
    (1, 3, [1, 1, 1, 0]),  # z_hat < z: [1 .. 1 0] of length z + 1
    (2, 2, [1, 1, 0]),  # z_hat = z
    (4, 2, [1, 1, 0, 0, 0]),  # z_hat > z: z ones, z_hat - z + 1 zeros
    (0, 0, [0]),
])
def test_stop_targets_eq1(z_hat, z, expected):
    assert stop_targets(z_hat, z).tolist() == expected


def test_predicted_count_is_the_steps_before_the_first_stop():
    assert predicted_count(torch.tensor([0.9, 0.5, 0.1, 0.9]), OMEGA) == 2
    assert predicted_count(torch.tensor([0.1]), OMEGA) == 0
    assert predicted_count(torch.tensor([0.9, 0.9]), OMEGA) == 2


UNDER = torch.tensor([0.9, 0.1, 0.8, 0.2])  # z_hat = 1 < z = 3
OVER = torch.tensor([0.9, 0.8, 0.7, 0.1])  # z_hat = 3 > z = 1
EXACT = torch.tensor([0.9, 0.8, 0.1])  # z_hat = 2 = z


# The last step of UNDER and OVER is the stopping step t = |p| = max(z_hat, z) + 1: never a
# person, so no configuration matches it (issue 16 point 14).
@pytest.mark.parametrize("config, under, over", [
    ("a_a", [True, False, True, False], [True, False, False, False]),
    ("a_b", [True, False, True, False], [True, True, True, False]),
    ("b_a", [True, True, True, False], [True, False, False, False]),
    ("b_b", [True, True, True, False], [True, True, True, False]),
])
def test_loss_configuration_masks_table4(config, under, over):
    assert eligible_steps(UNDER, OMEGA, 3, config).tolist() == under
    assert eligible_steps(OVER, OMEGA, 1, config).tolist() == over
    assert eligible_steps(EXACT, OMEGA, 2, config).tolist() == [True, True, False]


def test_masks_while_no_stop_has_appeared_yet():
    # Two steps of an image with 3 persons: all may be matched under every configuration.
    for config in ("a_a", "b_b"):
        assert eligible_steps(torch.tensor([0.9, 0.8]), OMEGA, 3, config).tolist() == [True, True]
    # Three confident steps for 2 persons: already z_hat > z.
    assert eligible_steps(torch.tensor([0.9, 0.8, 0.7]), OMEGA, 2, "a_a").tolist() == \
        [True, True, False]
    with pytest.raises(ValueError, match="loss configuration"):
        eligible_steps(UNDER, OMEGA, 3, "aa'")


def test_heatmap_cost_sums_per_joint_frobenius_distances():
    pred = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]]]])  # (1, J=2, 1, 2)
    gt = torch.tensor([[[[0.0, 0.0]], [[3.0, 4.0]]],
                       [[[1.0, 0.0]], [[0.0, 0.0]]]])  # (2, 2, 1, 2)
    cost = heatmap_cost(pred, gt)
    assert cost.shape == (1, 2)
    assert cost[0, 0].item() == pytest.approx(1.0 + 5.0)
    assert cost[0, 1].item() == pytest.approx(0.0)


def _persons(count: int, joints: int = 2, size: int = 12, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    keypoints = torch.cat([torch.rand(count, joints, 2, generator=g) * (size - 1),
                           torch.ones(count, joints, 1)], -1)
    return render_heatmaps(keypoints, (size, size), 1.5, per_person=True)


def test_hungarian_matching_recovers_a_permuted_ground_truth():
    pred = _persons(4)
    perm = torch.tensor([2, 0, 3, 1])
    gt = pred[perm] + 0.01 * torch.rand_like(pred)  # gt[m] = pred[perm[m]]
    steps, persons = match_persons(pred, torch.ones(4, dtype=torch.bool), gt)
    assert steps.tolist() == [0, 1, 2, 3]
    assert perm[persons].tolist() == [0, 1, 2, 3]
    # Ineligible steps are never matched; with fewer GT persons only r = min pairs.
    steps, persons = match_persons(pred, torch.tensor([True, False, True, True]), gt[:2])
    assert steps.tolist() == [0, 2] and perm[persons].tolist() == [0, 2]


def test_chunk_loss_by_hand():
    gt = _persons(2, seed=1)
    heatmaps = torch.stack([gt[1] * 0.5, torch.zeros_like(gt[0])])
    logits = torch.tensor([2.0, -1.0])
    targets = torch.tensor([1.0, 0.0])
    terms = chunk_loss(heatmaps, logits, targets, torch.tensor([True, False]), gt)
    assert terms.steps.tolist() == [0] and terms.persons.tolist() == [1]
    expected = ((0.5 * gt[1]) ** 2).mean(dim=(-2, -1)).sum()
    assert terms.heatmap_loss.item() == pytest.approx(expected.item(), rel=1e-5)
    bce = -math.log(torch.sigmoid(torch.tensor(2.0)).item()) - math.log(
        1 - torch.sigmoid(torch.tensor(-1.0)).item())
    assert terms.stop_loss.item() == pytest.approx(bce, rel=1e-5)
    summed = chunk_loss(heatmaps, logits, targets, torch.tensor([True, False]), gt, "sum")
    assert summed.heatmap_loss.item() == pytest.approx(
        ((0.5 * gt[1]) ** 2).sum().item(), rel=1e-5)
    assert heatmap_l2(gt, gt).tolist() == [0.0, 0.0]


def test_orderings_table3():
    maps = torch.zeros(3, 2, 5, 5)
    for n, (x, y) in enumerate([(4, 1), (0, 3), (4, 0)]):
        maps[n, :, y, x] = 1.0
    probs = torch.tensor([0.5, 0.9, 0.7])
    assert order_persons(maps, probs, "learned").tolist() == [0, 1, 2]
    assert order_persons(maps, probs, "inverse").tolist() == [2, 1, 0]
    assert order_persons(maps, probs, "confidence").tolist() == [1, 2, 0]
    assert order_persons(maps, probs, "canonical").tolist() == [1, 2, 0]  # x, then y
    assert sorted(order_persons(maps, probs, "random").tolist()) == [0, 1, 2]
    with pytest.raises(ValueError):
        order_persons(maps, probs, "sorted")


def _scripted_run(probs, maps, present, refiner=None, **options):
    """Alg. 1 on a ScriptedDecoder; ``options`` override TrainingOptions (1 pass, T 8, 6 steps)."""
    losses = []
    run = within_image_batching(ScriptedDecoder.features(len(probs), maps.shape[-2:]),
                                gt_of(present, maps), present, ScriptedDecoder(probs, maps),
                                lambda loss: losses.append(loss.detach()),
                                TrainingOptions(**{"passes": 1, "max_steps": 6, **options}),
                                refiner=refiner)
    return run, losses


GT = _persons(2, joints=1, size=6, seed=3)  # persons A, B


def gt_of(present: Tensor, maps: Tensor) -> Tensor:
    """Every image's GT rows: A and B (rows not present are ignored)."""
    return GT[None].expand(present.shape[0], -1, -1, -1, -1)


def _maps(*rows: list[Tensor]) -> Tensor:
    """(B, steps, J=1, 6, 6) scripted heatmaps from lists of (1, 6, 6) maps."""
    return torch.stack([torch.stack(row) for row in rows])


ZERO = torch.zeros_like(GT[0])


def test_images_stop_at_p_below_omega_once_t_reaches_z_plus_1_or_at_max_steps():
    probs = [[0.9, 0.9, 0.1, 0.1, 0.1],  # z = 2: stops at t = 3
             [0.1, 0.9, 0.1, 0.1, 0.1],  # z = 1: p < omega at t = 1 but runs on to t = 3
             [0.9, 0.9, 0.9, 0.9, 0.9]]  # z = 0: never stops, ends at max_steps
    maps = _maps([ZERO] * 5, [ZERO] * 5, [ZERO] * 5)
    present = torch.tensor([[True, True], [True, False], [False, False]])
    run, losses = _scripted_run(probs, maps, present, batch_steps=2, max_steps=5)
    assert run.steps == 5
    assert run.predicted == [2, 0, 5]
    assert run.chunks == len(losses) == 3  # t = 2, t = 4, and the last image's end at t = 5
    # Stop losses: every step of every image against Eq. 1 (t <= z), summed, / B.
    bce = {(0.9, 1): -math.log(0.9), (0.1, 0): -math.log(0.9), (0.9, 0): -math.log(0.1),
           (0.1, 1): -math.log(0.1)}
    ends, z = [3, 3, 5], [2, 1, 0]
    expected = sum(bce[(probs[i][t], int(t + 1 <= z[i]))] for i in range(3) for t in range(ends[i]))
    assert run.losses["stop_loss"] == pytest.approx(expected / 3, rel=1e-5)
    assert sum(float(v) for v in losses) == pytest.approx(run.losses["loss"], rel=1e-5)


def test_assigned_persons_are_removed_from_later_chunks():
    # Steps 1 and 2 both draw person A; with T = 1 step 2 can only be matched to B.
    probs = [[0.9, 0.9, 0.1]]
    maps = _maps([GT[0], GT[0], ZERO])
    present = torch.tensor([[True, True]])
    run, losses = _scripted_run(probs, maps, present, batch_steps=1)
    assert run.chunks == 3
    a_to_b = heatmap_l2(GT[0:1], GT[1:2]).item()
    stop = -math.log(0.9)
    assert [float(v) for v in losses] == pytest.approx([stop, a_to_b + stop, stop], rel=1e-5)


def test_stop_weight_scales_only_the_back_propagated_stop_term():
    """model.stop_weight: Eq. 3 times w in what is back-propagated (and in ``loss``); the
    logged heatmap and stop terms stay unweighted, so runs with different w compare."""
    probs = [[0.9, 0.9, 0.1]]
    maps = _maps([GT[1], GT[0], ZERO])
    runs = {}
    for weight in (1.0, 5.0):
        run, losses = _scripted_run(probs, maps, torch.tensor([[True, True]]), batch_steps=1,
                                    stop_weight=weight)
        runs[weight] = (run, [float(v) for v in losses])
    stop = -math.log(0.9)
    assert runs[1.0][1] == pytest.approx([stop, stop, stop], rel=1e-5)  # A, B exact: no l_2
    assert runs[5.0][1] == pytest.approx([5 * stop, 5 * stop, 5 * stop], rel=1e-5)
    assert runs[5.0][0].losses["stop_loss"] == pytest.approx(3 * stop, rel=1e-5)
    assert runs[5.0][0].losses["loss"] == pytest.approx(15 * stop, rel=1e-5)


def test_loss_configurations_change_what_is_matched():
    present = torch.tensor([[True, True]])
    # Under-counting, z = 2, z_hat = 0: p = 0.1, 0.9, 0.1; steps 1 and 2 both draw A.
    probs = [[0.1, 0.9, 0.1]]
    maps = _maps([GT[0], GT[0], ZERO])
    a, _ = _scripted_run(probs, maps, present, loss_config="a_a")  # step 2 only (p >= omega)
    b, _ = _scripted_run(probs, maps, present, loss_config="b_a")  # steps 1, 2: one of them -> B
    assert a.predicted == [0]
    assert a.losses["heatmap_loss"] == pytest.approx(0.0, abs=1e-7)
    assert b.losses["heatmap_loss"] == pytest.approx(heatmap_l2(GT[:1], GT[1:2]).item())
    # Over-counting, z = 1, z_hat = 2: step 2 draws A exactly.
    one = torch.tensor([[True, False]])
    probs = [[0.9, 0.9, 0.1]]
    maps = _maps([ZERO, GT[0], ZERO])
    a, _ = _scripted_run(probs, maps, one, loss_config="a_a")  # only the first z = 1 steps
    b, _ = _scripted_run(probs, maps, one, loss_config="a_b")  # all steps: step 2 -> A
    assert a.losses["heatmap_loss"] == pytest.approx(heatmap_l2(ZERO[None], GT[:1]).item())
    assert b.losses["heatmap_loss"] == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("config", ["b_a", "a_b", "b_b"])
def test_the_stopping_step_is_never_matched_to_a_person(config):
    """Configurations (b)/(b') match "all" heatmaps: those of Eq. 1's persons, not the
    stopping step t = max(z_hat, z) + 1, even when it draws a GT person exactly."""
    present = torch.tensor([[True, True]])
    if config.startswith("b"):
        # Under-counting, z = 2, z_hat = 1: step 1 draws A, step 2 nothing, step 3 (the
        # stopping step, |p| = 3) draws B exactly.
        probs, maps = [[0.9, 0.1, 0.1]], _maps([GT[0], ZERO, GT[1]])
    else:
        # Over-counting, z = 1, z_hat = 2: steps 1 and 2 draw nothing, the stopping step
        # (t = 3) draws A exactly.
        present = torch.tensor([[True, False]])
        probs, maps = [[0.9, 0.9, 0.1]], _maps([ZERO, ZERO, GT[0]])
    run, _ = _scripted_run(probs, maps, present, loss_config=config)
    assert run.steps == 3
    missed = heatmap_l2(ZERO[None], GT[1:2] if config.startswith("b") else GT[:1]).item()
    # Before the fix the stopping step took the person it draws and the loss was 0.
    assert run.losses["heatmap_loss"] == pytest.approx(missed, rel=1e-5)
    assert missed > 0


@pytest.mark.parametrize("ordering", ["learned", "inverse"])
def test_refiner_gets_the_matched_persons_in_order_against_reordered_ground_truth(ordering):
    torch.manual_seed(0)
    refiner = PoseRefinerLSTM(feature_channels=1, num_joints=1, hidden=4, layers=2)
    probs = [[0.9, 0.9, 0.1]]
    maps = _maps([GT[1] * 0.9, GT[0] * 0.8, ZERO])  # step 1 -> B, step 2 -> A
    present = torch.tensor([[True, True]])
    run, _ = _scripted_run(probs, maps, present, refiner=refiner, ordering=ordering)
    sequence = maps[0, :2, None]  # (S=2, B=1, J, h, w) in LSTM1's order
    targets = torch.stack([GT[1], GT[0]])[:, None]
    if ordering == "inverse":
        sequence, targets = sequence.flip(0), targets.flip(0)
    with torch.no_grad():
        refined, _ = refiner(torch.zeros(1, 1, 6, 6), sequence)
    expected = heatmap_l2(refined.flatten(0, 1), targets.flatten(0, 1)).sum().item()
    assert run.losses["refined_loss"] == pytest.approx(expected, rel=1e-5)


def test_refiner_is_trained_on_the_persons_inference_feeds_it():
    """Over-counting (z = 1, z_hat = 2, (a')): inference feeds LSTM2 both emitted persons,
    so training does too (lstm2_input=emitted, the default), with Eq. 4's loss on the
    matched one only; lstm2_input=matched feeds the matched one alone (issue 16 point 15).
    With the inverse order the matched person's refinement depends on what came first."""
    torch.manual_seed(0)
    refiner = PoseRefinerLSTM(feature_channels=1, num_joints=1, hidden=4, layers=2)
    probs = [[0.9, 0.9, 0.1]]
    maps = _maps([GT[0] * 0.8, GT[1] * 0.7, ZERO])  # step 1 -> A (the first z steps)
    present = torch.tensor([[True, False]])
    features = torch.zeros(1, 1, 6, 6)
    emitted, _ = _scripted_run(probs, maps, present, refiner=refiner, ordering="inverse")
    matched, _ = _scripted_run(probs, maps, present, refiner=refiner, ordering="inverse",
                               lstm2_input="matched")
    with torch.no_grad():
        persons = emit_persons(features, ScriptedDecoder(probs, maps), 1, OMEGA, 6)
        assert len(persons[0][0]) == 2  # inference emits steps 1 and 2
        inference = refine_persons(features, refiner, persons, "inverse")[0]
        alone, _ = refiner(features, maps[0, :1, None])
    # One chunk (T = 8): training's sequence is inference's.
    assert emitted.losses["refined_loss"] == pytest.approx(
        heatmap_l2(inference[:1], GT[:1]).item(), rel=1e-5)
    assert matched.losses["refined_loss"] == pytest.approx(
        heatmap_l2(alone[0], GT[:1]).item(), rel=1e-5)
    assert emitted.losses["refined_loss"] != pytest.approx(matched.losses["refined_loss"])
    with pytest.raises(ValueError, match="refiner input"):
        _scripted_run(probs, maps, present, refiner=refiner, lstm2_input="all")


class RecordingDecoder(PoseDecoderLSTM):
    """LSTM1 that remembers every step's outputs (heatmaps and hidden states)."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.outputs: list[list[Tensor]] = []

    def step(self, features, state, passes=2, encoded=None):
        heatmaps, prob, logit, state = super().step(features, state, passes, encoded)
        self.outputs.append([heatmaps, logit, *[h for h, _ in state]])
        return heatmaps, prob, logit, state


def _real_run(batch_steps: int, seed: int = 0):
    torch.manual_seed(seed)
    decoder = RecordingDecoder(3, 2, 8, 3)
    norm = RunningNorm(3)
    features = torch.randn(2, 3, 8, 8)
    gt = _persons(6, size=8).reshape(2, 3, 2, 8, 8)
    present = torch.tensor([[True, True, False], [True, True, True]])
    chunk_grads, chunk_outputs = [], []
    params = list(decoder.parameters()) + list(norm.parameters())

    def backward(loss: Tensor) -> None:
        earlier = [t for step in chunk_outputs for t in step]
        current = decoder.outputs[len(chunk_outputs):]
        if earlier:  # no path from this chunk's loss back into an earlier chunk
            grads = torch.autograd.grad(loss, earlier, retain_graph=True, allow_unused=True)
            assert all(g is None for g in grads)
        # ... but into every step of this one (each step's stop logit is in the loss).
        grads = torch.autograd.grad(loss, [step[1] for step in current], retain_graph=True,
                                    allow_unused=True)
        assert all(g is not None for g in grads)
        chunk_grads.append(torch.autograd.grad(loss, params, retain_graph=True,
                                               allow_unused=True))
        loss.backward()
        chunk_outputs.extend(current)

    torch.manual_seed(seed + 1)
    run = within_image_batching(features, gt, present, decoder, backward,
                                TrainingOptions(passes=2, batch_steps=batch_steps, max_steps=4),
                                norm)
    return run, decoder, params, chunk_grads


def test_gradients_of_a_chunk_never_reach_an_earlier_chunk():
    run, decoder, params, chunk_grads = _real_run(batch_steps=1)
    assert run.steps == 4 and run.chunks == 4  # nothing stops before max_steps: p starts ~0.5
    for param, *per_chunk in zip(params, *chunk_grads):
        total = sum(g for g in per_chunk if g is not None)
        assert torch.allclose(param.grad, total, atol=1e-6)


def test_the_state_is_kept_across_chunks():
    """Detaching changes no value: T = 1 (a chunk per step) and T = 8 (one chunk) emit the
    same heatmaps and stop logits, which a cleared state at each chunk would not."""
    _, one, _, _ = _real_run(batch_steps=1)
    _, eight, _, _ = _real_run(batch_steps=8)
    assert len(one.outputs) == len(eight.outputs) == 4
    for a, b in zip(one.outputs, eight.outputs):
        assert torch.allclose(a[0], b[0], atol=1e-5) and torch.allclose(a[1], b[1], atol=1e-5)


def toy_batch(gen: torch.Generator, batch: int, size: int = 16, joints: int = 2):
    """1-3 toy persons of two joints on a 3x3 grid of 16x16 maps; the features are their
    max-merged GT heatmaps."""
    keypoints = torch.zeros(batch, 3, joints, 3)
    counts = torch.randint(1, 4, (batch,), generator=gen)
    for i in range(batch):
        cells = torch.randperm(9, generator=gen)[: int(counts[i])]
        offsets = torch.rand(len(cells), 2, generator=gen)
        for p, cell in enumerate(cells.tolist()):
            x = 2 + (cell % 3) * 5 + float(offsets[p, 0])
            y = 2 + (cell // 3) * 5 + float(offsets[p, 1])
            keypoints[i, p, 0] = torch.tensor([x, y, 1.0])
            keypoints[i, p, 1] = torch.tensor([x + 1.5, y + 2.0, 1.0])
    gt = render_heatmaps(keypoints, (size, size), 1.0, per_person=True)
    return gt.amax(1), gt, (keypoints[..., 2] > 0).any(-1)


@torch.no_grad()
def _evaluate(decoder, norm, features, gt, present) -> tuple[float, float]:
    """Inference on held-out images: the share with the right person count, and the mean
    heatmap error per image (matched persons against their GT, missed GT against zeros)."""
    persons = emit_persons(norm.normalize(features), decoder, 2, OMEGA, 4)
    right, error = 0, 0.0
    for i, (maps, _) in enumerate(persons):
        truth = gt[i, present[i]]
        right += int(len(maps) == len(truth))
        steps, matched = match_persons(maps, torch.ones(len(maps), dtype=torch.bool), truth)
        missed = torch.ones(len(truth), dtype=torch.bool)
        missed[matched] = False
        error += float(heatmap_l2(maps[steps], truth[matched]).sum())
        error += float(heatmap_l2(torch.zeros_like(truth[missed]), truth[missed]).sum())
    return right / len(persons), error / len(persons)


@pytest.mark.slow
def test_decoder_learns_to_count_and_draw_toy_persons(one_thread):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    norm = RunningNorm(2)
    decoder = PoseDecoderLSTM(2, 2, hidden=16, layers=3)
    optimizer = torch.optim.Adam([*decoder.parameters(), *norm.parameters()], lr=1e-2)
    options = TrainingOptions(passes=2, batch_steps=8, max_steps=4)
    held_out = toy_batch(torch.Generator().manual_seed(123), 64)
    norm.update(held_out[0])
    _, error_before = _evaluate(decoder, norm, *held_out)
    zeros_error = float(heatmap_l2(torch.zeros_like(held_out[1]), held_out[1]).sum()) / 64
    for _ in range(250):
        features, gt, present = toy_batch(gen, 8)
        optimizer.zero_grad()
        within_image_batching(features, gt, present, decoder, lambda loss: loss.backward(),
                              options, norm)
        optimizer.step()
    right, error = _evaluate(decoder, norm, *held_out)
    # Counting 1-3 persons: a constant guess is right a third of the time. (Seeds 0-3 give
    # 0.69-0.83 right and errors of 0.63-0.76 x the all-zero answer's.)
    assert right >= 0.6
    assert error < 0.85 * zeros_error and error < 0.2 * error_before
