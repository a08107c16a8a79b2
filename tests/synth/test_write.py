"""synthesize(): the layouts on disk, read back by the formats readers; determinism; presets."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidpose.errors import ConfigError, InputError
from vidpose.formats import read_coco, read_detections, read_ochuman, read_posetrack
from vidpose.keypoints import COCO17, POSETRACK18
from vidpose.synth import PRESETS, VideoSplit, synthesize

TINY = PRESETS["tiny"]


def annotation_files(root: Path) -> dict[str, bytes]:
    """Every JSON file under ``root`` (annotations, detections, manifest), by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.json"))}


def test_same_seed_same_bytes_other_seed_other_data(tiny_synth, tmp_path):
    again = synthesize(tmp_path / "again", "tiny", seed=0, progress=False)
    assert again == json.loads((tiny_synth / "manifest.json").read_text())
    first, second = annotation_files(tiny_synth), annotation_files(tmp_path / "again")
    assert first.keys() == second.keys() and len(first) > 5
    assert first == second
    image = "posetrack18/images/val/050001_synth_val/000003.jpg"
    assert (tiny_synth / image).read_bytes() == (tmp_path / "again" / image).read_bytes()
    synthesize(tmp_path / "other", "tiny", seed=1, progress=False)
    other = annotation_files(tmp_path / "other")
    assert other.keys() == first.keys()
    assert other["coco/annotations/person_keypoints_train.json"] != first["coco/annotations/person_keypoints_train.json"]


def test_manifest_is_last_and_says_what_was_written(tiny_synth):
    manifest = json.loads((tiny_synth / "manifest.json").read_text())
    assert manifest["preset"] == "tiny" and manifest["seed"] == 0 and manifest["version"] >= 1
    newest = max(p.stat().st_mtime_ns for p in tiny_synth.rglob("*") if p.is_file())
    assert (tiny_synth / "manifest.json").stat().st_mtime_ns == newest


def test_posetrack18_layout_reads_back_with_sparse_labels(tiny_synth):
    root = tiny_synth / "posetrack18"
    counts = json.loads((tiny_synth / "manifest.json").read_text())["counts"]["posetrack18"]
    for split, spec in TINY.posetrack18.items():
        data = read_posetrack(root / "annotations" / split)  # checks every image file exists
        assert data.schema is POSETRACK18 and Path(data.image_root) == root
        videos = data.videos()
        assert len(videos) == spec.videos == counts[split]["videos"]
        poses = [p for f in data.frames for p in f.poses]
        assert len(poses) == counts[split]["annotations"] and poses
        for frames in videos.values():
            assert [f.frame_index for f in frames] == list(range(spec.frames))
            assert [f.is_labeled for f in frames] == spec.labeled().tolist()
            for frame in frames:
                assert frame.file_name == f"images/{split}/{frame.video}/{frame.frame_index:06d}.jpg"
                assert (frame.width, frame.height) == (160, 128)
                if not frame.is_labeled:
                    assert frame.poses == [] and frame.ignore_regions == []
                track_ids = [p.track_id for p in frame.poses]
                assert len(track_ids) == len(set(track_ids)) and min(track_ids, default=0) >= 0
        for pose in poses:
            assert (pose.keypoints[[3, 4]] == 0).all()  # PoseTrack18 never labels the ears
            assert pose.head_box is not None and pose.head_box[2] > 0
            labelled = pose.keypoints[:, 2] > 0
            assert labelled.any()
            assert (pose.keypoints[~labelled] == 0).all()
            xy = pose.keypoints[labelled, :2]
            assert (xy >= -0.5).all() and (xy[:, 0] < 159.5).all() and (xy[:, 1] < 127.5).all()
        dets = read_detections(root / "detections" / f"{split}.json",
                               image_ids={f.image_id for f in data.frames})
        assert sum(map(len, dets.values())) == counts[split]["detections"]
        # Detections exist on unlabelled frames too (trackers run on every frame).
        unlabelled = {f.image_id for f in data.frames if not f.is_labeled}
        assert any(dets[i] for i in unlabelled)


