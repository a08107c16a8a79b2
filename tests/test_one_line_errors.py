"""Bad input through the CLI: exactly one line on stderr naming file, record and field, status 2.

Each case here printed a traceback (or several lines, or silently converted the value) before.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from torch.utils.data import DataLoader, Dataset

from vidpose.cli import main
from vidpose.errors import InputError
from vidpose.formats.posetrack import read_posetrack

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CONFORMANCE = SHARED / "conformance" / "posetrack_eval"


def _one_line_error(capsys, argv: list[str], *named: str) -> str:
    """Run the CLI; it must exit 2 with one stderr line holding every ``named`` part."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("vidpose: error: "), captured.err
    for part in named:
        assert part in captured.err, (part, captured.err)
    return captured.err


@pytest.fixture()
def pair(tmp_path) -> Path:
    """A PoseTrack18 ground-truth video and predictions for it (copies of the conformance set)."""
    if not CONFORMANCE.is_dir():
        pytest.skip("../shared/conformance not found")
    name = "000003_bonn_test.json"
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    shutil.copyfile(CONFORMANCE / "gt" / name, tmp_path / "gt" / name)
    shutil.copyfile(CONFORMANCE / "cases" / "jitter" / name, tmp_path / "pred" / name)
    return tmp_path


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _eval(pair: Path, *extra: str) -> list[str]:
    return ["eval", "posetrack", "--gt", str(pair / "gt"), "--pred", str(pair / "pred"), *extra]


def test_track_id_outside_int64(pair, capsys):
    pred = pair / "pred" / "000003_bonn_test.json"
    _edit(pred, lambda d: d["annotations"][2].update(track_id=2 ** 63))
    _one_line_error(capsys, _eval(pair), str(pred), "annotations[2]", "field 'track_id'",
                    "64-bit")


def test_track_id_outside_int64_in_a_2017_file(pair, capsys):
    gt = pair / "gt" / "000003_bonn_test.json"
    gt.write_text(json.dumps({"annolist": [
        {"image": [{"name": "a.jpg"}], "annorect": [{"track_id": [-2 ** 63 - 1]}]}]}))
    _one_line_error(capsys, _eval(pair), str(gt), "annolist[0] annorect 0", "field 'track_id'")


def test_json_nested_too_deep(pair, capsys):
    pred = pair / "pred" / "000003_bonn_test.json"
    pred.write_text("[" * 100_000 + "]" * 100_000)  # the standard library's RecursionError
    _one_line_error(capsys, _eval(pair), str(pred), "nested too deeply")
    # Deep enough for the checks (or the message's repr) to recurse, not for the parser.
    data = json.loads((pair / "gt" / "000003_bonn_test.json").read_text())
    data["annotations"][0]["track_id"] = "@"
    pred.write_text(json.dumps(data).replace('"@"', "[" * 1010 + "]" * 1010))
    _one_line_error(capsys, _eval(pair), str(pred), "nested too deeply")


@pytest.mark.parametrize("kind", ["posetrack", "coco"])
def test_out_under_a_file_is_refused_before_the_evaluation(pair, capsys, kind):
    out = pair / "gt" / "000003_bonn_test.json" / "result.json"
    argv = (_eval(pair) if kind == "posetrack" else
            ["eval", "coco", "--gt", str(pair / "none.json"), "--pred", str(pair / "none.json")])
    err = _one_line_error(capsys, argv + ["--out", str(out)], str(out), "field '--out'",
                          "is a file")
    assert "none.json" not in err  # refused before the inputs were even read


def test_out_not_writable_is_refused(pair, capsys, monkeypatch):
    # As root every folder is writable, so the permission answer is simulated.
    folder = pair / "results"
    folder.mkdir()
    monkeypatch.setattr("vidpose.formats.jsonio.os.access", lambda path, mode: False)
    _one_line_error(capsys, _eval(pair, "--out", str(folder / "r.json")), "field '--out'",
                    f"{folder} is not writable")
    assert main(_eval(pair, "--out", str(folder))) == 2  # a folder where a file is asked for
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.slow  # composing a tracking experiment imports the model stack
def test_track_out_under_a_file_is_refused_before_loading_anything(pair, capsys):
    out = pair / "gt" / "000003_bonn_test.json" / "tracked"
    _one_line_error(capsys, ["track", "--exp", "correspondence_t2_oks_gt", "--ckpt",
                             str(pair / "missing.ckpt"), "--video", str(pair / "missing.mp4"),
                             "--out", str(out)], str(out), "field '--out'")


def test_yaml_syntax_error_in_an_override(capsys):
    _one_line_error(capsys, ["train", "simple_baseline", "data.input_size=[64"],
                    "data.input_size=[64", "did not find expected")


def test_wrong_type_override(capsys):
    _one_line_error(capsys, ["train", "simple_baseline", "trainer.max_epochs=abc"],
                    "trainer.max_epochs", "'abc'")


@pytest.mark.parametrize("value", ["12.5", True])
def test_numeric_strings_and_booleans_in_keypoints_are_refused(pair, capsys, value):
    pred = pair / "pred" / "000003_bonn_test.json"

    def change(data):
        data["annotations"][4]["keypoints"][6] = value

    _edit(pred, change)
    _one_line_error(capsys, _eval(pair), str(pred), "annotations[4]", "field 'keypoints'",
                    repr(value))
    # The training readers refuse them as well (numpy would read both as numbers).
    gt = pair / "gt" / "000003_bonn_test.json"
    _edit(gt, change)
    with pytest.raises(Exception, match="field 'keypoints': expected numbers"):
        read_posetrack(gt, check_images=False)


class _Undecodable(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int):
        raise InputError("not decodable", file="x.jpg", record="image 3", field="file_name")


def test_error_in_a_dataloader_worker_is_the_workers_one_line():
    """torch re-raises a worker's InputError with the worker's traceback as its message; the
    error keeps the worker's own one-line message (which the CLI prints)."""
    with pytest.raises(InputError) as info:
        next(iter(DataLoader(_Undecodable(), num_workers=1)))
    assert str(info.value) == "x.jpg: record image 3: field 'file_name': not decodable"


@pytest.mark.slow
def test_error_in_a_dataloader_worker_through_train(tiny_synth, quick_overrides, tmp_path):
    """A training run whose images cannot be decoded, read by a worker process."""
    root = tmp_path / "real" / "posetrack18"  # not a synthetic set: nothing regenerates it
    shutil.copytree(tiny_synth / "posetrack18", root)
    for image in (root / "images").rglob("*.jpg"):
        image.write_bytes(b"not a jpeg")
    overrides = [o for o in quick_overrides
                 if not o.startswith(("data=", "data.root", "data.num_workers"))]
    argv = ["train", "simple_baseline", *overrides, "data=posetrack18", f"data.root={root}",
            "data.num_workers=1", "trainer.max_steps=1"]
    done = subprocess.run([sys.executable, "-m", "vidpose.cli", *argv], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 2, done.stderr
    err = done.stderr  # Lightning's own INFO lines come first
    assert "Traceback" not in err and "Caught" not in err, err
    last = err.rstrip("\n").splitlines()[-1]
    assert last.startswith("vidpose: error: ") and err.count("vidpose: error:") == 1, err
    assert "field 'file_name'" in last and "not decodable" in last, last
