"""What a measurement ran on: the CPU's model and cores, library versions.

Kept free of torch and Lightning so that ``vidpose bench`` records (``bench.py``) and run
folders (``run/folders.py``'s ``finished.yaml``) describe the machine the same way.
"""
from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host() -> dict[str, object]:
    """CPU model and cores, torch and Python versions (torch's from its metadata: nothing
    imported)."""
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "?"
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch_version,
            "python": platform.python_version()}
