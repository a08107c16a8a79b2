"""Keypoint correspondence network: cells, Eq. 1-3 by hand, refinement, propagate
(Eq. 4-5: tests/test_losses.py)."""
from __future__ import annotations

import math

import pytest
import torch

from vidpose.nn.correspondence import (
    AffinityRefinement,
    CorrespondenceNet,
    SiameseMatching,
    affinity_targets,
    input_to_cell,
    nearest_cell,
)

K = 17


def centre(u: float, v: float, stride: float = 16) -> list[float]:
    """The input pixel at the centre of cell (u, v)."""
    return [(u + 0.5) * stride - 0.5, (v + 0.5) * stride - 0.5]


def test_cell_convention_round_trips_and_bins_pixels():
    cells = torch.tensor([[0.0, 0.0], [3.0, 1.5], [-0.25, 7.0]])
    assert torch.allclose(input_to_cell((cells + 0.5) * 16 - 0.5, 16), cells)
    assert torch.allclose(input_to_cell(torch.tensor([[7.5, 39.5]]), 16), torch.tensor([[0.0, 2.0]]))
    # Cell 0 holds input pixels 0..15, cell 1 pixels 16..31; off-map points clamp to the edge.
    points = torch.tensor([[0.0, 15.0], [15.4, 16.0], [-7.0, 100.0]])
    assert nearest_cell(points, 16, (4, 3)).tolist() == [[0, 0], [0, 1], [0, 3]]


def test_affinity_targets_by_hand():
    # Pair 0: person 0's keypoint 0 at cell (2, 1), keypoint 1 truncated (flag 0).
    corr = torch.zeros(1, 1, 2, 3)
    corr[0, 0, 0] = torch.tensor([*centre(2, 1), 2.0])
    corr[0, 0, 1] = torch.tensor([*centre(1, 1), 0.0])
    maps = affinity_targets(corr, (4, 5), 16, sigma=1.0)
    assert maps.shape == (1, 1, 2, 4, 5)
    g = maps[0, 0, 0]
    assert g[1, 2].item() == pytest.approx(1.0)
    assert g.max().item() == pytest.approx(1.0) and g.argmax().item() == 1 * 5 + 2
    # One sigma (one cell) away: exp(-1), Eq. 3 has no factor 2; diagonal: exp(-2).
    for v, u in ((1, 3), (1, 1), (0, 2), (2, 2)):
        assert g[v, u].item() == pytest.approx(math.exp(-1.0), rel=1e-6)
    assert g[0, 1].item() == pytest.approx(math.exp(-2.0), rel=1e-6)
    assert torch.all(maps[0, 0, 1] == 0)
    wide = affinity_targets(corr, (4, 5), 16, sigma=2.0)[0, 0, 0]
    assert wide[1, 0].item() == pytest.approx(math.exp(-1.0), rel=1e-6)  # two cells, sigma 2


def test_descriptors_take_the_square_around_the_cell_zero_outside():
    net = SiameseMatching(width=0.125, patch=3)
    features = torch.arange(2 * 4 * 5, dtype=torch.float32).reshape(1, 2, 4, 5)
    keypoints = torch.tensor([[[centre(2, 1), centre(0, 0)]]])  # (1, 1, 2, 2)
    d = net.descriptors(features, keypoints)
    assert d.shape == (1, 1, 2, 2, 3, 3)
    assert torch.equal(d[0, 0, 0], features[0, :, 0:3, 1:4])
    corner = d[0, 0, 1]
    assert torch.all(corner[:, 0, :] == 0) and torch.all(corner[:, :, 0] == 0)
    assert torch.equal(corner[:, 1:, 1:], features[0, :, 0:2, 0:2])


def test_correlation_equals_hand_computed_dot_products():
    net = SiameseMatching(width=0.125, patch=3)
    gen = torch.Generator().manual_seed(0)
    f1 = torch.randn(2, 3, 4, 5, generator=gen)
    f2 = torch.randn(2, 3, 4, 5, generator=gen)
    keypoints = torch.tensor([[[centre(1, 2), centre(4, 3)]], [[centre(0, 1), centre(2, 2)]]])
    a = net.correlation(f1, keypoints, f2)
    assert a.shape == (2, 1, 2, 4, 5)
    pad1 = torch.nn.functional.pad(f1, (1, 1, 1, 1))
    pad2 = torch.nn.functional.pad(f2, (1, 1, 1, 1))
    cells = [[(1, 2), (4, 3)], [(0, 1), (2, 2)]]
    for b in range(2):
        for j, (u, v) in enumerate(cells[b]):
            for y in range(4):
                for x in range(5):
                    expected = sum(float(pad1[b, c, v + dy, u + dx] * pad2[b, c, y + dy, x + dx])
                                   for c in range(3) for dy in range(3) for dx in range(3))
                    assert a[b, 0, j, y, x].item() == pytest.approx(expected, abs=1e-5)


