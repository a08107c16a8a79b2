"""Helpers for the synthetic-world tests: hand-built scenes with one person where we want them."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from vidpose.synth.appearance import sample_appearance
from vidpose.synth.body import sample_proportions
from vidpose.synth.motion import Motion
from vidpose.synth.scene import Actor, Occluder, Scene, SceneConfig, sample_scene
from vidpose.synth.shoot import film

# A still camera and a clean image: no pan, zoom, shake, blur, noise or crowd.
STILL = SceneConfig(width=160, height=128, persons=(1, 1), occluders=(0, 0), pan=0.0, zoom=0.0,
                    shake=0.0, motion_blur=0.0, noise=0.0, crowd=0.0)


def standing(x: float, z: float, yaw: float) -> Motion:
    """A person standing still at ground (x, z), facing ``yaw``, head straight at t = 0."""
    return Motion("stand", (x, z), (0.0, 0.0), yaw, phase=0.0, cadence=0.25, amplitude=1.0)


def fixed_camera(scene: Scene) -> Scene:
    """The scene seen by a known camera: focal 128 px, 1.6 m high, horizon on image row 32.

    A person ``z`` metres away is then ``128 / z`` px per metre and stands on image row
    ``32 + 1.6 * 128 / z``.
    """
    cam = scene.camera
    horizon = cam.centers[0, 1] - cam.image_size[1] / 2 + 32.0
    return replace(scene, camera=replace(cam, focal=128.0, elevation=1.6, horizon=horizon))


def one_person_scene(motion: Motion, occluders: tuple[Occluder, ...] = (), cfg: SceneConfig = STILL,
                     seed: int = 0, more: tuple[Motion, ...] = ()) -> Scene:
    """A still scene with the persons moving as given (the first is track 0) and no crowd."""
    rng = np.random.default_rng(seed)
    scene = sample_scene(rng, cfg, 1, (seed,))
    actors = tuple(Actor(sample_proportions(rng, height=1.7), sample_appearance(rng), m)
                   for m in (motion, *more))
    return fixed_camera(replace(scene, actors=actors, occluders=occluders, crowd=None))


@pytest.fixture()
def person_in_view():
    """A scene factory: one person standing at ground x = 0 (the image centre column), ``z`` metres away."""
    def make(yaw: float = 0.0, occluders: tuple[Occluder, ...] = (), z: float = 4.0,
             more: tuple[Motion, ...] = ()) -> Scene:
        return one_person_scene(standing(0.0, z, yaw), occluders, more=more)
    return make


@pytest.fixture()
def shoot():
    """Film a one-frame scene: returns its Shot."""
    return lambda scene: next(iter(film(scene)))


@pytest.fixture()
def stand():
    """``stand(x, z, yaw)``: the motion of a person standing still there."""
    return standing
