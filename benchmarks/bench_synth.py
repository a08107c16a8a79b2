"""Synthetic world: frames rendered and written per second (annotations, masks, JPEG included)."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path


def run(quick: bool = False) -> dict[str, float]:
    from vidpose.synth import synthesize

    preset = "tiny" if quick else "default"
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        manifest = synthesize(Path(tmp) / preset, preset=preset, seed=0, progress=False)
        seconds = time.perf_counter() - start
    frames = sum(split["images"] for layout in manifest["counts"].values() for split in layout.values())
    fps = frames / seconds
    print(f"preset {preset}: {frames} frames in {seconds:.1f} s = {fps:.0f} frames/s")
    return {"frames": float(frames), "seconds": seconds, "frames_per_s": fps}