def test_track_ids_follow_one_person_across_frames(tiny_synth):
    data = read_posetrack(tiny_synth / "posetrack18" / "annotations" / "train")
    for frames in data.videos().values():
        labelled = [f for f in frames if f.is_labeled]
        for a, b in zip(labelled, labelled[1:]):
            for pose in a.poses:
                same = [p for p in b.poses if p.track_id == pose.track_id]
                if same and pose.num_visible >= 8 and same[0].num_visible >= 8:
                    # One frame later (0.1 s) the same person has hardly moved.
                    shift = np.linalg.norm(pose.box[:2] + pose.box[2:] / 2
                                           - same[0].box[:2] - same[0].box[2:] / 2)
                    assert shift < 0.5 * max(pose.box[3], 20)


@pytest.mark.parametrize("layout, reader", [("coco", read_coco), ("ochuman", read_ochuman)])
def test_coco_layouts_read_back(tiny_synth, layout, reader):
    root = tiny_synth / layout
    counts = json.loads((tiny_synth / "manifest.json").read_text())["counts"][layout]
    splits = getattr(TINY, layout)
    assert sorted(counts) == sorted(splits)
    for split, n_images in splits.items():
        data = reader(root / "annotations" / f"person_keypoints_{split}.json", root / split)
        assert data.schema is COCO17 and len(data) == n_images == counts[split]["images"]
        people = [p for f in data.frames for p in f.poses if not p.iscrowd]
        crowds = [p for f in data.frames for p in f.poses if p.iscrowd]
        assert len(people) == counts[split]["annotations"] and len(crowds) == counts[split]["crowd_regions"]
        for frame in data.frames:
            image = cv2.imread(str(root / split / frame.file_name))
            assert image.shape == (frame.height, frame.width, 3)
        for pose in people:
            assert pose.segmentation["size"] == [128, 160]
            assert pose.area > 0 and pose.box[2] > 0
        dets = read_detections(root / "detections" / f"{split}.json",
                               image_ids={f.image_id for f in data.frames})
        assert sum(map(len, dets.values())) == counts[split]["detections"]


def pairwise_iou(boxes: np.ndarray) -> np.ndarray:
    lo = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    hi = np.minimum(boxes[:, None, :2] + boxes[:, None, 2:], boxes[None, :, :2] + boxes[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area = boxes[:, 2] * boxes[:, 3]
    return inter / (area[:, None] + area[None, :] - inter)


def test_pairwise_iou_by_hand():
    iou = pairwise_iou(np.array([[0.0, 0, 10, 10], [5, 0, 10, 10]]))
    assert iou[0, 1] == pytest.approx(50 / 150)


def test_ochuman_persons_overlap_heavily(tiny_synth):
    root = tiny_synth / "ochuman"
    data = read_ochuman(root / "annotations" / "person_keypoints_val.json", root / "val")
    best = []
    for frame in data.frames:
        iou = pairwise_iou(np.array([p.box for p in frame.poses]))
        np.fill_diagonal(iou, 0)
        best.append(iou.max())
    assert np.median(best) > 0.3


def test_labelled_frames_of_a_split():
    assert VideoSplit(1, 8, middle=0.75).labeled().tolist() == [False] + [True] * 6 + [False]
    assert VideoSplit(1, 8, every=2).labeled().tolist() == [True, False] * 4
    assert np.flatnonzero(VideoSplit(1, 10, middle=0.6, every=2).labeled()).tolist() == [2, 4, 6]
    with pytest.raises(ConfigError):
        VideoSplit(1, 8, middle=0.0)


def test_unknown_preset_and_foreign_folders_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="tiny"):
        synthesize(tmp_path / "x", "huge", progress=False)
    (tmp_path / "mine" / "coco").mkdir(parents=True)
    (tmp_path / "mine" / "coco" / "precious.txt").write_text("real data")
    with pytest.raises(InputError, match="not written by the synthetic generator"):
        synthesize(tmp_path / "mine", "tiny", progress=False)
    assert (tmp_path / "mine" / "coco" / "precious.txt").read_text() == "real data"


def test_regenerating_replaces_an_earlier_set(tmp_path):
    out = tmp_path / "set"
    synthesize(out, "tiny", seed=0, progress=False)
    stale = out / "posetrack18" / "annotations" / "train" / "999999_stale.json"
    stale.write_text("{}")
    synthesize(out, "tiny", seed=2, progress=False)
    assert not stale.exists()
    assert json.loads((out / "manifest.json").read_text())["seed"] == 2
