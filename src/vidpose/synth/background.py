"""The static backdrop of a scene, painted once per video on the canvas.

Above the horizon: sky with buildings, a textured wall or coloured noise; below it a ground
in perspective (tiles, lanes or rough noise) fading into haze towards the horizon, so the
backdrop has the depth cues and texture clutter real footage has. A far-away crowd, when
the scene has one, is painted in too and its outline returned as an ignore region.
"""
from __future__ import annotations

import cv2
import numpy as np

from vidpose.synth.figure import pose_figure
from vidpose.synth.motion import facing, posture
from vidpose.synth.render import rasterize
from vidpose.synth.scene import Scene


def smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float,
                 channels: int = 1) -> np.ndarray:
    """(height, width, channels) float32 noise, roughly unit variance, blobs ~``cell`` px wide."""
    small = rng.normal(0.0, 1.0, size=(max(2, int(height / cell) + 2), max(2, int(width / cell) + 2),
                                       channels)).astype(np.float32)
    big = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    return big.reshape(height, width, channels)


def _color(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    return rng.uniform(lo, hi, size=3).astype(np.float32)


def _upper(rng: np.random.Generator, style: str, height: int, width: int) -> np.ndarray:
    """The part above the horizon, (height, width, 3) float32."""
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    if style == "buildings":
        top, bottom = _color(rng, 150, 255), _color(rng, 170, 255)
        top[0] = max(top[0], top[2] + 30)  # bluish sky (BGR)
        image = np.broadcast_to(top * (1 - rows) + bottom * rows, (height, width, 3)).copy()
        x = 0
        while x < width:
            w = int(rng.integers(width // 12 + 4, width // 4 + 8))
            top_row = int(rng.uniform(0.0, 0.8) * height)
            color = _color(rng, 40, 200)
            block = image[top_row:, x:x + w]
            ys, xs = np.mgrid[0:block.shape[0], 0:block.shape[1]]
            period = int(rng.integers(5, 10))
            windows = ((ys % period) < period // 2) & ((xs % period) < period // 2) & (ys > 2)
            block[:] = color
            block[windows] = color * 0.55 + 60
            x += w + int(rng.integers(0, 10))
        return image
    if style == "wall":
        base = _color(rng, 60, 220)
        image = base + 18 * smooth_noise(rng, height, width, 6, 3)
        period = int(rng.integers(6, 16))
        ys, xs = np.mgrid[0:height, 0:width]
        offset = (ys // period % 2) * (2 * period)
        mortar = ((ys % period) == 0) | (((xs + offset) % (4 * period)) == 0)
        image[mortar] *= 0.7
        return image
    # Foliage-like clutter: brightness blobs with a little colour variation.
    return (_color(rng, 60, 200) + 40 * smooth_noise(rng, height, width, 8)
            + 12 * smooth_noise(rng, height, width, 8, 3))


def _ground(rng: np.random.Generator, style: str, scene: Scene, top: int) -> np.ndarray:
    """The ground below canvas row ``top``, in perspective, (rows, width, 3) float32."""
    cam = scene.camera
    width, height = scene.canvas_size
    v, u = np.mgrid[top:height, 0:width].astype(np.float32)
    depth = cam.focal * cam.elevation / np.maximum(v - cam.horizon, 0.5)
    x = (u - cam.origin_u) * depth / cam.focal
    a = _color(rng, 50, 200)
    b = np.clip(a + rng.normal(0, 35, size=3).astype(np.float32), 0, 255)
    if style == "tiles":
        size = rng.uniform(0.5, 1.5)
        pattern = ((np.floor(x / size) + np.floor(depth / size)) % 2)[..., None]
    elif style == "stripes":
        lane = rng.uniform(0.8, 2.5)
        pattern = ((x / lane) % 1.0 < 0.12).astype(np.float32)[..., None]
    else:
        pattern = 0.5 + 0.25 * smooth_noise(rng, height - top, width, 3)
    ground = a * (1 - pattern) + b * pattern + 10 * smooth_noise(rng, height - top, width, 2, 3)
    # Haze: far ground fades to one colour (also hides tile aliasing near the horizon).
    haze = np.exp(-depth / (6.0 * cam.elevation))[..., None]
    return ground * haze + (a + b) / 2 * (1 - haze)


def paint_background(rng: np.random.Generator, scene: Scene) -> tuple[np.ndarray, np.ndarray | None]:
    """The canvas (H, W, 3) uint8 and the crowd's ignore polygon on it (None without a crowd)."""
    width, height = scene.canvas_size
    horizon = int(np.clip(round(scene.camera.horizon), 1, height - 1))
    canvas = np.empty((height, width, 3), dtype=np.float32)
    canvas[:horizon] = _upper(rng, scene.style["upper"], horizon, width)
    canvas[horizon:] = _ground(rng, scene.style["ground"], scene, horizon)
    image = np.clip(canvas, 0, 255).astype(np.uint8)
    if scene.crowd is None:
        return image, None
    shapes = []
    for i, actor in enumerate(scene.crowd.actors):
        motion = actor.motion
        foot, scale = scene.camera.ground(*motion.start)
        figure = pose_figure(actor.proportions, actor.appearance, posture(motion, 0.0), facing(motion),
                             foot, scale, motion.start[1], owner=i)
        shapes.extend(figure.shapes)
    points = np.concatenate([s.polygon for s in shapes]).astype(np.float32)
    hull = cv2.convexHull(points)[:, 0, :].astype(np.float64)
    # A few pixels of margin, as annotators draw ignore regions loosely.
    center = hull.mean(0)
    direction = hull - center
    hull = hull + 3.0 * direction / np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-9)
    return rasterize(image, shapes).image, hull
