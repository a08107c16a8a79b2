"""The simulated detector makes its errors at the configured rates."""
from __future__ import annotations

import numpy as np
import pytest

from vidpose.errors import ConfigError
from vidpose.synth.detector import DetectorConfig, detect

N = 4000
SIZE = (10_000, 10_000)  # large enough that clipping never touches the boxes


def boxes(n: int) -> np.ndarray:
    return np.tile([1000.0, 2000.0, 100.0, 300.0], (n, 1))


def rate_tolerance(p: float, n: int) -> float:
    return 4 * np.sqrt(p * (1 - p) / n) + 1e-3  # four binomial standard deviations


@pytest.mark.parametrize("visible, expected", [(1.0, 0.1), (0.0, 0.4), (0.5, 0.25)])
def test_misses_at_the_base_rate_plus_occlusion(visible, expected):
    cfg = DetectorConfig(miss_rate=0.1, occlusion_miss=0.3, duplicate_rate=0.0, false_positives=0.0)
    found, _ = detect(np.random.default_rng(0), boxes(N), np.full(N, visible), SIZE, cfg)
    assert abs(1 - len(found) / N - expected) < rate_tolerance(expected, N)


def test_duplicates_at_their_rate():
    cfg = DetectorConfig(miss_rate=0.0, occlusion_miss=0.0, duplicate_rate=0.2, false_positives=0.0)
    found, _ = detect(np.random.default_rng(1), boxes(N), np.ones(N), SIZE, cfg)
    assert abs(len(found) / N - 1.2) < rate_tolerance(0.2, N)


def test_false_positives_per_image_and_low_scores():
    cfg = DetectorConfig(false_positives=0.7)
    rng = np.random.default_rng(2)
    runs = [detect(rng, np.zeros((0, 4)), np.zeros(0), (320, 240), cfg) for _ in range(2000)]
    counts = np.array([len(b) for b, _ in runs])
    assert abs(counts.mean() - 0.7) < 4 * np.sqrt(0.7 / 2000)
    scores = np.concatenate([s for _, s in runs])
    assert scores.max() <= 0.5
    all_boxes = np.concatenate([b for b, _ in runs])
    assert (all_boxes[:, :2] >= 0).all() and (all_boxes[:, 0] + all_boxes[:, 2] <= 320).all()
    assert (all_boxes[:, 3] > all_boxes[:, 2]).all()  # upright, person-shaped


def test_box_jitter_has_the_configured_spread():
    cfg = DetectorConfig(miss_rate=0.0, occlusion_miss=0.0, duplicate_rate=0.0, false_positives=0.0,
                         jitter=0.05)
    found, _ = detect(np.random.default_rng(3), boxes(N), np.ones(N), SIZE, cfg)
    dx = (found[:, 0] - 1000.0) / 100.0
    log_h = np.log(found[:, 3] / 300.0)
    assert dx.std() == pytest.approx(0.05, rel=0.1)
    assert log_h.std() == pytest.approx(0.05, rel=0.1)
    assert abs(dx.mean()) < 0.005


def test_scores_fall_with_occlusion_and_come_best_first():
    cfg = DetectorConfig(miss_rate=0.0, occlusion_miss=0.0, duplicate_rate=0.0, false_positives=0.0,
                         jitter=0.0)
    visible = np.random.default_rng(4).uniform(size=N)
    # Tag each box by its x so that the score can be matched back to its person.
    tagged = boxes(N)
    tagged[:, 0] = np.arange(N) * 2.0
    found, scores = detect(np.random.default_rng(5), tagged, visible, (20_000, 10_000), cfg)
    person = np.round(found[:, 0] / 2.0).astype(int)
    assert np.corrcoef(visible[person], scores)[0, 1] > 0.9
    assert (np.diff(scores) <= 0).all()


def test_bad_rates_are_refused():
    with pytest.raises(ConfigError, match="miss_rate"):
        DetectorConfig(miss_rate=1.5)
    with pytest.raises(ConfigError, match="occlusion_miss"):
        DetectorConfig(miss_rate=0.8, occlusion_miss=0.5)
