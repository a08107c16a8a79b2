"""`vidpose data check`: a dataset layout read by the training readers, counted per split, or
one line naming the first missing or malformed item (issue 18.8)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vidpose.cli import main


def _check(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["data", "check", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _line(out: str, role: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(f"{role} "))


def test_posetrack18_fixture_val_split(fixtures, capsys):
    code, out, _ = _check(capsys, "data=posetrack18", f"data.root={fixtures / 'posetrack18'}",
                          "--split", "val")
    assert code == 0, out
    assert "val: 3 videos, 3 images (3 labelled), 14 persons" in _line(out, "val")
    assert out.rstrip().endswith("ok: the layout reads as the suite expects")


def test_posetrack18_fixture_without_train_split_names_it(fixtures, capsys):
    code, _, err = _check(capsys, "data=posetrack18", f"data.root={fixtures / 'posetrack18'}")
    assert code == 2
    assert err.startswith(f"vidpose: error: {fixtures / 'posetrack18' / 'annotations' / 'train'}: "
                          "field 'annotations': no annotations for split 'train'")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("dataset,split,images,persons", [("coco", "val2017", 4, 14),
                                                          ("ochuman", "val", 3, 5)])
def test_coco_and_ochuman_fixtures_in_the_documented_layout(fixtures, tmp_path, capsys, dataset,
                                                            split, images, persons):
    """docs/DATA.md's layout: ROOT/annotations/person_keypoints_<split>.json, ROOT/<split>/."""
    source = fixtures / dataset
    root = tmp_path / dataset
    (root / "annotations").mkdir(parents=True)
    shutil.copy(source / f"test_{dataset}.json", root / "annotations" / f"person_keypoints_{split}.json")
    shutil.copytree(source, root / split, ignore=shutil.ignore_patterns("*.json"))
    code, out, err = _check(capsys, f"data={dataset}", f"data.root={root}", "--split", split)
    assert code == 0, err
    line = _line(out, "train" if dataset == "ochuman" else "val")
    assert f"{dataset} {split}: {images} images ({images} labelled), {persons} persons" in line


def test_tiny_synthetic_set_counts_match_its_manifest(tiny_synth, capsys):
    code, out, err = _check(capsys, "data=synth_tiny", f"data.root={tiny_synth / 'posetrack18'}")
    assert code == 0, err
    manifest = json.loads((tiny_synth / "manifest.json").read_text())["counts"]["posetrack18"]
    for role in ("train", "val"):
        c = manifest[role]
        assert (f"posetrack18 {role}: {c['videos']} videos, {c['images']} images "
                f"({c['labeled_images']} labelled), {c['annotations']} persons") in _line(out, role)


def test_crowded_set_of_a_bottom_up_experiment(tiny_synth, capsys):
    manifest = json.loads((tiny_synth / "manifest.json").read_text())["counts"]
    code, out, err = _check(capsys, "--exp", "assoc_embedding", "data.dataset=coco",
                            f"data.root={tiny_synth / 'coco'}",
                            f"data.crowded_root={tiny_synth / 'ochuman'}")
    assert code == 0, err
    c = manifest["ochuman"]["val"]
    assert f"ochuman val: {c['images']} images" in _line(out, "crowded")
    c = manifest["coco"]["val"]
    assert f"{c['crowd_regions']} crowd regions" in _line(out, "val") or not c["crowd_regions"]


def _broken_copy(tiny_synth: Path, tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "posetrack18"
    shutil.copytree(tiny_synth / "posetrack18", root)
    video = sorted((root / "annotations" / "val").glob("*.json"))[0]
    return root, video


def test_broken_layout_missing_image_names_file_record_field(tiny_synth, tmp_path, capsys):
    root, video = _broken_copy(tiny_synth, tmp_path)
    data = json.loads(video.read_text())
    first = data["images"][0]
    (root / first["file_name"]).unlink()
    code, _, err = _check(capsys, "data=synth_tiny", f"data.root={root}", "--split", "val")
    assert code == 2
    assert err.startswith(f"vidpose: error: {video}: record image {first['id']}: field 'file_name': "
                          "image file not found")


def test_broken_layout_malformed_field_names_it(tiny_synth, tmp_path, capsys):
    root, video = _broken_copy(tiny_synth, tmp_path)
    data = json.loads(video.read_text())
    data["annotations"][0]["track_id"] = "seven"
    video.write_text(json.dumps(data))
    code, _, err = _check(capsys, "data=synth_tiny", f"data.root={root}", "--split", "val")
    assert code == 2
    assert f"vidpose: error: {video}: record annotation" in err and "field 'track_id'" in err


def test_missing_root_is_named_not_replaced_by_the_synthetic_set(tmp_path, capsys):
    code, out, err = _check(capsys, "data=posetrack18")
    assert code == 2 and not out
    assert "data.root must be given" in err
    code, _, err = _check(capsys, "data=posetrack18", f"data.root={tmp_path / 'nowhere'}")
    assert code == 2 and "dataset root not found" in err and str(tmp_path / "nowhere") in err
