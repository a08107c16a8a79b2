"""vidpose.losses against hand computation, and its place below the methods."""
from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

import vidpose.losses
from vidpose.losses import (
    ae_loss,
    center_l1,
    centernet_focal_loss,
    correlation_loss,
    cpn_loss,
    heatmap_bce_loss,
    joints_mse_loss,
    keypoint_cells,
    map_loss,
    offset_l1_loss,
    refinement_loss,
    siamese_loss,
    stm_focal_loss,
)
from vidpose.methods.assoc_embedding import AssocEmbeddingConfig
from vidpose.methods.two_stage_pose import offset_targets

J = 17  # COCO joints of the Associative Embedding batches


def test_losses_sit_below_the_methods():
    # A method takes its loss from vidpose.losses, never from another method: the module
    # itself imports only torch and the network layer.
    tree = ast.parse(Path(vidpose.losses.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
    project = {name for name in imported if name.split(".")[0] == "vidpose"}
    assert all(name.startswith("vidpose.nn.") for name in project), project


def test_joints_mse_loss_is_half_the_weighted_mse():
    heatmaps = torch.ones(2, 3, 4, 5)
    target = torch.zeros(2, 3, 4, 5)
    weight = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    # Squared error 1 on 3 of 6 (sample, joint) maps: 0.5 * 3 / 6.
    assert joints_mse_loss(heatmaps, target, weight).item() == pytest.approx(0.25)


def test_joints_mse_zero_target_weight_contributes_nothing():
    heatmaps = torch.rand(2, 17, 8, 6, requires_grad=True)
    target = torch.rand(2, 17, 8, 6)
    weight = torch.ones(2, 17)
    weight[0, 5] = 0.0
    loss = joints_mse_loss(heatmaps, target, weight)
    loss.backward()
    assert torch.count_nonzero(heatmaps.grad[0, 5]) == 0
    assert torch.count_nonzero(heatmaps.grad[0, 4]) > 0
    changed = heatmaps.detach().clone()
    changed[0, 5] += 10.0
    assert joints_mse_loss(changed, target, weight).item() == pytest.approx(loss.item())


def test_cpn_loss_refuses_fewer_than_one_hard_keypoint():
    with pytest.raises(ValueError, match="hard_keypoints"):
        cpn_loss([], torch.zeros(1, 2, 1, 1), torch.zeros(1, 2, 1, 1), torch.ones(1, 2), 0)


def _constant_maps(values: list[list[float]]) -> torch.Tensor:
    """(B, K, 1, 2) heatmaps whose every pixel of joint k in sample b is values[b][k]."""
    return torch.tensor(values)[:, :, None, None].expand(-1, -1, 1, 2)


def test_cpn_loss_by_hand_ohkm_picks_the_hardest_labelled_joints():
    target = torch.zeros(2, 4, 1, 2)
    # Per-joint losses 0.5 * (v * w)^2: sample 0 -> 0.5, 2, 4.5 and joint 3 unlabelled;
    # sample 1 -> 0.5, 0, 0.125, 0.5, all labelled (joint 1 perfect).
    refined = _constant_maps([[1.0, 2.0, 3.0, 4.0], [1.0, 0.0, 0.5, 1.0]])
    weight = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    level = _constant_maps([[2.0, 0.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    # One GlobalNet level: mean over all 8 joints of 0.5 * v^2 * w = (2 + 0) / 8.
    global_term = 2.0 / 8
    # Two hardest labelled joints: sample 0 -> (4.5 + 2) / 2; sample 1 -> (0.5 + 0.5) / 2.
    hard_term = ((4.5 + 2.0) / 2 + (0.5 + 0.5) / 2) / 2
    loss = cpn_loss([level], refined, target, weight, hard_keypoints=2)
    assert loss.item() == pytest.approx(global_term + hard_term)
    # Levels add up. More hard keypoints than labelled joints: the mean runs over the labelled
    # ones only (3 in sample 0), a labelled joint with zero loss still counts (sample 1).
    loss = cpn_loss([level, level], refined, target, weight, hard_keypoints=8)
    assert loss.item() == pytest.approx(2 * global_term + ((0.5 + 2 + 4.5) / 3 + 1.125 / 4) / 2)


def test_ohkm_gradient_only_reaches_the_picked_joints():
    refined = _constant_maps([[1.0, 2.0, 3.0, 4.0]]).clone().requires_grad_()
    weight = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    target = torch.zeros(1, 4, 1, 2)
    cpn_loss([target], refined, target, weight, hard_keypoints=2).backward()
    touched = refined.grad.abs().sum(dim=(-2, -1))[0]
    # Joints 2 and 1 are the two hardest labelled ones; joint 3 (unlabelled) gets nothing.
    assert touched[0] == 0 and touched[3] == 0 and touched[1] > 0 and touched[2] > 0


def test_cpn_loss_of_a_sample_without_labelled_joints_is_nothing():
    refined = _constant_maps([[1.0, 1.0], [3.0, 3.0]])
    weight = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    target = torch.zeros(2, 2, 1, 2)
    loss = cpn_loss([target], refined, target, weight, hard_keypoints=1)
    assert loss.item() == pytest.approx(0.5 / 2)


def test_offset_loss_is_the_l1_of_the_masked_cells():
    keypoints = torch.tensor([[[10.0, 6.0, 2.0], [30.0, 20.0, 2.0]]])
    target, mask = offset_targets(keypoints, torch.ones(1, 2), (8, 10), stride=4, radius=1.0)
    # Equal to the target where it is trained: zero, whatever lies elsewhere.
    offsets = torch.where(mask[:, :, None], target, torch.full_like(target, 7.0))
    assert offset_l1_loss(offsets, target, mask).item() == 0.0
    # x off by 0.3 everywhere, y right: 0.3 on half of the masked components.
    shifted = target.clone()
    shifted[:, :, 0] += 0.3
    assert offset_l1_loss(shifted, target, mask).item() == pytest.approx(0.15)
    # Nothing labelled: no offset loss (not NaN).
    none = torch.zeros_like(mask)
    assert offset_l1_loss(shifted, target, none).item() == 0.0


def test_heatmap_bce_is_weighted_by_target_weight():
    logits = torch.zeros(1, 2, 3, 4, requires_grad=True)
    target = torch.ones(1, 2, 3, 4)
    weight = torch.tensor([[1.0, 0.0]])
    loss = heatmap_bce_loss(logits, target, weight)
    # -log(sigmoid(0)) = log 2 on every pixel of joint 0, nothing from joint 1; mean over both.
    assert loss.item() == pytest.approx(0.5 * math.log(2.0))
    loss.backward()
    assert torch.count_nonzero(logits.grad[0, 1]) == 0
    assert torch.allclose(logits.grad[0, 0], torch.full((3, 4), -0.5 / 24))
    # A perfect, confident prediction of binary targets costs (almost) nothing.
    sure = torch.where(target > 0, 30.0, -30.0)
    assert heatmap_bce_loss(sure, target, torch.ones(1, 2)).item() < 1e-10


def test_stm_map_losses_by_hand():
    logits, target = torch.tensor([[[[0.0]]]]), torch.tensor([[[[1.0]]]])
    # p = 0.5: focal = -(1 - 0.5)^2 log 0.5.
    assert stm_focal_loss(logits, target).item() == pytest.approx(0.25 * 0.6931472, rel=1e-5)
    assert map_loss("mse", logits, target, 2.0).item() == pytest.approx(0.25)
    # Perfect correlation: predicted probabilities an increasing function of the target.
    target = torch.linspace(0, 1, 16).reshape(1, 1, 4, 4)
    assert correlation_loss(torch.logit(target.clamp(0.01, 0.99)), target).item() == pytest.approx(0.0, abs=1e-4)
    assert correlation_loss(-torch.logit(target.clamp(0.01, 0.99)), target).item() == pytest.approx(2.0, abs=1e-3)


def test_centernet_focal_loss_matches_hand_computation():
    p = torch.tensor([0.8, 0.4, 0.1])
    logits = torch.logit(p).reshape(1, 1, 1, 3)
    # One centre (target 1), a background pixel near it (0.5) and one far away (0).
    loss = centernet_focal_loss(logits, torch.tensor([1.0, 0.5, 0.0]).reshape(1, 1, 1, 3))
    expected = -(math.log(0.8) * 0.2 ** 2 + math.log(0.6) * 0.4 ** 2 * 0.5 ** 4
                 + math.log(0.9) * 0.1 ** 2)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # No centre: the background sum, divided by 1.
    loss = centernet_focal_loss(logits, torch.tensor([0.5, 0.0, 0.0]).reshape(1, 1, 1, 3))
    expected = -(math.log(0.2) * 0.8 ** 2 * 0.5 ** 4 + math.log(0.6) * 0.4 ** 2
                 + math.log(0.9) * 0.1 ** 2)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # Two centres halve the sum; a sure background mistake stays finite (p clamped).
    two = centernet_focal_loss(torch.logit(torch.tensor([0.8, 0.8])).reshape(1, 1, 1, 2),
                               torch.ones(1, 1, 1, 2))
    assert two.item() == pytest.approx(-math.log(0.8) * 0.04, rel=1e-5)
    sure = centernet_focal_loss(torch.full((1, 1, 1, 1), 30.0), torch.zeros(1, 1, 1, 1))
    assert sure.item() == pytest.approx(-math.log(1e-4) * (1 - 1e-4) ** 2, rel=1e-3)


def test_center_l1_reads_the_maps_at_the_centre_cells_only():
    maps = torch.arange(12.0).reshape(1, 2, 2, 3)  # channel 0: 0..5, channel 1: 6..11
    index = torch.tensor([[4, 0]])  # cell (x=1, y=1), then a padding row
    target = torch.tensor([[[1.0, 2.0], [100.0, 100.0]]])
    loss = center_l1(maps, index, target, torch.tensor([[1.0, 0.0]]))
    assert loss.item() == pytest.approx((abs(4 - 1) + abs(10 - 2)) / (2 + 1e-4))


def hand_batch() -> dict[str, torch.Tensor]:
    """Image 0: person A with joints 0, 1 at cells (1, 1), (3, 1); person B with joint 2 at
    cell (2, 3); a labelled row past num_persons and an all-absent row. Image 1: nobody."""
    keypoints = torch.zeros(2, 4, J, 3)
    keypoints[0, 0, 0] = torch.tensor([4.0, 4.0, 2.0])
    keypoints[0, 0, 1] = torch.tensor([13.0, 5.0, 1.0])  # rounds to cell (3, 1)
    keypoints[0, 1, 2] = torch.tensor([9.0, 11.0, 2.0])  # rounds to cell (2, 3)
    keypoints[0, 3, 3] = torch.tensor([4.0, 4.0, 2.0])  # row 3 >= num_persons: not a person
    return {"keypoints": keypoints, "num_persons": torch.tensor([3, 0]),
            "heatmaps": torch.zeros(2, J, 4, 4)}


def hand_output() -> torch.Tensor:
    """One stack's maps (2, 2J, 4, 4): heatmaps all 1, tags 1 and 3 at A's joints, 6 at B's."""
    output = torch.zeros(2, 2 * J, 4, 4)
    output[:, :J] = 1.0
    output[0, J + 0, 1, 1] = 1.0
    output[0, J + 1, 1, 3] = 3.0
    output[0, J + 2, 3, 2] = 6.0
    output[0, J + 3, 1, 1] = 50.0  # read only for the row past num_persons
    return output


def test_keypoints_read_the_nearest_heatmap_cell():
    cells = keypoint_cells(torch.tensor([[[[9.0, 5.0, 2.0], [-3.0, 40.0, 2.0]]]]), 4, (4, 5))
    assert cells.tolist() == [[[1 * 5 + 2, 3 * 5 + 0]]]  # (2, 1); clamped to (0, 3)


def test_ae_losses_by_hand_on_two_persons():
    cfg = AssocEmbeddingConfig()
    batch = hand_batch()
    losses = ae_loss([hand_output()], batch, cfg, stride=4)
    # A: reference tag 2, deviations 1 and 1 -> 1; B: one joint -> 0. Image 0: (1 + 0) / 2,
    # image 1 (no person): 0; the batch mean: 0.25.
    assert losses["pull_loss"].item() == pytest.approx(0.25)
    # Both ordered pairs (A, B), (B, A): exp(-(2 - 6)^2 / 2); image 1 adds 0.
    assert losses["push_loss"].item() == pytest.approx(math.exp(-8.0) / 2, rel=1e-5)
    assert losses["heatmap_loss"].item() == pytest.approx(1.0)
    assert losses["loss"].item() == pytest.approx(1.0 + 1e-3 * (0.25 + math.exp(-8.0) / 2),
                                                  rel=1e-6)
    # Every loss sums over the stacks.
    twice = ae_loss([hand_output(), hand_output()], batch, cfg, stride=4)
    for name, value in losses.items():
        assert twice[name].item() == pytest.approx(2 * value.item(), rel=1e-6)


def test_push_pulls_persons_apart_and_pull_gathers_a_persons_joints():
    output = hand_output().requires_grad_(True)
    losses = ae_loss([output], hand_batch(), AssocEmbeddingConfig(), stride=4)
    (losses["pull_loss"] + losses["push_loss"]).backward()
    grad = output.grad[0]
    assert grad[J + 0, 1, 1] < 0 < grad[J + 1, 1, 3]  # A's tags move towards each other
    assert grad[J + 2, 3, 2] < 0  # B's tag moves up, away from A's reference 2
    assert grad[J + 3].abs().sum() == 0  # the row past num_persons adds nothing


def test_siamese_and_refinement_losses_count_only_keypoints_present_in_image_1():
    targets = torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 1, 2).repeat(1, 1, 2, 1, 1)
    probabilities = torch.tensor([0.5, 0.25]).reshape(1, 1, 1, 1, 2).repeat(1, 1, 2, 1, 1)
    probabilities[0, 0, 1] = 0.0  # an uncounted map: would be infinite without the mask/clamp
    counted = torch.tensor([[[True, False]]])
    expected = 0.5 * (-math.log(0.5) - math.log(0.75))
    assert siamese_loss(probabilities, targets, counted).item() == pytest.approx(expected, rel=1e-6)
    logits = torch.zeros(1, 1, 2, 1, 2)
    assert refinement_loss(logits, targets, counted).item() == pytest.approx(math.log(2), rel=1e-6)
    # Clamped, not infinite, when a softmax probability underflows to 0 at the target.
    assert math.isfinite(siamese_loss(probabilities, targets, torch.ones(1, 1, 2, dtype=torch.bool)).item())
    assert siamese_loss(probabilities, targets, torch.zeros(1, 1, 2, dtype=torch.bool)).item() == 0.0
