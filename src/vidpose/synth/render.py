"""Painter's-algorithm rasteriser that also writes which shape covers every pixel.

Shapes (filled polygons: capsules, discs, torso hulls, occluder boxes) are drawn far to
near. Next to the colour image it fills a shape-index map; since each shape knows its
owner (a person or the scenery) and its body part, that map is the depth buffer the
annotations come from: person masks, and whether a keypoint is seen or hidden.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

_SHIFT = 4  # cv2 fixed-point bits: polygons are drawn with 1/16 pixel precision
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class Pattern:
    """A clothing texture: stripes or checks of ``color`` over the shape's own colour.

    origin: where the pattern is anchored in the image (it moves with the person);
    period: stripe period in pixels; angle: the stripes' normal direction, radians.
    """

    kind: str
    color: np.ndarray
    period: float
    angle: float
    origin: tuple[float, float]


@dataclass
class Shape:
    """A filled polygon in image pixels (pixel centres at integer coordinates).

    depth orders objects (metres from the camera, farther drawn first) and sub_depth the
    shapes within one object; owner is the person index (-1: scenery) and part the body
    part index (-1: none).
    """

    polygon: np.ndarray
    color: np.ndarray
    depth: float
    sub_depth: float = 0.0
    owner: int = -1
    part: int = -1
    pattern: Pattern | None = None
    outline: float = 0.6  # outline drawn in color * outline; 0 draws none


@dataclass
class Raster:
    """What the rasteriser produced for one frame."""

    image: np.ndarray  # (H, W, 3) uint8 BGR
    shape_index: np.ndarray  # (H, W) int32, -1 where the background shows
    owner: np.ndarray  # (S,) int32, the owner of each shape (in input order)
    part: np.ndarray  # (S,) int32

    def owner_map(self) -> np.ndarray:
        """(H, W) int32 person index at each pixel, -1 for background and scenery."""
        lookup = np.append(self.owner, -1).astype(np.int32)  # index -1 -> the appended -1
        return lookup[self.shape_index]


@lru_cache(maxsize=None)
def _unit_ring(n: int) -> np.ndarray:
    """(n, 2) points on the unit circle (cached: every limb of every frame needs one)."""
    angle = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    ring = np.stack([np.cos(angle), np.sin(angle)], -1)
    ring.flags.writeable = False
    return ring


def circle_polygon(center: np.ndarray, radius: float, n: int = 20) -> np.ndarray:
    """(n, 2) points on a circle."""
    return np.asarray(center, dtype=np.float64) + radius * _unit_ring(n)


def hull_of_circles(centers: np.ndarray, radii: np.ndarray | float, n: int = 16) -> np.ndarray:
    """The convex hull (as a polygon) of discs: a tapered capsule for two, a rounded hull for more."""
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    radii = np.broadcast_to(np.asarray(radii, dtype=np.float64), (len(centers),))
    points = (centers[:, None, :] + radii[:, None, None] * _unit_ring(n)[None]).reshape(-1, 2)
    return cv2.convexHull(points.astype(np.float32))[:, 0, :].astype(np.float64)


def _fill_colors(shape: Shape, x0: int, y0: int, h: int, w: int) -> np.ndarray:
    """(h, w, 3) colours of a patterned shape over its region of interest."""
    pattern = shape.pattern
    ys, xs = np.mgrid[y0:y0 + h, x0:x0 + w].astype(np.float32)
    xs -= pattern.origin[0]
    ys -= pattern.origin[1]
    c, s = np.cos(pattern.angle), np.sin(pattern.angle)
    along = np.floor((xs * c + ys * s) / pattern.period)
    if pattern.kind == "checks":
        across = np.floor((-xs * s + ys * c) / pattern.period)
        second = (along + across) % 2 == 1
    else:
        # Stripes one third of the period wide, as on a striped shirt.
        second = ((xs * c + ys * s) / pattern.period - along) < 0.35
    return np.where(second[..., None], pattern.color, shape.color)


def rasterize(background: np.ndarray, shapes: list[Shape]) -> Raster:
    """Draw ``shapes`` far to near over a copy of ``background``; fill the shape-index map."""
    image = background.copy()
    height, width = image.shape[:2]
    index = np.full((height, width), -1, dtype=np.int32)
    order = sorted(range(len(shapes)), key=lambda i: (shapes[i].depth, shapes[i].sub_depth),
                   reverse=True)
    for i in order:
        shape = shapes[i]
        poly = shape.polygon
        x0 = max(int(np.floor(poly[:, 0].min())), 0)
        x1 = min(int(np.ceil(poly[:, 0].max())) + 1, width)
        y0 = max(int(np.floor(poly[:, 1].min())), 0)
        y1 = min(int(np.ceil(poly[:, 1].max())) + 1, height)
        if x0 >= x1 or y0 >= y1:
            continue
        fixed = np.round(poly * _ONE).astype(np.int32)
        mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        cv2.fillPoly(mask, [fixed - np.array([x0, y0], dtype=np.int32) * _ONE], 1, cv2.LINE_8, _SHIFT)
        inside = mask.view(bool)
        roi = image[y0:y1, x0:x1]
        if shape.pattern is None:
            roi[inside] = np.clip(shape.color, 0, 255).astype(np.uint8)
        else:
            colors = _fill_colors(shape, x0, y0, y1 - y0, x1 - x0)
            roi[inside] = np.clip(colors[inside], 0, 255).astype(np.uint8)
        index[y0:y1, x0:x1][inside] = i
        if shape.outline > 0:
            edge = tuple(float(c) for c in np.clip(shape.color * shape.outline, 0, 255))
            cv2.polylines(image, [fixed], True, edge, 1, cv2.LINE_AA, _SHIFT)
    owner = np.array([s.owner for s in shapes], dtype=np.int32)
    part = np.array([s.part for s in shapes], dtype=np.int32)
    return Raster(image, index, owner, part)
