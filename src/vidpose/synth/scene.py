"""A scene to film: camera path, persons with their motions, static occluders, a far crowd.

Geometry: persons and occluders stand on a ground plane seen by an eye-level pinhole
camera, so a person at distance Z is ``focal / Z`` pixels per metre tall and stands lower
in the image the nearer they are. Everything lives on a "canvas" (the camera's image plane
at zoom 1, wide enough for the pan); each frame's view maps canvas to image with a zoom, a
pan and a shake.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vidpose.errors import ConfigError
from vidpose.synth.appearance import Appearance, sample_appearance
from vidpose.synth.body import Proportions, sample_proportions
from vidpose.synth.motion import ACTIVITIES, Motion, sample_motion

REFERENCE_HEIGHT = 1.72  # metres: the person height that person_height fractions refer to


@dataclass(frozen=True)
class SceneConfig:
    """The knobs of one kind of scene (a video or a still image)."""

    width: int = 320
    height: int = 240
    persons: tuple[int, int] = (2, 5)  # persons per scene, inclusive range
    overlap: float = 0.2  # chance that a person is placed right next to / behind another
    occluders: tuple[int, int] = (0, 2)
    speed: float = 1.0  # scales walking/running speed and gesture rhythm
    person_height: tuple[float, float] = (0.35, 0.75)  # fraction of the image height
    activities: tuple[float, float, float, float] = (0.5, 0.15, 0.2, 0.15)  # ACTIVITIES weights
    enter: float = 0.25  # chance that a walker or runner enters from outside the frame
    pan: float = 1.5  # largest camera pan speed, pixels per frame
    zoom: float = 0.15  # largest zoom change over a video (0.15: up to 15 % closer)
    shake: float = 0.7  # camera shake, pixels (standard deviation)
    motion_blur: float = 0.25  # chance of a frame blurred by a fast camera move
    noise: float = 4.0  # largest pixel noise standard deviation, grey levels
    jpeg_quality: tuple[int, int] = (70, 95)
    crowd: float = 0.25  # chance of a far-away crowd, written as an ignore region
    fps: float = 10.0  # frames per second of the synthetic camera
    min_area: int = 24  # persons showing fewer pixels than this are not annotated

    def __post_init__(self) -> None:
        for name in ("persons", "occluders", "person_height", "jpeg_quality"):
            lo, hi = getattr(self, name)
            if lo > hi or lo < 0:
                raise ConfigError(f"scene.{name}: expected 0 <= min <= max; got {(lo, hi)}")
        for name in ("overlap", "enter", "motion_blur", "crowd"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"scene.{name}: expected a probability in [0, 1]; "
                                  f"got {getattr(self, name)}")
        if len(self.activities) != len(ACTIVITIES) or min(self.activities) < 0 or sum(self.activities) <= 0:
            raise ConfigError(f"scene.activities: expected {len(ACTIVITIES)} non-negative weights "
                              f"for {ACTIVITIES}; got {self.activities}")
        if self.width < 16 or self.height < 16 or self.speed <= 0 or self.fps <= 0:
            raise ConfigError("scene: width and height must be >= 16 px, speed and fps > 0")


@dataclass(frozen=True)
class Camera:
    """Ground-plane pinhole camera on the canvas plus a per-frame view (pan, zoom, shake)."""

    focal: float  # pixels at zoom 1
    elevation: float  # camera height above the ground, metres
    horizon: float  # canvas row of the horizon
    origin_u: float  # canvas column of ground X = 0
    image_size: tuple[int, int]  # (width, height) of the frames
    centers: np.ndarray  # (T, 2) canvas point at the image centre in each frame
    zooms: np.ndarray  # (T,)

    def ground(self, x: float, z: float) -> tuple[np.ndarray, float]:
        """Canvas position of ground point (x, z) and the pixels per metre there."""
        scale = self.focal / z
        return np.array([self.origin_u + scale * x, self.horizon + scale * self.elevation]), scale

    def affine(self, t: int) -> np.ndarray:
        """(2, 3) canvas -> image transform of frame ``t``."""
        zoom, (cu, cv) = self.zooms[t], self.centers[t]
        w, h = self.image_size
        return np.array([[zoom, 0.0, w / 2 - zoom * cu], [0.0, zoom, h / 2 - zoom * cv]])

    def to_image(self, points: np.ndarray, t: int) -> np.ndarray:
        m = self.affine(t)
        return points @ m[:, :2].T + m[:, 2]

    def image_motion(self, t: int) -> np.ndarray:
        """How far the static background moved in the image since the previous frame (px)."""
        if t == 0:
            return np.zeros(2)
        return -(self.centers[t] - self.centers[t - 1]) * self.zooms[t]


@dataclass(frozen=True)
class Actor:
    """A person of the scene: body, look and motion; its index is its track id."""

    proportions: Proportions
    appearance: Appearance
    motion: Motion


@dataclass(frozen=True)
class Occluder:
    """A static box, pole or board standing on the ground at (x, z), metres."""

    kind: str
    x: float
    z: float
    width: float
    height: float
    color: np.ndarray
    striped: bool


@dataclass(frozen=True)
class Crowd:
    """Far-away persons, painted into the background and never annotated."""

    actors: tuple[Actor, ...]


@dataclass(frozen=True)
class Scene:
    config: SceneConfig
    camera: Camera
    canvas_size: tuple[int, int]  # (width, height)
    actors: tuple[Actor, ...]
    occluders: tuple[Occluder, ...]
    crowd: Crowd | None
    seed: tuple[int, ...]  # where the per-frame randomness (noise, blur) comes from
    num_frames: int
    style: dict = field(default_factory=dict)  # background style choices


def _camera(rng: np.random.Generator, cfg: SceneConfig, num_frames: int) -> tuple[Camera, tuple[int, int]]:
    w, h = cfg.width, cfg.height
    pan = rng.uniform(-cfg.pan, cfg.pan) if num_frames > 1 else 0.0
    shake = rng.normal(0.0, cfg.shake, size=(num_frames, 2)) if num_frames > 1 else np.zeros((1, 2))
    margin = int(np.ceil(abs(pan) * (num_frames - 1) + 4 * cfg.shake)) + 8
    canvas = (w + 2 * margin, h + 2 * margin)
    start = np.array([canvas[0] / 2 - pan * (num_frames - 1) / 2, canvas[1] / 2])
    centers = start + np.stack([pan * np.arange(num_frames), np.zeros(num_frames)], -1) + shake
    if num_frames > 1:
        # Zoom drifts smoothly towards a target (a slow zoom in or out), never below 1.
        target = rng.uniform(0.0, cfg.zoom)
        zooms = 1.0 + target * np.clip(np.linspace(rng.uniform(-0.5, 0.5), 1.0, num_frames), 0, 1)
        if rng.uniform() < 0.5:
            zooms = zooms[::-1].copy()
    else:
        zooms = np.array([1.0 + rng.uniform(0.0, cfg.zoom)])
    camera = Camera(focal=h * rng.uniform(0.9, 1.15), elevation=rng.uniform(1.45, 1.95),
                    horizon=margin + h * rng.uniform(0.12, 0.3), origin_u=canvas[0] / 2,
                    image_size=(w, h), centers=centers, zooms=zooms)
    return camera, canvas


def _depth_range(cfg: SceneConfig, camera: Camera) -> tuple[float, float]:
    """Distances at which a reference person has the configured heights in the image."""
    lo, hi = cfg.person_height
    return (camera.focal * REFERENCE_HEIGHT / (hi * cfg.height),
            camera.focal * REFERENCE_HEIGHT / (max(lo, 1e-3) * cfg.height))


def _ground_x(camera: Camera, u: float, z: float) -> float:
    """Ground X that projects to canvas column ``u`` at distance ``z``."""
    return (u - camera.origin_u) * z / camera.focal


def _sample_actors(rng: np.random.Generator, cfg: SceneConfig, camera: Camera,
                   num_frames: int) -> list[Actor]:
    z_near, z_far = _depth_range(cfg, camera)
    duration = max(num_frames - 1, 1) / cfg.fps
    view_lo = camera.centers[0, 0] - cfg.width / 2
    view_hi = camera.centers[0, 0] + cfg.width / 2
    weights = np.asarray(cfg.activities, dtype=np.float64)
    actors: list[Actor] = []
    for _ in range(int(rng.integers(cfg.persons[0], cfg.persons[1] + 1))):
        props = sample_proportions(rng)
        activity = str(rng.choice(ACTIVITIES, p=weights / weights.sum()))
        travels = activity in ("walk", "run")
        if actors and rng.uniform() < cfg.overlap:
            # Next to / behind someone already there: this is what makes crowds overlap.
            friend = actors[int(rng.integers(len(actors)))].motion
            z = float(np.clip(friend.start[1] + rng.uniform(-0.8, 0.8), z_near, z_far * 1.2))
            x = friend.start[0] + rng.uniform(-0.45, 0.45)
            heading = friend.yaw + rng.normal(0, 0.3) if travels else rng.normal(0, 0.8)
        else:
            z = float(rng.uniform(z_near, z_far))
            x = _ground_x(camera, rng.uniform(view_lo + 0.08 * cfg.width, view_hi - 0.08 * cfg.width), z)
            if travels:
                # Mostly across the view (persons cross each other), sometimes towards or away.
                heading = (rng.choice([-1, 1]) * np.pi / 2 + rng.normal(0, 0.35)
                           if rng.uniform() < 0.8 else rng.choice([0.0, np.pi]) + rng.normal(0, 0.4))
                if abs(np.sin(heading)) > 0.7 and rng.uniform() < cfg.enter:
                    # Crossing the view: start just outside the side it comes from, walk in.
                    edge = view_lo - 0.1 * cfg.width if np.sin(heading) > 0 else view_hi + 0.1 * cfg.width
                    x = _ground_x(camera, edge, z)
            else:
                heading = rng.normal(0, 0.9)
        motion = sample_motion(rng, activity, (float(x), z), float(heading), cfg.speed, props.height)
        # Keep travellers towards or away from the camera inside the depth range.
        z_end = z + motion.velocity[1] * duration
        if not z_near * 0.8 <= z_end <= z_far * 1.3:
            motion = sample_motion(rng, activity, (float(x), z), float(np.pi - heading), cfg.speed,
                                   props.height)
        actors.append(Actor(props, sample_appearance(rng), motion))
    return actors


def _sample_occluders(rng: np.random.Generator, cfg: SceneConfig, camera: Camera,
                      actors: list[Actor]) -> list[Occluder]:
    z_near, z_far = _depth_range(cfg, camera)
    depths = [a.motion.start[1] for a in actors] or [z_far]
    occluders = []
    for _ in range(int(rng.integers(cfg.occluders[0], cfg.occluders[1] + 1))):
        kind = str(rng.choice(["pole", "box", "board"]))
        width, height = {"pole": (rng.uniform(0.1, 0.25), rng.uniform(2.4, 3.6)),
                         "box": (rng.uniform(0.4, 0.9), rng.uniform(0.4, 0.9)),
                         "board": (rng.uniform(0.3, 0.6), rng.uniform(1.0, 1.6))}[kind]
        # In front of most persons: between the nearest distance and the median person.
        z = float(rng.uniform(z_near, max(float(np.median(depths)), 1.2 * z_near)))
        u = rng.uniform(camera.centers[0, 0] - cfg.width / 2, camera.centers[0, 0] + cfg.width / 2)
        color = rng.uniform(40, 200, size=3)
        occluders.append(Occluder(kind, _ground_x(camera, u, z), z, float(width), float(height),
                                  color, bool(rng.uniform() < 0.4)))
    return occluders


def _sample_crowd(rng: np.random.Generator, cfg: SceneConfig, camera: Camera) -> Crowd:
    _, z_far = _depth_range(cfg, camera)
    z0 = z_far * rng.uniform(1.6, 2.4)
    u0 = rng.uniform(camera.centers[0, 0] - 0.3 * cfg.width, camera.centers[0, 0] + 0.3 * cfg.width)
    x0 = _ground_x(camera, u0, z0)
    actors = []
    for _ in range(int(rng.integers(6, 13))):
        props = sample_proportions(rng)
        activity = str(rng.choice(["stand", "gesture"]))
        start = (x0 + rng.uniform(-1.6, 1.6), z0 + rng.uniform(-1.0, 1.0))
        actors.append(Actor(props, sample_appearance(rng),
                            sample_motion(rng, activity, start, float(rng.normal(0, 1.2)), 1.0,
                                          props.height)))
    return Crowd(tuple(actors))


def sample_scene(rng: np.random.Generator, cfg: SceneConfig, num_frames: int,
                 seed: tuple[int, ...]) -> Scene:
    """A random scene of ``num_frames`` frames (1 for a still image)."""
    camera, canvas = _camera(rng, cfg, num_frames)
    actors = _sample_actors(rng, cfg, camera, num_frames)
    occluders = _sample_occluders(rng, cfg, camera, actors)
    crowd = _sample_crowd(rng, cfg, camera) if rng.uniform() < cfg.crowd else None
    style = {"upper": str(rng.choice(["buildings", "wall", "noise"])),
             "ground": str(rng.choice(["tiles", "noise", "stripes"]))}
    return Scene(cfg, camera, canvas, tuple(actors), tuple(occluders), crowd, tuple(seed),
                 num_frames, style)
