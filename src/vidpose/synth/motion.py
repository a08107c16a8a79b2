"""Joint-angle kinematics over time: walking, running, gesturing and standing persons.

Each activity is a periodic function of a phase that advances with the person's cadence,
so limbs swing the way a gait cycle does (legs in anti-phase, arms against the legs, knees
flexing in the swing phase) instead of jittering. Walkers and runners also translate over
the ground at a speed matched to their stride and face where they go.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidpose.synth.body import JointAngles

ACTIVITIES: tuple[str, ...] = ("walk", "run", "gesture", "stand")
GESTURES: tuple[str, ...] = ("wave", "raise", "point")
# Ground speed (m/s) and stride length per full gait cycle (m, for a 1.72 m person).
_GAIT = {"walk": (1.3, 1.45), "run": (3.4, 2.5)}


@dataclass(frozen=True)
class Motion:
    """How one person moves: activity, ground trajectory and rhythm.

    start, velocity: ground position (X, Z) metres at t = 0 and metres per second; X runs to
    the camera's right, Z away from it. yaw: facing of a person who does not travel.
    """

    activity: str
    start: tuple[float, float]
    velocity: tuple[float, float]
    yaw: float
    phase: float  # gait/gesture cycles at t = 0
    cadence: float  # cycles per second
    amplitude: float  # scales every swing
    gesture: str = "wave"
    gesture_side: int = 1  # 0: left arm, 1: right arm, 2: both
    head_rhythm: float = 0.3  # head turns per second (looking around)


def sample_motion(rng: np.random.Generator, activity: str, start: tuple[float, float],
                  heading: float, speed_scale: float, height: float) -> Motion:
    """A motion of ``activity`` from ``start``; travellers move along ``heading``.

    heading is the facing yaw (0 towards the camera, pi/2 to the image right); the ground
    velocity follows it and its speed comes from the activity times ``speed_scale``.
    """
    amplitude = float(rng.uniform(0.8, 1.15))
    phase = float(rng.uniform(0, 1))
    if activity in _GAIT:
        speed, stride = _GAIT[activity]
        speed *= speed_scale * float(rng.uniform(0.85, 1.15))
        stride *= height / 1.72 * amplitude
        velocity = (speed * np.sin(heading), -speed * np.cos(heading))
        return Motion(activity, start, (float(velocity[0]), float(velocity[1])), heading, phase,
                      speed / stride, amplitude, head_rhythm=float(rng.uniform(0.1, 0.4)))
    if activity not in ACTIVITIES:
        raise ValueError(f"unknown activity {activity!r}; known: {ACTIVITIES}")
    cadence = float(rng.uniform(0.8, 1.6) * speed_scale) if activity == "gesture" else 0.25
    return Motion(activity, start, (0.0, 0.0), heading, phase, cadence, amplitude,
                  gesture=str(rng.choice(GESTURES)), gesture_side=int(rng.integers(0, 3)),
                  head_rhythm=float(rng.uniform(0.1, 0.4)))


def position(motion: Motion, t: float) -> tuple[float, float]:
    """Ground position (X, Z) at time ``t`` seconds."""
    return (motion.start[0] + motion.velocity[0] * t, motion.start[1] + motion.velocity[1] * t)


def posture(motion: Motion, t: float) -> JointAngles:
    """Joint angles at time ``t`` seconds."""
    psi = 2 * np.pi * (motion.phase + motion.cadence * t)
    a = motion.amplitude
    legs = np.array([psi, psi + np.pi])  # left, right leg phase: anti-phase
    head_yaw = 0.35 * np.sin(2 * np.pi * motion.head_rhythm * t + 3 * motion.phase)
    if motion.activity == "walk":
        # Knee flexion peaks early in the swing (thigh moving forwards), straight at heel strike.
        return JointAngles(
            hip_flex=0.05 + 0.42 * a * np.sin(legs),
            knee_flex=0.08 + 1.0 * a * np.maximum(0.0, np.cos(legs + 0.5)) ** 2,
            hip_abd=np.full(2, 0.03),
            shoulder_flex=-0.38 * a * np.sin(legs),
            shoulder_abd=np.full(2, 0.1),
            elbow_flex=0.25 + 0.5 * np.maximum(0.0, -np.sin(legs)),
            elbow_lift=np.zeros(2),
            torso_lean=0.05, head_yaw=float(0.3 * head_yaw), head_pitch=0.0,
        )
    if motion.activity == "run":
        return JointAngles(
            hip_flex=0.15 + 0.55 * a * np.sin(legs),
            knee_flex=0.35 + 1.6 * a * np.maximum(0.0, np.cos(legs + 0.4)) ** 2,
            hip_abd=np.full(2, 0.04),
            shoulder_flex=-0.75 * a * np.sin(legs),
            shoulder_abd=np.full(2, 0.15),
            elbow_flex=1.45 + 0.25 * np.sin(legs + np.pi),
            elbow_lift=np.zeros(2),
            torso_lean=0.2, head_yaw=0.0, head_pitch=-0.15,
        )
    # Standing activities: weight shifts slowly from one leg to the other.
    sway = 0.05 * np.sin(2 * np.pi * 0.3 * t + motion.phase * 6)
    legs_still = dict(hip_flex=np.array([0.02, 0.02]) + [sway, -sway],
                      knee_flex=np.array([0.06, 0.06]) + np.maximum(0, [sway, -sway]) * 2,
                      hip_abd=np.full(2, 0.06))
    arms = dict(shoulder_flex=np.full(2, 0.05), shoulder_abd=np.full(2, 0.12),
                elbow_flex=np.full(2, 0.2), elbow_lift=np.zeros(2))
    if motion.activity == "gesture":
        active = np.array([motion.gesture_side in (0, 2), motion.gesture_side in (1, 2)])
        if motion.gesture == "wave":
            # Upper arm raised sideways, forearm swinging left-right above it.
            gesture = dict(shoulder_abd=np.full(2, 1.75), shoulder_flex=np.full(2, 0.3),
                           elbow_lift=np.full(2, 1.0) + 0.5 * a * np.sin(psi) * np.array([1.0, -1.0]),
                           elbow_flex=np.full(2, 0.2))
        elif motion.gesture == "raise":
            # Arms raised and lowered sideways (a jumping-jack arm cycle), elbows nearly straight.
            swing = 1.25 + 1.15 * a * np.sin(psi)
            gesture = dict(shoulder_abd=np.full(2, swing), shoulder_flex=np.full(2, 0.1),
                           elbow_lift=np.full(2, 0.1), elbow_flex=np.full(2, 0.1))
        else:
            # Pointing forwards and sweeping sideways.
            gesture = dict(shoulder_flex=np.full(2, 1.35 + 0.15 * np.sin(psi)),
                           shoulder_abd=np.full(2, 0.25 + 0.3 * np.sin(0.5 * psi)),
                           elbow_flex=np.full(2, 0.1), elbow_lift=np.zeros(2))
        arms = {k: np.where(active, gesture[k], arms[k]) for k in arms}
    return JointAngles(**legs_still, **arms, torso_lean=0.0, head_yaw=float(head_yaw),
                       head_pitch=float(0.1 * np.sin(psi)))


def facing(motion: Motion) -> float:
    """Facing yaw: travellers look where they go, others keep their sampled yaw."""
    vx, vz = motion.velocity
    if vx == 0.0 and vz == 0.0:
        return motion.yaw
    return float(np.arctan2(vx, -vz))
