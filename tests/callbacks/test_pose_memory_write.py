"""Pose temporal memory write: keypoint quality, feature replacement, heatmap gate, FIFO."""
from __future__ import annotations

import math
from collections import deque

import pytest
import torch

from vidpose.callbacks.pose_memory_write import MemoryWritePolicy, PersonMemory, keypoint_quality
from vidpose.methods.pose_memory import pad_memories
from vidpose.nn.attention import MemoryRead
from vidpose.targets import render_heatmaps


def _peak_maps(xy: list[tuple[float, float]], size=(16, 12), sigma=2.0) -> torch.Tensor:
    """One clean Gaussian map per keypoint at x, y (heatmap pixels)."""
    keypoints = torch.tensor([[[x, y, 2.0] for x, y in xy]])
    return render_heatmaps(keypoints, size, sigma)


def test_a_clean_peak_scores_high_and_an_isolated_spike_low():
    clean = _peak_maps([(5, 8)])
    spike = torch.zeros(1, 16, 12)
    spike[0, 8, 5] = 1.0
    scores, xy = keypoint_quality(torch.cat([clean, spike]), blur_sigma=1.0)
    # A spike keeps only the kernel's centre weight squared (separable blur, radius 3).
    centre = 1 / sum(math.exp(-x * x / 2) for x in range(-3, 4))
    assert scores[1].item() == pytest.approx(0.5 + centre ** 2, rel=1e-5)
    assert 1.25 < scores[0] <= 1.5
    assert xy[0].tolist() == [5, 8] and xy[1].tolist() == [5, 8]


def test_by_hand_constant_maps_score_their_value_plus_0_5():
    # Clipped to [0, 1], +0.5; the blur keeps a constant map constant.
    maps = torch.stack([torch.zeros(5, 5), torch.full((5, 5), 0.25), torch.full((5, 5), 3.0)])
    scores, _ = keypoint_quality(maps)
    assert scores.tolist() == pytest.approx([0.5, 0.75, 1.5])


def test_a_weak_peak_scores_below_a_confident_one_of_the_same_shape():
    confident = _peak_maps([(5, 8)])
    scores, _ = keypoint_quality(torch.cat([confident, 0.3 * confident]))
    assert scores[0] > 1.3 and scores[1] < 0.9
    assert scores[1].item() == pytest.approx(0.5 + 0.3 * (scores[0].item() - 0.5), rel=1e-5)


def test_low_quality_keypoints_get_the_saved_high_quality_feature_vector():
    policy = MemoryWritePolicy(capacity=4, heatmap_threshold=0.0, high=1.2, low=0.9)
    memory = PersonMemory(policy)
    good = _peak_maps([(4, 4), (8, 12)])  # both keypoints clean: saved
    first = torch.randn(3, 16, 12)
    assert memory.write(first, good)
    assert torch.equal(memory.saved[0, 0], first[:, 4, 4]) and torch.equal(memory.saved[0, 1], first[:, 12, 8])
    bad = good.clone()
    bad[1] = torch.rand(16, 12) * 0.05  # keypoint 1 is noise now: low quality
    bad[1, 2, 2] = 1.0
    scores, xy = keypoint_quality(bad)
    assert scores[1] < policy.low < policy.high < scores[0]
    second = torch.randn(3, 16, 12)
    memory.write(second, bad)
    stored = memory.features[-1]
    x, y = xy[1].tolist()
    assert torch.equal(stored[:, y, x], first[:, 12, 8])  # replaced by the saved vector
    assert torch.equal(memory.saved[0, 0], second[:, 4, 4])  # keypoint 0 was good again: re-saved
    others = torch.ones(16, 12, dtype=torch.bool)
    others[y, x] = False
    assert torch.equal(stored[:, others], second[:, others])


def test_without_replacement_features_are_stored_as_they_are():
    memory = PersonMemory(MemoryWritePolicy(heatmap_threshold=0.0, replacement=False))
    features = torch.randn(3, 16, 12)
    memory.write(features, _peak_maps([(4, 4)]))
    assert torch.equal(memory.features[0], features) and memory.saved is None


def test_the_heatmap_score_gates_the_write():
    memory = PersonMemory(MemoryWritePolicy(heatmap_threshold=2.5))
    half = _peak_maps([(4, 4), (8, 8)])
    half[1] = 0.0  # a flat map scores 0.5: heatmap score ~2
    assert not memory.write(torch.randn(3, 16, 12), half)
    assert memory.stacked() is None
    assert memory.write(torch.randn(3, 16, 12), _peak_maps([(4, 4), (8, 8)]))  # score ~3
    assert memory.stacked().shape == (1, 3, 16, 12)


def test_fifo_capacity_drops_the_oldest():
    memory = PersonMemory(MemoryWritePolicy(capacity=2, heatmap_threshold=0.0, replacement=False))
    maps = _peak_maps([(4, 4)])
    for value in range(3):
        memory.write(torch.full((1, 16, 12), float(value)), maps)
    assert [int(f[0, 0, 0]) for f in memory.features] == [1, 2]


def test_bad_policies_are_refused():
    with pytest.raises(ValueError):
        MemoryWritePolicy(capacity=0)
    with pytest.raises(ValueError):
        MemoryWritePolicy(low=1.3, high=1.2)


def test_keypoint_quality_of_a_batch_equals_one_person_at_a_time():
    torch.manual_seed(0)
    heatmaps = torch.rand(3, 5, 8, 6)
    scores, xy = keypoint_quality(heatmaps)
    assert scores.shape == (3, 5) and xy.shape == (3, 5, 2)
    for person in range(3):
        one_scores, one_xy = keypoint_quality(heatmaps[person])
        assert torch.equal(scores[person], one_scores) and torch.equal(xy[person], one_xy)


