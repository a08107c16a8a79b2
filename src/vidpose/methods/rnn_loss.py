"""The RNN pose decoder's training: Hungarian-matched losses and within-image batching.

"Unifying part detection and association for multi-person pose estimation", Sec. 3.1.1,
3.2, 3.2.1, Alg. 1 and Table 4. LSTM1 emits one person per step; its heatmaps are matched
to the ground-truth (GT) persons by the Hungarian algorithm on a heatmap-distance cost, the
matched pairs get a squared-L2 heatmap loss (Eq. 2), every step a binary cross-entropy stop
loss against the targets of Eq. 1 (Eq. 3), and LSTM2, when present, a heatmap loss on its
refinement of the matched persons fed in a chosen order (Eq. 4). All terms weigh equally.

Loss configurations (Table 4), spelled so that they work as YAML values and command-line
overrides: ``a_a`` = (a, a') (the paper's default), ``a_b`` = (a, b'), ``b_a`` = (b, a'),
``b_b`` = (b, b'). The first letter is the rule when the network under-counts
(z_hat < z): (a) only steps with p_t >= omega enter the matching, (b) all steps. The second
is the rule when it over-counts (z_hat > z): (a') only the first z steps, (b') all steps.
"All steps" leaves out the stopping step t = max(z_hat, z) + 1 of Eq. 1, which is never a
person (see :func:`eligible_steps`).

Choices the paper leaves open: the per-joint l_2 of Eq. 2 and 4 is by default the mean
squared error over the map's pixels (``mean``, pose-ae-train's heatmap loss, on which the
paper's code builds; it keeps the heatmap and stop terms of comparable size, which "weighted
equally" suggests) or the squared L2 norm of the difference (``sum``, the literal reading);
either is summed over joints and persons. The losses of a batch of images are averaged over
the images (the paper uses one image).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vidpose.callbacks.matching import linear_assignment
from vidpose.nn.convlstm import State
from vidpose.nn.rnn_decoder import PoseDecoderLSTM, PoseRefinerLSTM, RunningNorm

LOSS_CONFIGS = ("a_a", "a_b", "b_a", "b_b")  # (a, a'), (a, b'), (b, a'), (b, b')
REDUCTIONS = ("mean", "sum")  # the per-joint l_2 over pixels
ORDERINGS = ("learned", "random", "confidence", "inverse", "canonical")  # Table 3
# The persons LSTM2 is fed in training: ``emitted``, those inference would emit (the steps
# before the first p_t < omega), as inference feeds it; ``matched``, only those matched to a
# GT person (Eq. 4 indexes LSTM2's steps by the r matched pairs). Either way Eq. 4's loss is
# over the matched persons only: a fed person without a GT person adds none.
LSTM2_INPUTS = ("emitted", "matched")


def stop_targets(z_hat: int, z: int) -> Tensor:
    """Eq. 1: the stop-probability targets p of an image with z persons and z_hat predicted.

    ``[1 .. 1 0]`` (z ones) when z_hat <= z, else z ones and z_hat - z + 1 zeros; its length
    is max(z_hat, z) + 1, the extra step teaching the network when to stop. Both cases are
    p_t = [t <= z] for t = 1 .. |p|.
    """
    steps = torch.arange(1, max(z_hat, z) + 2)
    return (steps <= z).float()


def predicted_count(stop_prob: Tensor, omega: float) -> int:
    """z_hat: the number of steps before the first p_t < omega (all of them when none is);
    the number of persons inference would emit."""
    below = torch.nonzero(stop_prob < omega)
    return int(below[0, 0]) if len(below) else int(stop_prob.shape[0])


def eligible_steps(stop_prob: Tensor, omega: float, z: int, config: str = "a_a") -> Tensor:
    """Which of the steps so far (S,) may be matched to GT persons (Table 4, Sec. 4.2).

    ``stop_prob`` holds p_1 .. p_S of one image. z_hat is :func:`predicted_count`; while no
    p_t < omega has appeared it is a lower bound (S), which already decides every rule:
    z_hat < z: (a) steps with p_t >= omega, (b) all steps; z_hat > z: (a') the first z
    steps, (b') all steps; z_hat = z: the first z steps (both rules agree).

    "All steps" are the heatmaps of Eq. 1's persons, t <= max(z_hat, z): the step
    t = |p| = max(z_hat, z) + 1 (and any later one) is the stopping step, which Eq. 1 adds
    only to teach the stop (target 0). It is never a person, so it is never matched: (b)
    counts the z heatmaps "including p_t < omega", (b') the z_hat predicted persons.
    """
    if config not in LOSS_CONFIGS:
        raise ValueError(f"loss configuration {config!r} is not one of {LOSS_CONFIGS}")
    under, over = config.split("_")
    z_hat = predicted_count(stop_prob, omega)
    step = torch.arange(1, stop_prob.shape[0] + 1, device=stop_prob.device)
    persons = step <= max(z_hat, z)  # Eq. 1's steps before the stopping step
    if z_hat < z:
        return persons & (stop_prob >= omega) if under == "a" else persons
    if z_hat > z and over == "b":
        return persons
    return step <= z


def heatmap_cost(pred: Tensor, gt: Tensor) -> Tensor:
    """The matching cost C (Sec. 3.2): C[n, m] = sum over joints j of ||H_m,j - H_hat_n,j||,
    the Frobenius distance of the two J-map stacks, joint by joint.

    pred (N, J, h, w), gt (M, J, h, w) -> (N, M).
    """
    p = pred.detach().float().flatten(2).transpose(0, 1)  # (J, N, hw)
    g = gt.detach().float().flatten(2).transpose(0, 1)  # (J, M, hw)
    return torch.cdist(p, g).sum(0)


def heatmap_l2(pred: Tensor, gt: Tensor, reduction: str = "mean") -> Tensor:
    """Eq. 2 / 4 per person, (n,): the sum over joints of the squared error of each map,
    averaged (``mean``) or summed (``sum``) over its pixels."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"heatmap reduction {reduction!r} is not one of {REDUCTIONS}")
    error = (pred.float() - gt.float()).square()
    per_map = error.mean(dim=(-2, -1)) if reduction == "mean" else error.sum(dim=(-2, -1))
    return per_map.sum(-1)


def match_persons(heatmaps: Tensor, eligible: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
    """Hungarian assignment of the eligible predicted persons to the GT persons.

    heatmaps (S, J, h, w), eligible (S,) bool, gt (M, J, h, w). Returns the matched step
    indices (ascending, i.e. in LSTM1's order) and their GT person indices, r = min(#eligible,
    M) pairs minimising the summed :func:`heatmap_cost`.
    """
    candidates = torch.nonzero(eligible.cpu()).squeeze(1)
    cost = heatmap_cost(heatmaps[candidates.to(heatmaps.device)], gt).cpu().numpy()
    rows, cols = linear_assignment(cost)
    return candidates[torch.from_numpy(rows)], torch.from_numpy(cols)


@dataclass
class ChunkLoss:
    """The loss terms of one image's chunk and its assignment."""

    heatmap_loss: Tensor  # Eq. 2 over the matched pairs
    stop_loss: Tensor  # Eq. 3 over all steps of the chunk
    steps: Tensor  # chunk-local indices of the matched steps, ascending
    persons: Tensor  # their GT person indices (into the ``gt`` given)


def chunk_loss(heatmaps: Tensor, stop_logits: Tensor, targets: Tensor, eligible: Tensor,
               gt: Tensor, reduction: str = "mean") -> ChunkLoss:
    """Eq. 2 and 3 for the S steps of one image's chunk.

    heatmaps (S, J, h, w) and stop_logits (S,) of LSTM1, ``targets`` (S,) the chunk's part of
    Eq. 1, ``eligible`` (S,) from :func:`eligible_steps`, ``gt`` (M, J, h, w) the GT persons
    not yet assigned in an earlier chunk; ``reduction`` as in :func:`heatmap_l2`. The stop
    loss is Eq. 3's cross-entropy (with the minus sign the extracted text lost), summed over
    the steps.
    """
    steps, persons = match_persons(heatmaps, eligible, gt)
    device = heatmaps.device
    heatmap_loss = heatmap_l2(heatmaps[steps.to(device)], gt[persons.to(device)], reduction).sum()
    stop_loss = F.binary_cross_entropy_with_logits(stop_logits.float(), targets.float(),
                                                   reduction="sum")
    return ChunkLoss(heatmap_loss, stop_loss, steps, persons)


def order_persons(heatmaps: Tensor, stop_prob: Tensor, ordering: str) -> Tensor:
    """The order in which LSTM2 is fed n persons given in LSTM1's order (Table 3).

    heatmaps (n, J, h, w), stop_prob (n,). ``learned``: LSTM1's order; ``random``: a random
    permutation; ``confidence``: p descending; ``inverse``: LSTM1's order reversed;
    ``canonical``: ascending x, then y, of the mean over joints of the heatmap argmax.
    """
    count = heatmaps.shape[0]
    if ordering == "learned":
        return torch.arange(count)
    if ordering == "random":
        return torch.randperm(count)
    if ordering == "confidence":
        return torch.argsort(-stop_prob.detach().float().cpu(), stable=True)
    if ordering == "inverse":
        return torch.arange(count - 1, -1, -1)
    if ordering == "canonical":
        width = heatmaps.shape[-1]
        index = heatmaps.detach().flatten(2).argmax(-1).cpu()  # (n, J)
        x = (index % width).double().mean(-1).numpy()
        y = torch.div(index, width, rounding_mode="floor").double().mean(-1).numpy()
        return torch.from_numpy(np.lexsort((y, x)))
    raise ValueError(f"ordering {ordering!r} is not one of {ORDERINGS}")


@dataclass
class TrainingOptions:
    """Alg. 1's settings (the ``model:`` section's names in brackets)."""

    passes: int = 2  # feedback passes per person [passes]
    batch_steps: int = 8  # T, steps per back-propagation [within_image_batch]
    omega: float = 0.2689  # stop threshold in training, sigmoid(-1) [omega_train]
    max_steps: int = 21  # MAX_ITERATIONS: the most persons in an image + 1 [max_steps]
    loss_config: str = "a_a"  # Table 4 [loss_config]
    ordering: str = "learned"  # LSTM2's input order, Table 3 [ordering]
    heatmap_reduction: str = "mean"  # l_2 over pixels: mean | sum [heatmap_reduction]
    lstm2_input: str = "emitted"  # LSTM2's training input: emitted | matched [lstm2_input]
    # Eq. 3's weight in the total (the paper weighs every term 1) [stop_weight]. With the
    # summed l_2 a person's heatmap term is ~J pi sigma^2 (~200 at J 17, sigma 2) against a
    # stop term of < 1 per step, so the stop's share of the shared LSTM's gradient is ~1%.
    stop_weight: float = 1.0


@dataclass
class TrainingRun:
    """What :func:`within_image_batching` reports for logging."""

    losses: dict[str, float]  # loss terms summed over the chunks, averaged over the images
    steps: int  # steps run (the longest image's)
    chunks: int  # back-propagations
    predicted: list[int]  # z_hat per image (:func:`predicted_count` of its p_t)


def _detached(state: Optional[State]) -> Optional[State]:
    """The state without its history: later chunks do not back-propagate into it."""
    return None if state is None else [(h.detach(), c.detach()) for h, c in state]


class _Chunk:
    """One image's steps since the last back-propagation."""

    def __init__(self) -> None:
        self.heatmaps: list[Tensor] = []
        self.logits: list[Tensor] = []


def within_image_batching(features: Tensor, gt_heatmaps: Tensor, gt_present: Tensor,
                          decoder: PoseDecoderLSTM, backward: Callable[[Tensor], None],
                          options: TrainingOptions, norm: Optional[RunningNorm] = None,
                          refiner: Optional[PoseRefinerLSTM] = None) -> TrainingRun:
    """Alg. 1 for a batch of B images run in parallel.

    features (B, c, h, w) (normalised by ``norm`` when given: its statistics are updated
    once, in training mode, and each chunk normalises afresh so that it has its own graph);
    gt_heatmaps (B, P, J, h, w) per-person GT heatmaps; gt_present (B, P) bool marks the GT
    persons (z = their number). Step t = 1, 2, ... runs LSTM1 on the images still running;
    an image is finished once p_t < omega and t >= z + 1 (t = |p| of Eq. 1), or at
    ``max_steps``. Every T steps, and when the last image finishes, the chunk since the last
    boundary is matched per image against the GT persons not assigned before, its loss is
    passed to ``backward`` (the LightningModule's ``manual_backward``), the LSTM states are
    detached — kept, not cleared — and the assigned GT persons are removed (Alg. 1 l. 17).

    An image that finishes inside a chunk ends its chunk there, as in Alg. 1; its loss joins
    the others' at the batch's next boundary, which gives the same gradients as a separate
    back-propagation (its loss depends on none of the later steps) with one backward pass.

    With ``refiner`` (LSTM2) each image's chunk feeds it the persons of
    ``options.lstm2_input`` (:data:`LSTM2_INPUTS`: by default those inference would
    emit, so that LSTM2 sees in training the sequences it sees at inference) in
    ``options.ordering`` (within the chunk); its outputs for the persons matched to GT are
    compared with their GT persons in the same order (Eq. 4). Its state is carried across
    chunks, detached, too. LSTM1's heatmaps are not detached there: LSTM2's loss trains
    LSTM1 as well.
    """
    if options.loss_config not in LOSS_CONFIGS:
        raise ValueError(f"loss configuration {options.loss_config!r} is not one of {LOSS_CONFIGS}")
    if options.lstm2_input not in LSTM2_INPUTS:
        raise ValueError(f"refiner input {options.lstm2_input!r} is not one of {LSTM2_INPUTS}")
    if options.batch_steps < 1 or options.max_steps < 1:
        raise ValueError("batch_steps (T) and max_steps must be at least 1")
    batch = features.shape[0]
    if norm is not None and norm.training:
        norm.update(features)
    z = gt_present.sum(1).tolist()
    remaining = [torch.nonzero(gt_present[i].cpu()).squeeze(1) for i in range(batch)]
    history: list[list[float]] = [[] for _ in range(batch)]
    chunks = {i: _Chunk() for i in range(batch)}
    active = list(range(batch))
    state: Optional[State] = None
    refiner_state: Optional[State] = None
    normed: Optional[Tensor] = None  # this chunk's normalised features and their gate term
    encoded: Optional[Tensor] = None
    totals = {"heatmap_loss": 0.0, "stop_loss": 0.0}  # logged unweighted
    weights = {"stop_loss": options.stop_weight}
    if refiner is not None:
        totals["refined_loss"] = 0.0
    step = boundaries = 0
    while active:
        step += 1
        if normed is None:  # a new chunk: a fresh graph from the features on
            normed = features if norm is None else norm.normalize(features)
            encoded = decoder.encode(normed)
        index = torch.tensor(active, device=features.device)
        heatmaps, stop_prob, stop_logit, state = decoder.step(
            normed[index], state, options.passes, encoded[index])
        probs = stop_prob.detach().cpu().tolist()
        still = []
        for k, i in enumerate(active):
            history[i].append(probs[k])
            chunks[i].heatmaps.append(heatmaps[k])
            chunks[i].logits.append(stop_logit[k])
            stopped = probs[k] < options.omega and step >= z[i] + 1
            if not (stopped or step >= options.max_steps):
                still.append(k)
        if step % options.batch_steps == 0 or not still:
            terms = _chunk_terms(chunks, history, z, remaining, gt_heatmaps, options)
            if refiner is not None:
                terms["refined_loss"], refiner_state = _refiner_term(
                    refiner, normed, refiner_state, terms.pop("refine"), options)
            else:
                terms.pop("refine")
            loss = sum(weights.get(name, 1.0) * value for name, value in terms.items()) / batch
            backward(loss)
            for name in totals:
                totals[name] += float(terms[name].detach()) / batch
            boundaries += 1
            state, refiner_state, normed = _detached(state), _detached(refiner_state), None
            chunks = {i: _Chunk() for i in range(batch)}
        if len(still) < len(active):
            keep = torch.tensor(still, dtype=torch.long, device=features.device)
            state = [(h[keep], c[keep]) for h, c in state]
            active = [active[k] for k in still]
    totals["loss"] = sum(weights.get(name, 1.0) * value for name, value in totals.items())
    predicted = [predicted_count(torch.tensor(p), options.omega) for p in history]
    return TrainingRun(totals, step, boundaries, predicted)


def _chunk_terms(chunks: dict[int, _Chunk], history: list[list[float]], z: list[int],
                 remaining: list[Tensor], gt_heatmaps: Tensor,
                 options: TrainingOptions) -> dict:
    """Eq. 2 and 3 summed over the images' chunks; removes the assigned GT persons from
    ``remaining`` and returns under ``refine`` LSTM2's input of each image: the heatmaps and
    stop probabilities of the persons ``options.lstm2_input`` feeds it, in LSTM1's order,
    their GT heatmaps (zeros for a person matched to none) and which are matched."""
    heatmap_loss = stop_loss = gt_heatmaps.new_zeros(())
    refine = {}
    for i, chunk in chunks.items():
        count = len(chunk.heatmaps)
        if not count:
            continue
        probs = torch.tensor(history[i])
        first = len(probs) - count  # steps before this chunk
        eligible = eligible_steps(probs, options.omega, z[i], options.loss_config)[first:]
        # Eq. 1 for the steps so far (p_t = [t <= z], whatever |p| turns out to be).
        targets = stop_targets(len(probs) - 1, z[i])[first:len(probs)].to(gt_heatmaps)
        heatmaps = torch.stack(chunk.heatmaps)
        gt = gt_heatmaps[i, remaining[i].to(gt_heatmaps.device)]
        terms = chunk_loss(heatmaps, torch.stack(chunk.logits), targets, eligible, gt,
                           options.heatmap_reduction)
        heatmap_loss = heatmap_loss + terms.heatmap_loss
        stop_loss = stop_loss + terms.stop_loss
        if options.lstm2_input == "matched":
            fed = terms.steps
        else:  # the chunk's steps before the first p_t < omega: what inference emits
            fed = torch.arange(max(0, min(count, predicted_count(probs, options.omega) - first)))
        if len(fed):
            targets_fed = gt.new_zeros((len(fed), *gt.shape[1:]))
            matched = torch.zeros(len(fed), dtype=torch.bool)
            position = {int(step): k for k, step in enumerate(fed)}
            for step, person in zip(terms.steps.tolist(), terms.persons.tolist()):
                if step in position:
                    targets_fed[position[step]] = gt[person]
                    matched[position[step]] = True
            refine[i] = (heatmaps[fed.to(heatmaps.device)], probs[first:][fed], targets_fed,
                         matched)
        assigned = torch.ones(len(remaining[i]), dtype=torch.bool)
        assigned[terms.persons] = False
        remaining[i] = remaining[i][assigned]
    return {"heatmap_loss": heatmap_loss, "stop_loss": stop_loss, "refine": refine}


def lstm2_inputs(persons: dict[int, tuple[Tensor, Tensor]], batch: int, ordering: str,
                 device: torch.device) -> tuple[Tensor, Tensor, dict[int, Tensor]]:
    """LSTM2's input for a batch: each image's persons in ``ordering``, padded.

    ``persons`` maps image index -> (heatmaps (n, J, h, w), stop probabilities (n,)) in
    LSTM1's order (images without persons left out). Returns the sequence (S, B, J, h, w),
    ``active`` (S, B) marking real entries, and each image's order (the index into its
    persons of every sequence position).
    """
    length = max(len(heatmaps) for heatmaps, _ in persons.values())
    sample = next(iter(persons.values()))[0]
    sequence = sample.new_zeros((length, batch, *sample.shape[1:]))
    active = torch.zeros(length, batch, dtype=torch.bool, device=device)
    orders = {}
    for i, (heatmaps, probs) in persons.items():
        order = order_persons(heatmaps, probs, ordering).to(heatmaps.device)
        sequence[: len(order), i] = heatmaps[order]
        active[: len(order), i] = True
        orders[i] = order
    return sequence, active, orders


def _refiner_term(refiner: PoseRefinerLSTM, features: Tensor, state: Optional[State],
                  fed: dict[int, tuple[Tensor, Tensor, Tensor, Tensor]],
                  options: TrainingOptions) -> tuple[Tensor, Optional[State]]:
    """Eq. 4: LSTM2 over each image's fed persons in ``ordering``, all images at once; the
    outputs of the matched ones against their GT persons reordered the same way."""
    if not fed:
        return features.new_zeros(()), state
    sequence, active, orders = lstm2_inputs(
        {i: (heatmaps, probs) for i, (heatmaps, probs, _, _) in fed.items()},
        features.shape[0], options.ordering, features.device)
    targets = torch.zeros_like(sequence)
    scored = torch.zeros_like(active)
    for i, (_, _, gt, matched) in fed.items():
        targets[: len(orders[i]), i] = gt[orders[i]].to(targets)
        scored[: len(orders[i]), i] = matched.to(scored.device)[orders[i].to(scored.device)]
    refined, state = refiner(features, sequence, state, active)
    return heatmap_l2(refined[scored], targets[scored], options.heatmap_reduction).sum(), state
