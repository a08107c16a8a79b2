"""Scene sampling: camera geometry and path, person placement, crossing, entering, knobs."""
from __future__ import annotations

import numpy as np
import pytest

from vidpose.errors import ConfigError
from vidpose.synth.motion import position
from vidpose.synth.scene import REFERENCE_HEIGHT, SceneConfig, sample_scene


def scenes(cfg: SceneConfig, n: int, frames: int = 24):
    return [sample_scene(np.random.default_rng(i), cfg, frames, (i,)) for i in range(n)]


def image_u(scene, x: float, z: float, t: int) -> float:
    foot, _ = scene.camera.ground(x, z)
    return float(scene.camera.to_image(foot[None], t)[0, 0])


def test_ground_projection_by_hand():
    scene = scenes(SceneConfig(), 1)[0]
    cam = scene.camera
    foot, scale = cam.ground(2.0, 4.0)
    assert scale == pytest.approx(cam.focal / 4.0)
    assert foot[0] == pytest.approx(cam.origin_u + cam.focal / 2.0)
    assert foot[1] == pytest.approx(cam.horizon + cam.elevation * cam.focal / 4.0)


def test_persons_have_the_configured_image_heights():
    cfg = SceneConfig(person_height=(0.4, 0.6), enter=0.0, overlap=0.0)
    for scene in scenes(cfg, 10, frames=1):
        for actor in scene.actors:
            z = actor.motion.start[1]
            fraction = scene.camera.focal * REFERENCE_HEIGHT / z / cfg.height
            assert 0.4 - 1e-9 <= fraction <= 0.6 + 1e-9


def test_camera_pans_steadily_and_zooms_in_not_out():
    cfg = SceneConfig(pan=2.0, shake=0.0, zoom=0.2)
    for scene in scenes(cfg, 5):
        steps = np.diff(scene.camera.centers, axis=0)
        assert np.allclose(steps, steps[0]) and abs(steps[0, 0]) <= 2.0 and steps[0, 1] == 0
        assert (scene.camera.zooms >= 1.0).all() and (scene.camera.zooms <= 1.2 + 1e-9).all()
        # The view never leaves the painted canvas.
        half = np.array(scene.camera.image_size) / 2 / scene.camera.zooms[:, None]
        assert (scene.camera.centers - half >= 0).all()
        assert (scene.camera.centers + half <= np.array(scene.canvas_size)).all()


def test_walkers_cross_each_other_and_enter_the_view():
    cfg = SceneConfig(persons=(3, 5), activities=(1.0, 0.0, 0.0, 0.0), enter=1.0, overlap=0.0,
                      pan=0.0, shake=0.0)
    crossings = entered = lateral = 0
    for scene in scenes(cfg, 20):
        w = cfg.width
        start = [image_u(scene, *a.motion.start, 0) for a in scene.actors]
        end = [image_u(scene, *position(a.motion, 23 / cfg.fps), 23) for a in scene.actors]
        for i, actor in enumerate(scene.actors):
            vx, vz = actor.motion.velocity
            if abs(vx) > 0.7 * np.hypot(vx, vz):
                lateral += 1
                entered += (start[i] < 0 or start[i] > w) and 0 <= end[i] <= w
            for j in range(i):
                crossings += (start[i] - start[j]) * (end[i] - end[j]) < 0
    assert lateral > 20
    assert entered / lateral > 0.7  # walkers across the view come in from outside it
    assert crossings >= 5


def test_overlap_knob_packs_persons_together():
    def spread(overlap: float) -> float:
        cfg = SceneConfig(persons=(5, 5), overlap=overlap, enter=0.0)
        return float(np.mean([np.std([a.motion.start[0] for a in s.actors]) for s in scenes(cfg, 20, 1)]))
    assert spread(0.95) < 0.5 * spread(0.0)


@pytest.mark.parametrize("bad, field", [({"persons": (3, 1)}, "persons"), ({"overlap": 1.5}, "overlap"),
                                        ({"activities": (1.0, 0.0)}, "activities")])
def test_bad_knobs_are_refused(bad, field):
    with pytest.raises(ConfigError, match=field):
        SceneConfig(**bad)
