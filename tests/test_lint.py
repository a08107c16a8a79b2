"""The layering of docs/DESIGN.md (import-linter, setup.cfg) and ruff's small rule set
(pyproject.toml): both run in `make test`, so a violating change fails here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_imports_run_only_downward(tmp_path):
    # import-linter reads a package from one folder; data_modules/ and callbacks/ join vidpose/
    # only when installed (setup.cfg's package_dir), so the check runs on that layout.
    layout = tmp_path / "vidpose"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "src" / "vidpose", layout, ignore=ignore)
    for folder in ("data_modules", "callbacks"):
        shutil.copytree(REPO / folder, layout / folder, ignore=ignore)
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache", str(REPO / "setup.cfg")],
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout
