"""What a person looks like: skin, hair, clothing colours and textures, accessories.

Clothing colour and texture are the identity cues a tracker can use; the accessories and
the sleeve shades are left/right cues every person shares, so a network can tell the
person's own left from right: the left sleeve and trouser leg are lighter and the right
ones darker, a watch sits on the left wrist, and a bag hangs from a strap over the left
shoulder at the right hip. Colours are BGR, as OpenCV draws them.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

PATTERNS: tuple[str, ...] = ("plain", "stripes", "checks")
# Skin tones from light to dark (BGR), a spread like the ones in COCO.
SKIN_TONES = np.array([[196, 224, 255], [125, 194, 241], [105, 172, 224], [66, 134, 198],
                       [36, 85, 141], [37, 56, 90]], dtype=np.float64)
HAIR = np.array([[20, 20, 25], [25, 40, 70], [40, 70, 120], [90, 170, 210], [170, 170, 170],
                 [30, 60, 160]], dtype=np.float64)


def lighter(color: np.ndarray, amount: float = 0.32) -> np.ndarray:
    """The colour mixed towards white: the shade of the person's LEFT sleeve and leg."""
    return color + amount * (255.0 - color)


def darker(color: np.ndarray, amount: float = 0.32) -> np.ndarray:
    """The colour mixed towards black: the shade of the person's RIGHT sleeve and leg."""
    return color * (1.0 - amount)


@dataclass(frozen=True)
class Appearance:
    """Colours (BGR float) and textures of one person."""

    skin: np.ndarray
    hair: np.ndarray
    shirt: np.ndarray
    shirt_pattern_color: np.ndarray
    pattern: str
    pattern_period: float  # stripe period as a fraction of the person's height
    pattern_angle: float  # radians, stripes' direction in the image
    trousers: np.ndarray
    shoes: np.ndarray
    long_sleeves: bool
    long_trousers: bool
    bag: bool
    bag_color: np.ndarray
    watch_color: np.ndarray


def _random_color(rng: np.random.Generator, saturation: tuple[float, float],
                  value: tuple[float, float]) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*saturation), rng.uniform(*value))
    return np.array([b, g, r]) * 255.0


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """A random outfit: mostly saturated shirts (good identity cues), plainer trousers."""
    shirt = _random_color(rng, (0.35, 0.95), (0.35, 0.95))
    second = _random_color(rng, (0.0, 0.8), (0.1, 1.0))
    # Keep the texture readable: the pattern colour must differ from the shirt's.
    if np.abs(second - shirt).sum() < 150:
        second = 255.0 - shirt
    return Appearance(
        skin=SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.92, 1.05),
        hair=HAIR[rng.integers(len(HAIR))],
        shirt=shirt,
        shirt_pattern_color=second,
        pattern=str(rng.choice(PATTERNS, p=[0.4, 0.35, 0.25])),
        pattern_period=float(rng.uniform(0.03, 0.07)),
        pattern_angle=float(rng.choice([0.0, np.pi / 2, np.pi / 4]) + rng.normal(0, 0.1)),
        trousers=_random_color(rng, (0.0, 0.7), (0.12, 0.75)),
        shoes=_random_color(rng, (0.0, 0.4), (0.05, 0.5)),
        long_sleeves=bool(rng.uniform() < 0.6),
        long_trousers=bool(rng.uniform() < 0.8),
        bag=bool(rng.uniform() < 0.5),
        bag_color=_random_color(rng, (0.2, 0.9), (0.2, 0.7)),
        watch_color=np.array([30.0, 30.0, 30.0]) if rng.uniform() < 0.5 else np.array([40.0, 200.0, 230.0]),
    )