def _quality_sequence():
    """Five frames of two keypoints whose quality rises and falls (saves and replacements)."""
    torch.manual_seed(0)
    good = _peak_maps([(4, 4), (8, 12)])
    frames = []
    for t in range(5):
        maps = good.clone()
        if t % 2:
            maps[1] = torch.rand(16, 12) * 0.05  # keypoint 1 is noise: low quality
            maps[1, 2, 2] = 1.0
        frames.append((torch.randn(6, 16, 12), maps))
    return frames


def test_storing_projected_rows_equals_projecting_the_stored_maps():
    # The memory stores W_K / W_V rows written once; replacement on the rows must give what
    # replacing on F~ and projecting at every read (the old memory) gave.
    torch.manual_seed(0)
    read = MemoryRead(6, 4, heads=2)
    policy = MemoryWritePolicy(capacity=3, heatmap_threshold=0.0, high=1.2, low=0.9)
    maps_memory, rows_memory = PersonMemory(policy), PersonMemory(policy)
    for features, heatmaps in _quality_sequence():
        maps_memory.write(features, heatmaps)
        rows_memory.write(read.project(features), heatmaps)
    assert rows_memory.stacked().shape == (3, 4 + 6, 16, 12)
    torch.testing.assert_close(rows_memory.stacked(), read.project(maps_memory.stacked()))


@pytest.mark.parametrize("crowded", [False, True])
def test_the_ring_reads_as_the_old_stacked_and_padded_memory(crowded):
    # The memory keeps its rows in the read's layout (FIFO overwrites the oldest slot): the
    # read, and training's gradient to W_K / W_V through the rows, must equal the old read
    # of the maps stacked oldest first and zero-padded, past the capacity, with persons of
    # different lengths and the flip test's two streams.
    torch.manual_seed(0)
    read = MemoryRead(6, 4, heads=2)
    policy = MemoryWritePolicy(capacity=3, heatmap_threshold=0.0, high=1.2, low=0.9)
    x, flags = torch.randn(3, 6, 16, 12), torch.full((3,), crowded)
    memories, old = [PersonMemory(policy) for _ in range(3)], [deque(maxlen=3) for _ in range(3)]
    new_reads, old_reads = [], []
    for t, (features, heatmaps) in enumerate(_quality_sequence()):
        for person in [0, 1] if t < 2 else [0]:  # 5 maps, 2 maps, none
            assert memories[person].write(read.project(torch.stack([features, features.flip(-1)])), heatmaps)
            old[person].append(memories[person].features[-1].clone())
        for stream in range(2):
            stored = [m[:, stream] if m is not None else None for m in (p.stacked() for p in memories)]
            memory, valid = pad_memories(stored, x)
            assert read._rows(memory).untyped_storage().data_ptr() == memory.untyped_storage().data_ptr()
            new_reads.append(read(x, memory, flags, valid))
            padded = torch.zeros(3, 3, 4 + 6, 16, 12)
            for person, maps in enumerate(old):
                padded[person, :len(maps)] = torch.stack([m[stream] for m in maps]) if maps else 0
            lengths = torch.tensor([len(maps) for maps in old])
            old_reads.append(read(x, padded, flags, torch.arange(3)[None] < lengths[:, None]))
    torch.testing.assert_close(torch.stack(new_reads), torch.stack(old_reads))
    weights = (read.key.weight, read.value.weight)
    new_grads = torch.autograd.grad(sum(y.square().sum() for y in new_reads), weights, retain_graph=True)
    old_grads = torch.autograd.grad(sum(y.square().sum() for y in old_reads), weights)
    torch.testing.assert_close(new_grads, old_grads)
    assert all(g.abs().sum() > 0 for g in new_grads)


def test_the_mirrored_stream_saves_and_replaces_at_the_mirrored_cells():
    policy = MemoryWritePolicy(capacity=3, heatmap_threshold=0.0, high=1.2, low=0.9)
    single, streams = PersonMemory(policy), PersonMemory(policy)
    for features, heatmaps in _quality_sequence():
        single.write(features, heatmaps)
        streams.write(torch.stack([features, features.flip(-1)]), heatmaps)
    stored = streams.stacked()
    assert stored.shape == (3, 2, 6, 16, 12)
    assert torch.equal(stored[:, 0], single.stacked())
    assert torch.equal(stored[:, 1], single.stacked().flip(-1))


def test_the_default_gate_drops_a_frame_without_keypoints_and_keeps_a_confident_one():
    # Every keypoint scores at least 0.5, so a gate below K x 0.5 (the old default 0) wrote
    # every frame. The default now gates (value measured: MemoryWritePolicy).
    k = 17
    policy = MemoryWritePolicy()
    assert policy.heatmap_threshold > k * 0.5
    memory = PersonMemory(policy)
    blank = torch.zeros(k, 16, 12)  # nothing found: every keypoint scores 0.5
    weak = 0.1 * _peak_maps([(2 + (j % 8), 2 + j // 2) for j in range(k)])
    assert not memory.write(torch.randn(3, 16, 12), blank)
    assert not memory.write(torch.randn(3, 16, 12), weak)
    assert memory.stacked() is None
    confident = _peak_maps([(2 + (j % 8), 2 + j // 2) for j in range(k)])
    assert memory.write(torch.randn(3, 16, 12), confident)