def test_softmax_sums_to_one_and_features_are_unit_length():
    torch.manual_seed(0)
    net = SiameseMatching(width=0.125).eval()
    images = torch.randn(2, 3, 64, 48)
    features = net.features(images)
    assert features.shape[-2:] == (4, 3)
    assert torch.allclose(features.norm(dim=1), torch.ones(2, 4, 3), atol=1e-5)
    keypoints = torch.rand(2, 3, K, 2) * torch.tensor([47.0, 63.0])
    affinity = net.affinity(features, keypoints, net.features(images.flip(-1)))
    assert affinity.shape == (2, 3, K, 4, 3) and torch.all(affinity >= 0)
    assert torch.allclose(affinity.sum((-2, -1)), torch.ones(2, 3, K), atol=1e-5)


def test_refinement_batches_persons_and_keeps_the_map_size():
    torch.manual_seed(0)
    refinement = AffinityRefinement(K, width=0.125)
    first = refinement.backbone.conv3.conv
    assert first.in_channels == 3 + 3 + K
    image1, image2 = torch.randn(2, 3, 64, 48), torch.randn(2, 3, 64, 48)
    maps = torch.rand(3, K, 4, 3)
    pair_index = torch.tensor([0, 1, 1])
    refinement.eval()
    logits = refinement(image1, image2, maps, pair_index)
    assert logits.shape == (3, K, 4, 3)
    # Each person sees its own pair's images: person 0 alone gives the same logits.
    alone = refinement(image1[:1], image2[:1], maps[:1], torch.tensor([0]))
    assert torch.allclose(alone, logits[:1], atol=1e-5)
    with pytest.raises(ValueError, match="multiples of 16"):
        refinement(torch.randn(1, 3, 56, 48), torch.randn(1, 3, 56, 48), torch.rand(1, K, 4, 3),
                   torch.tensor([0]))


def test_propagate_maps_cached_features_and_fallback():
    torch.manual_seed(0)
    net = CorrespondenceNet(K, width=0.125, refinement=True)
    image1, image2 = torch.randn(3, 64, 48), torch.randn(3, 64, 48)
    keypoints = torch.rand(2, K, 3) * torch.tensor([47.0, 63.0, 1.0])
    keypoints[..., 2] = 1.0
    keypoints[1, 5, 2] = 0.0  # not propagated
    maps = net.propagate(image1, image2, keypoints)
    assert maps.shape == (2, K, 4, 3) and net.stride == 16 and not net.training
    assert torch.all((maps >= 0) & (maps <= 1)) and torch.all(maps[1, 5] == 0)
    cached = net.propagate(image1, image2, keypoints, features1=net.features(image1[None]),
                           features2=net.features(image2[None]))
    assert torch.allclose(cached, maps, atol=1e-6)
    siamese = net.propagate(image1, image2, keypoints, refined=False)
    assert torch.allclose(siamese.sum((-2, -1))[0], torch.ones(K), atol=1e-5)
    # The refinement corrects the Siamese logits and starts at zero: untrained, it keeps
    # the Siamese maps; a trained head changes them.
    assert torch.allclose(siamese, maps, atol=1e-5)
    torch.nn.init.constant_(net.refinement.head.bias, 1.0)
    assert not torch.allclose(net.propagate(image1, image2, keypoints), siamese, atol=1e-3)
    plain = CorrespondenceNet(K, width=0.125)
    plain.siamese.load_state_dict(net.siamese.state_dict())
    assert torch.allclose(plain.propagate(image1, image2, keypoints), siamese, atol=1e-6)
    assert plain.propagate(image1, image2, torch.zeros(0, K, 3)).shape == (0, K, 4, 3)


def test_frozen_siamese_stays_in_eval_mode_without_gradients():
    net = CorrespondenceNet(K, width=0.125, refinement=True)
    net.freeze_siamese()
    net.train()
    assert net.refinement.training and not net.siamese.training
    assert not any(p.requires_grad for p in net.siamese.parameters())
    assert all(p.requires_grad for p in net.refinement.parameters())
    with pytest.raises(ValueError, match="odd"):
        SiameseMatching(patch=2)
