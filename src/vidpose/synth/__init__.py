"""The synthetic multi-person video world: the default data of every experiment.

``synthesize(out, preset, seed)`` renders articulated persons walking, running and
gesturing in textured scenes with occluders and a moving camera, and writes them as
PoseTrack18, COCO and OCHuman-layout data sets with simulated detections (see ``write``).
"""
from vidpose.synth.presets import PRESETS, Preset, VideoSplit, get_preset
from vidpose.synth.write import VERSION, synthesize

__all__ = ["PRESETS", "VERSION", "Preset", "VideoSplit", "get_preset", "synthesize"]
