"""The Python API (issue 18.6): README's five lines run as written, predict for top-down and
bottom-up models, and the experiments shipped as package data of a (non-editable) wheel."""
from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vidpose
from vidpose.config import compose, list_experiments
from vidpose.errors import ConfigError, InputError
from vidpose.run import train

REPO = Path(__file__).resolve().parents[1]
EXP = "memory_t3_simple_baseline_memory"
README_CKPT = f"runs/{EXP}/<time>/checkpoints/last.ckpt"
SHRINK = ["trainer.max_steps=1", "trainer.limit_val_batches=1", "trainer.max_epochs=1"]


@pytest.fixture(scope="module")
def memory_ckpt(quick_runs, tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("api_runs")
    result = train(compose(EXP, quick_runs(runs) + SHRINK + ["data.input_size=[64,48]"]))
    return result.run_dir / "checkpoints" / "last.ckpt"


def readme_example() -> str:
    """The Python block of README's 'Python API' section."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_readme_five_lines_run_as_written(memory_ckpt, tiny_synth):
    code = readme_example()
    assert len(code.strip().splitlines()) == 5
    code = code.replace(README_CKPT, str(memory_ckpt)).replace(
        "data/synth/default/", f"{tiny_synth}/")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    # 1 pose of 17 joints for the one box; 8 frames, the two boxes' persons keep ids 0 and 1.
    assert out.getvalue().strip() == "1 (17, 3) 8 " + str([[0, 1]] * 8)


@pytest.mark.slow
def test_predict_maps_crops_to_image_pixels_and_refuses_bad_input(memory_ckpt, tiny_synth):
    predictor = vidpose.load(memory_ckpt)
    image_path = tiny_synth / "posetrack18/images/val/050001_synth_val/000000.jpg"
    image = np.asarray(Image.open(image_path).convert("RGB"))
    whole = predictor.predict(image)  # boxes=None: the whole image as one box
    assert len(whole) == 1 and whole[0].track_id == -1
    inside = predictor.predict(image, boxes=[[40, 20, 50, 90]])[0].keypoints
    # Heatmap peaks of the padded 50x90 box land around it (1.25 padding), not in the crop's
    # own 64x48 pixel frame.
    assert np.all(inside[:, 0] > 40 - 0.25 * 50) and np.all(inside[:, 0] < 90 + 0.25 * 50)
    assert np.all(inside[:, 1] > 20 - 0.25 * 90) and np.all(inside[:, 1] < 110 + 0.25 * 90)
    assert predictor.predict(image, boxes=[]) == []
    with pytest.raises(InputError, match="positive width"):
        predictor.predict(image, boxes=[[0, 0, -1, 5]])
    with pytest.raises(InputError, match="RGB uint8"):
        predictor.predict(image.astype(np.float32))
    with pytest.raises(InputError, match="boxes for 1 frames"):
        predictor.track([image, image], boxes=[[[40, 20, 50, 90]]])


def test_load_refuses_a_checkpoint_outside_a_run_folder(tmp_path):
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(InputError, match="not a checkpoint inside a run folder"):
        vidpose.load(path)
    with pytest.raises(InputError, match="checkpoint not found"):
        vidpose.load(tmp_path / "missing.ckpt")


@pytest.mark.slow
def test_bottom_up_predicts_from_the_image_alone(ae_features, tiny_synth):
    runs = Path(ae_features[0].split("=", 1)[1])
    ckpt = sorted(runs.glob("assoc_embedding/*/checkpoints/last.ckpt"))[0]
    predictor = vidpose.load(ckpt)
    image = sorted((tiny_synth / "coco" / "val").glob("*.jpg"))[0]
    poses = predictor.predict(image)
    assert all(p.keypoints.shape == (17, 3) for p in poses)
    with pytest.raises(ConfigError, match="bottom-up"):
        predictor.predict(image, boxes=[[0, 0, 10, 10]])
    with pytest.raises(ConfigError, match="track runs the tracking methods"):
        predictor.track([np.zeros((8, 8, 3), np.uint8)])


@pytest.mark.slow
def test_wheel_ships_the_experiments_and_finds_them_installed(tmp_path):
    """`pip install .` (not editable): the experiments travel as package data and
    experiments_dir() resolves inside the installed package, from any directory."""
    source = tmp_path / "src"  # a copy: building writes build/ beside setup.cfg
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "src", "data_modules", "callbacks",
                 "experiments"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                            if (REPO / name).is_dir() else {}))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(wheels)], check=True, timeout=120,
                   cwd=tmp_path)
    wheel = next(wheels.glob("vidpose-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"vidpose/experiments/{p.relative_to(REPO / 'experiments').as_posix()}"
               for p in (REPO / "experiments").rglob("*.yaml")}
    assert shipped and shipped <= names
    modules = {f"vidpose/{p.relative_to(REPO / 'src' / 'vidpose').as_posix()}"
               for p in (REPO / "src" / "vidpose").rglob("*.py")}
    modules |= {f"vidpose/{p.relative_to(REPO).as_posix()}" for folder in ("data_modules", "callbacks")
                for p in (REPO / folder).rglob("*.py")}
    assert modules - names == set()  # every package is listed in setup.cfg
    # A wheel is installed by unpacking it onto the path; it comes before the editable finder.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "VIDPOSE_EXPERIMENTS"}
    env["PYTHONPATH"] = str(site)
    probe = ("import vidpose.config as c; from vidpose.config import compose, experiments_dir, "
             "list_experiments; print(c.__file__); print(experiments_dir()); "
             "print(len(list_experiments())); print(compose('rnn_t4_aa').experiment.name)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env, check=True,
                         capture_output=True, text=True, timeout=120).stdout.split()
    assert Path(out[0]).is_relative_to(site) and Path(out[1]) == site / "vidpose" / "experiments"
    assert int(out[2]) == len(list_experiments()) and out[3] == "rnn_association"
