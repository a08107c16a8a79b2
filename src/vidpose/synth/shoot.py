"""Film a scene: for every frame, the degraded image and its ground truth.

Per frame: warp the painted backdrop by the camera view, pose every person at that time,
project persons and occluders into the image, rasterise them far to near, read the labels
off the shape-index map, then blur, add noise and pick the JPEG quality.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from vidpose.synth.annotate import Labels, annotate
from vidpose.synth.background import paint_background
from vidpose.synth.effects import degrade, sensor_grain
from vidpose.synth.figure import pose_figure
from vidpose.synth.motion import facing, position, posture
from vidpose.synth.render import Pattern, Shape, rasterize
from vidpose.synth.scene import Camera, Occluder, Scene


@dataclass
class Shot:
    """One filmed frame."""

    image: np.ndarray  # (H, W, 3) uint8 BGR, before JPEG
    labels: Labels
    ignore_regions: list[np.ndarray]  # (N, 2) polygons in image pixels
    jpeg_quality: int


def occluder_polygons(occluder: Occluder, camera: Camera) -> list[tuple[np.ndarray, np.ndarray]]:
    """Canvas polygons and their colours: the front face, plus the top of a box."""
    (u0, v0), scale = camera.ground(occluder.x - occluder.width / 2, occluder.z)
    u1 = u0 + scale * occluder.width
    top = v0 - scale * occluder.height
    front = np.array([[u0, top], [u1, top], [u1, v0], [u0, v0]])
    faces = [(front, occluder.color)]
    if occluder.kind == "box":
        # The top face, seen from the camera above it, recedes towards the horizon.
        (b0, _), back_scale = camera.ground(occluder.x - occluder.width / 2, occluder.z + 0.7 * occluder.width)
        b1 = b0 + back_scale * occluder.width
        back_top = camera.horizon + back_scale * (camera.elevation - occluder.height)
        faces.append((np.array([[u0, top], [u1, top], [b1, back_top], [b0, back_top]]),
                      np.minimum(occluder.color * 1.25 + 20, 255)))
    return faces


def _occluder_shapes(scene: Scene, t: int) -> list[Shape]:
    shapes = []
    for occluder in scene.occluders:
        faces = occluder_polygons(occluder, scene.camera)
        for i, (poly, color) in enumerate(faces):
            image_poly = scene.camera.to_image(poly, t)
            pattern = None
            if occluder.striped and i == 0:
                period = max(2.0, 0.15 * scene.camera.focal / occluder.z * scene.camera.zooms[t])
                pattern = Pattern("stripes", color * 0.7, period, 0.0,
                                  (float(image_poly[0, 0]), float(image_poly[0, 1])))
            shapes.append(Shape(image_poly, color, occluder.z, 0.01 * i, pattern=pattern))
    return shapes


def _ignore_regions(hull: np.ndarray | None, scene: Scene, t: int) -> list[np.ndarray]:
    """The crowd's outline in frame ``t``, clipped to the image (none when out of view)."""
    if hull is None:
        return []
    w, h = scene.camera.image_size
    polygon = scene.camera.to_image(hull, t).astype(np.float32)
    rect = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float32)
    area, clipped = cv2.intersectConvexConvex(polygon, rect)
    if area < 4.0 or clipped is None:
        return []
    return [np.round(clipped[:, 0, :].astype(np.float64), 1)]


def film(scene: Scene) -> Iterator[Shot]:
    """Yield the scene's frames in order."""
    cfg, camera = scene.config, scene.camera
    canvas, crowd_hull = paint_background(np.random.default_rng((*scene.seed, 1)), scene)
    grain = sensor_grain(np.random.default_rng((*scene.seed, 3)), *camera.image_size)
    for t in range(scene.num_frames):
        rng = np.random.default_rng((*scene.seed, 2, t))
        backdrop = cv2.warpAffine(canvas, camera.affine(t), camera.image_size, flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT)
        shapes = _occluder_shapes(scene, t)
        figures = []
        seconds = t / cfg.fps
        for i, actor in enumerate(scene.actors):
            x, z = position(actor.motion, seconds)
            foot, scale = camera.ground(x, z)
            figure = pose_figure(actor.proportions, actor.appearance, posture(actor.motion, seconds),
                                 facing(actor.motion), camera.to_image(foot[None], t)[0],
                                 scale * camera.zooms[t], z, owner=i)
            figures.append(figure)
            shapes.extend(figure.shapes)
        raster = rasterize(backdrop, shapes)
        labels = annotate(raster, figures, list(range(len(figures))), min_area=cfg.min_area)
        image = degrade(raster.image, rng, camera.image_motion(t), blur_chance=cfg.motion_blur,
                        max_noise=cfg.noise, grain=grain)
        quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        yield Shot(image, labels, _ignore_regions(crowd_hull, scene, t), quality)
