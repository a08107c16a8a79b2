"""`vidpose track`: a video to PoseTrack18 results and an overlay, as a user types it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pytest

from vidpose.cli import main
from vidpose.config import compose
from vidpose.metrics.posetrack import evaluate_posetrack
from vidpose.run import train

SHRINK = ["trainer.max_steps=2", "trainer.limit_val_batches=1", "trainer.max_epochs=1",
          "data.input_size=[64,48]"]
EXP = "memory_t3_simple_baseline_memory"
VIDEO = "050001_synth_val"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, quick_runs) -> dict[str, Path]:
    """A 2-step memory model and a 2-step detector on the tiny synthetic set."""
    runs = tmp_path_factory.mktemp("runs")
    quick = quick_runs(runs)
    pose = train(compose(EXP, quick + SHRINK)).run_dir / "checkpoints" / "last.ckpt"
    detector = train(compose("centernet", quick + SHRINK[:3])).run_dir / "checkpoints" / "last.ckpt"
    return {"pose": pose, "detector": detector, "runs": runs, "quick": quick}


def track(trained, tmp_path, *args: str) -> tuple[int, Path]:
    out = tmp_path / "out"
    code = main(["track", "--exp", EXP, "--ckpt", str(trained["pose"]), "--out", str(out),
                 *args, *trained["quick"]])
    return code, out


def frames_in(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    return count


def test_track_a_frame_folder_with_a_detection_file(trained, tiny_synth, tmp_path, capsys):
    root = tiny_synth / "posetrack18"
    code, out = track(trained, tmp_path, "--video", str(root / "images" / "val" / VIDEO),
                      "--boxes", "detections", "--detections", str(root / "detections" / "val.json"))
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / f"{VIDEO}.json").read_text())
    assert len(results["images"]) == 8  # every frame, in order
    assert results["images"][0]["id"] == 10500010000
    assert results["annotations"] and all(a["track_id"] >= 0 for a in results["annotations"])
    assert frames_in(out / f"{VIDEO}.mp4") == 8
    assert "tracked 8 frames" in capsys.readouterr().out


def test_track_with_annotations_scores_the_result(trained, tiny_synth, tmp_path, capsys):
    root = tiny_synth / "posetrack18"
    code, out = track(trained, tmp_path, "--video", str(root / "images" / "val" / VIDEO),
                      "--boxes", "gt", "--annotations",
                      str(root / "annotations" / "val" / f"{VIDEO}.json"))
    assert code == 0, capsys.readouterr().err
    scores = json.loads((out / "scores.json").read_text())
    assert {"mAP", "MOTA", "MOTP", "id_switches"} <= set(scores)
    # The results evaluate to the same numbers with the file evaluator.
    gt = tmp_path / "gt"
    gt.mkdir()
    (gt / f"{VIDEO}.json").write_text((root / "annotations" / "val" / f"{VIDEO}.json").read_text())
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / f"{VIDEO}.json").write_text((out / f"{VIDEO}.json").read_text())
    result = evaluate_posetrack(gt, pred).as_dict()
    assert result["ap"][-1] == pytest.approx(scores["mAP"], abs=1e-6)
    assert result["mota"][-1] == pytest.approx(scores["MOTA"], abs=1e-6)


def test_track_the_real_fixture_video_with_our_detector(trained, fixtures, tmp_path, capsys):
    video = fixtures / "posetrack18" / "videos" / "000001_mpiinew_test"
    mp4 = video / "000001_mpiinew_test.mp4"
    code, out = track(trained, tmp_path, "--video", str(mp4), "--boxes", "detector",
                      "--detector", str(trained["detector"]))
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "000001_mpiinew_test.json").read_text())
    assert len(results["images"]) == 5
    assert frames_in(out / "000001_mpiinew_test.mp4") == 5


@pytest.mark.parametrize("args, message", [
    (["--boxes", "gt"], "--annotations"),
    (["--boxes", "detections"], "--detections FILE"),
])
def test_bad_track_requests_say_what_is_missing(trained, tiny_synth, tmp_path, capsys, args, message):
    video = tiny_synth / "posetrack18" / "images" / "val" / VIDEO
    code, _ = track(trained, tmp_path, "--video", str(video), *args)
    assert code == 2 and message in capsys.readouterr().err


def test_an_empty_video_folder_is_refused(trained, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _ = track(trained, tmp_path, "--video", str(empty), "--boxes", "detector",
                    "--detector", str(trained["detector"]))
    assert code == 2 and "empty video" in capsys.readouterr().err


def test_track_with_correspondences_needs_no_checkpoint_and_merges(tracking_models, tiny_synth,
                                                                   tmp_path, capsys):
    root = tiny_synth / "posetrack18"
    out = tmp_path / "out"
    code = main(["track", "--exp", "correspondence_t5_merge", "--out", str(out),
                 "--video", str(root / "images" / "val" / VIDEO), "--boxes", "gt",
                 "--annotations", str(root / "annotations" / "val" / f"{VIDEO}.json"),
                 *tracking_models, "data=synth_tiny", f"data.root={root}", "logger.wandb=false",
                 "trainer.progress_bar=false", "model.merge_threshold=0.0"])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / f"{VIDEO}.json").read_text())
    assert len(results["images"]) == 8
    assert frames_in(out / f"{VIDEO}.mp4") == 8  # the overlay's second pass, after merging
    assert {"mAP", "MOTA"} <= set(json.loads((out / "scores.json").read_text()))


def test_a_trained_method_still_needs_its_checkpoint(trained, tiny_synth, tmp_path, capsys):
    root = tiny_synth / "posetrack18"
    code = main(["track", "--exp", EXP, "--out", str(tmp_path / "out"),
                 "--video", str(root / "images" / "val" / VIDEO), *trained["quick"]])
    assert code == 2
    assert "--ckpt" in capsys.readouterr().err


def test_track_on_the_users_own_video_generates_no_synthetic_data(trained, tiny_synth, tmp_path,
                                                                  capsys):
    # The user's own frames and annotations, copied away from the synthetic set; the config's
    # data root points at an empty folder where the synthetic set would be generated
    # (data.synth_preset=tiny, a folder named tiny): tracking must leave it empty.
    root = tiny_synth / "posetrack18"
    video = shutil.copytree(root / "images" / "val" / VIDEO, tmp_path / "mine" / VIDEO)
    annotations = tmp_path / "mine" / f"{VIDEO}.json"
    shutil.copy(root / "annotations" / "val" / f"{VIDEO}.json", annotations)
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    code = main(["track", "--exp", EXP, "--ckpt", str(trained["pose"]), "--out", str(out),
                 "--video", str(video), "--boxes", "gt", "--annotations", str(annotations),
                 "data=synth_tiny", f"data.root={empty / 'tiny' / 'posetrack18'}",
                 f"runs_dir={empty / 'runs'}", "trainer.progress_bar=false"])
    assert code == 0, capsys.readouterr().err
    assert "Generating synthetic data" not in capsys.readouterr().out
    assert list(empty.iterdir()) == []
    assert {"mAP", "MOTA"} <= set(json.loads((out / "scores.json").read_text()))
