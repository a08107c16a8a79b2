"""COCO keypoint AP: ground truth as predictions, hand-computed OKS, pycocotools quirks,
the Metric against ``evaluate_coco``, padding repeats, and bad input."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vidpose.formats.results import write_coco_results
from vidpose.keypoints import COCO17, POSETRACK18
from vidpose.metrics.coco_ap import (
    DICT_SOURCE,
    STAT_NAMES,
    CocoKeypointAP,
    detect_dataset,
    evaluate_coco,
    format_coco_table,
    read_ground_truth,
)
from vidpose.pose import Frame, Pose


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def _same_stats(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)


@pytest.mark.parametrize("gt_file, dataset, schema, sizes", [
    ("coco/test_coco.json", "coco", "coco17", "medium and large"),
    ("ochuman/test_ochuman.json", "ochuman", "coco17", "large"),
    # Merged PoseTrack18 file: no 'area' (taken from the boxes), head tops outside the image.
    ("posetrack18/annotations/test_posetrack18_val.json", "coco", "posetrack18", "large"),
])
def test_ground_truth_as_predictions_gives_100(fixtures, tmp_path, gt_file, dataset, schema,
                                               sizes):
    truth, _ = read_ground_truth(fixtures / gt_file)
    # pycocotools ignores persons with no labelled keypoint: they are not predicted.
    frames = [Frame(f.image_id, f.file_name, f.width, f.height,
                    [Pose(p.keypoints, score=1.0) for p in f.poses if p.num_visible > 0])
              for f in truth.frames]
    write_coco_results(tmp_path / "results.json", frames)
    result = evaluate_coco(fixtures / gt_file, tmp_path / "results.json")
    assert (result.dataset, result.schema) == (dataset, schema)
    assert result.num_predictions == result.num_persons == sum(len(f.poses) for f in frames)
    defined = {"AP", "AP50", "AP75", "AR", "AR50", "AR75", "APl", "ARl"}
    if sizes == "medium and large":
        defined |= {"APm", "ARm"}
    for name in STAT_NAMES:
        if name in defined:
            assert result.stats[name] == 100.0, name
        else:
            assert math.isnan(result.stats[name]), name


IMAGE = {"id": 1, "file_name": "a.jpg", "width": 300, "height": 300}
EMPTY_IMAGE = {"id": 2, "file_name": "b.jpg", "width": 300, "height": 300}
CATEGORY = {"id": 1, "name": "person", "keypoints": list(COCO17.names)}
# Three labelled joints; the prediction moves the nose by (3, 4) and the shoulder by (6, 8).
GT_JOINTS = {"nose": (100, 60), "left_shoulder": (120, 100), "left_hip": (115, 150)}
SHIFT = {"nose": (3, 4), "left_shoulder": (6, 8), "left_hip": (0, 0)}
AREA = 10000.0
# OKS = mean over labelled joints of exp(-d^2 / (2 area (2 sigma)^2)), cocoapi's sigmas:
# nose 0.026: exp(-25 / 54.08) = 0.62985; shoulder 0.079: exp(-100 / 499.28) = 0.81849;
# hip: exp(0) = 1. OKS = 0.81611: a hit at thresholds 0.50 ... 0.80 (7 of 10), a miss at
# 0.85, 0.90, 0.95. So AP50 = AP75 = 100 and AP = AR = 70; the person is large (> 96^2).
HAND_OKS = (math.exp(-25 / (2 * AREA * (2 * 0.026) ** 2))
            + math.exp(-100 / (2 * AREA * (2 * 0.079) ** 2)) + 1.0) / 3


def _flat(joints: dict[str, tuple[float, float]], third: float, rest: tuple[float, float] | None
          = None) -> list[float]:
    """51 values: the named joints at their x, y with ``third``; the others at ``rest`` (score
    0) or (0, 0, 0)."""
    values = np.zeros((17, 3))
    if rest is not None:
        values[:, :2] = rest
    for name, xy in joints.items():
        values[COCO17.index[name]] = (*xy, third)
    return values.ravel().tolist()


def _person(ann_id: int = 1, **fields) -> dict:
    return {"id": ann_id, "image_id": 1, "category_id": 1, "iscrowd": 0,
            "keypoints": _flat(GT_JOINTS, 2), **fields}


def _prediction(image_id: int = 1, score: float = 0.8, joints: dict | None = None) -> dict:
    if joints is None:
        joints = {n: (GT_JOINTS[n][0] + SHIFT[n][0], GT_JOINTS[n][1] + SHIFT[n][1])
                  for n in GT_JOINTS}
    return {"image_id": image_id, "category_id": 1, "score": score,
            "keypoints": _flat(joints, 1.0, rest=(110, 100))}


def _gt(annotations: list[dict], images: list[dict] = (IMAGE,)) -> dict:
    return {"images": list(images), "annotations": annotations, "categories": [CATEGORY]}


AREA_SOURCES = {
    "area field": {"area": AREA, "bbox": [60, 40, 80, 120]},
    "mask (no area)": {"segmentation": [[60, 50, 160, 50, 160, 150, 60, 150]]},
    "box (no area, no mask)": {"bbox": [60, 50, 100, 100]},
}


@pytest.mark.parametrize("source", list(AREA_SOURCES))
def test_hand_computed_oks_gives_the_known_ap(tmp_path, source):
    assert 0.80 < HAND_OKS < 0.85
    gt = _write(tmp_path / "gt.json", _gt([_person(**AREA_SOURCES[source])]))
    pred = _write(tmp_path / "pred.json", [_prediction()])
    result = evaluate_coco(gt, pred)
    expected = {"AP": 70.0, "AP50": 100.0, "AP75": 100.0, "APl": 70.0,
                "AR": 70.0, "AR50": 100.0, "AR75": 100.0, "ARl": 70.0}
    for name, value in expected.items():
        assert result.stats[name] == pytest.approx(value), name
    assert math.isnan(result.stats["APm"]) and math.isnan(result.stats["ARm"])
    table = format_coco_table(result).splitlines()
    assert table[-3].split() == ["AP", "70.0", "100.0", "100.0", "-", "70.0"]
    assert table[-1].startswith("-:")
    assert json.loads(json.dumps(result.as_dict(), allow_nan=False))["APm"] is None


def test_the_schema_sigmas_are_used(tmp_path):
    # PoseTrack18 head_top (slot 2) has sigma 0.035 where pycocotools' default has 0.025.
    # head_top moved by (3, 4): exp(-25 / (2 * 10000 * 0.07^2)) = 0.77483; the hip exact, so
    # OKS = 0.88741: hits at 0.50 ... 0.85, AP = 80 (sigma 0.025 would give 0.80327, AP 70).
    def flat(head_top):
        values = np.zeros((17, 3))
        values[POSETRACK18.index["head_top"]] = (*head_top, 2)
        values[POSETRACK18.index["left_hip"]] = (115, 150, 2)
        return values.ravel().tolist()

    category = {"id": 1, "name": "person", "keypoints": list(POSETRACK18.names)}
    gt = _write(tmp_path / "gt.json", {
        "images": [IMAGE], "categories": [category],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "keypoints": flat((100, 40)),
                         "area": AREA, "bbox": [60, 40, 100, 100]}]})
    pred = _write(tmp_path / "pred.json", [{"image_id": 1, "category_id": 1, "score": 1.0,
                                            "keypoints": flat((103, 44))}])
    result = evaluate_coco(gt, pred)
    assert result.schema == "posetrack18"
    assert result.stats["AP"] == pytest.approx(80.0)


@pytest.mark.parametrize("stray_score, ap50", [(0.9, 50.0), (0.7, 100.0)])
def test_prediction_on_an_image_without_persons_is_a_false_positive(tmp_path, stray_score,
                                                                      ap50):
    # Ranked [stray, hit]: precision 1/2 at recall 1. Ranked [hit, stray]: precision 1.
    gt = _write(tmp_path / "gt.json", _gt([_person(area=AREA, bbox=[60, 50, 100, 100])],
                                          images=[IMAGE, EMPTY_IMAGE]))
    pred = _write(tmp_path / "pred.json", [_prediction(), _prediction(2, stray_score)])
    result = evaluate_coco(gt, pred)
    assert result.stats["AP50"] == pytest.approx(ap50)
    assert result.stats["AR50"] == 100.0


@pytest.mark.parametrize("crowd, ap50", [(True, 100.0), (False, 50.0)])
def test_prediction_inside_a_crowd_region_is_ignored(tmp_path, crowd, ap50):
    stray = _prediction(score=0.9, joints={n: (220, 220) for n in COCO17.names})
    annotations = [_person(area=AREA, bbox=[60, 50, 100, 100])]
    if crowd:  # no keypoints: pycocotools matches by distance to twice its box
        annotations.append({"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 1,
                            "keypoints": [0] * 51, "bbox": [200, 200, 50, 50], "area": 2500})
    gt = _write(tmp_path / "gt.json", _gt(annotations))
    pred = _write(tmp_path / "pred.json", [_prediction(), stray])
    result = evaluate_coco(gt, pred)
    assert result.num_persons == 1
    assert result.stats["AP50"] == pytest.approx(ap50)


def test_dataset_detection_by_content():
    assert detect_dataset({"info": {"description": "MMPose example OCHuman dataset"}}, "f") \
        == "ochuman"
    assert detect_dataset({"annotations": [{"segmentation": {"size": "[4, 5]", "counts": ""}}]},
                          "f") == "ochuman"
    assert detect_dataset({"annotations": [{"segmentation": [[0, 0, 1, 0, 1, 1]]}]}, "f") \
        == "coco"


def _scene(seed: int = 0, images: int = 5, persons: int = 3):
    """A COCO dict of random persons and predictions near them: (gt, [per-image preds])."""
    rng = np.random.default_rng(seed)
    gt = {"images": [], "annotations": [], "categories": [CATEGORY]}
    predictions = []
    for i in range(images):
        gt["images"].append({"id": 10 + i, "file_name": f"{i}.jpg", "width": 400, "height": 300})
        per_image = []
        for j in range(persons):
            size = rng.uniform(40, 150)
            corner = rng.uniform(0, 150, 2)
            keypoints = np.column_stack([corner + rng.uniform(0, size, (17, 2)),
                                         rng.choice([0, 1, 2], 17, p=[0.2, 0.2, 0.6])])
            keypoints[keypoints[:, 2] == 0, :2] = 0
            gt["annotations"].append({"id": 100 * i + j, "image_id": 10 + i, "category_id": 1,
                                      "keypoints": keypoints.ravel().tolist(), "iscrowd": 0,
                                      "bbox": [*corner, size, size], "area": size * size})
            noise = rng.normal(0, rng.uniform(0.5, 12), (17, 2))
            predicted = np.column_stack([keypoints[:, :2] + noise, rng.uniform(0, 1, 17)])
            per_image.append((predicted, float(rng.uniform(0.1, 1))))
        predictions.append(per_image)
    return gt, predictions


def _batch(predictions, image_ids: list[int], gt: dict, first_id: int = 0):
    """Update arguments for the predictions of the given scene images; ids are
    image index * 100 + person rank, the same for a repeated image."""
    rows = [(gt["images"][i]["id"], kps, score, 100 * i + j)
            for i in image_ids for j, (kps, score) in enumerate(predictions[i])]
    return (torch.tensor([r[0] for r in rows]),
            torch.tensor(np.stack([r[1] for r in rows])),
            torch.tensor([r[2] for r in rows]),
            torch.tensor([r[3] + first_id for r in rows], dtype=torch.int64))


def test_metric_equals_evaluate_coco(tmp_path):
    gt, predictions = _scene()
    frames = [Frame(image["id"], image["file_name"], 400, 300,
                    [Pose(kps, score=score) for kps, score in per_image])
              for image, per_image in zip(gt["images"], predictions)]
    write_coco_results(tmp_path / "pred.json", frames)
    expected = evaluate_coco(_write(tmp_path / "gt.json", gt), tmp_path / "pred.json").stats
    assert 0.0 < expected["AP"] < 100.0
    for source in (gt, tmp_path / "gt.json"):
        metric = CocoKeypointAP(copy.deepcopy(gt) if source is gt else source, "coco17")
        metric.update(*_batch(predictions, [0, 1, 2], gt))  # two batches, as in validation
        metric.update(*_batch(predictions, [3, 4], gt))
        assert _same_stats(metric.compute(), expected)


# DistributedSampler (no shuffle) over 5 images on 2 ranks pads to 6 with image 0.
RANK_IMAGES = [[0, 2, 4], [1, 3, 0]]


def test_repeated_predictions_count_once():
    gt, predictions = _scene()
    single = CocoKeypointAP(gt)
    single.update(*_batch(predictions, list(range(5)), gt))
    expected = single.compute()
    ranks = [CocoKeypointAP(gt) for _ in RANK_IMAGES]
    for metric, images in zip(ranks, RANK_IMAGES):
        metric.update(*_batch(predictions, images, gt))
    ranks[0].merge_state(ranks[1])  # what the 'cat' sync does across processes
    assert _same_stats(ranks[0].compute(), expected)
    # Counting image 0's predictions twice (fresh ids) would change the result.
    twice = CocoKeypointAP(gt)
    twice.update(*_batch(predictions, list(range(5)), gt))
    twice.update(*_batch(predictions, [0], gt, first_id=10_000))
    assert twice.compute()["AP"] < expected["AP"]


def test_no_predictions_give_zero_and_bad_updates_are_refused():
    gt, _ = _scene()
    metric = CocoKeypointAP(gt)
    with pytest.warns(UserWarning, match="before the ``update``"):
        stats = metric.compute()
    assert stats["AP"] == 0.0 and stats["AR"] == 0.0
    ok = (torch.tensor([10]), torch.zeros(1, 17, 3), torch.ones(1), torch.tensor([0]))
    with pytest.raises(ValueError, match="17"):
        metric.update(ok[0], torch.zeros(1, 15, 3), *ok[2:])
    with pytest.raises(ValueError, match="int64"):
        metric.update(*ok[:3], torch.tensor([0], dtype=torch.int32))
    with pytest.raises(ValueError, match="image id 99"):
        metric.update(torch.tensor([99]), *ok[1:])


def _ddp_worker(rank: int, init_file: str, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        gt, predictions = _scene()
        metric = CocoKeypointAP(gt)
        metric.update(*_batch(predictions, RANK_IMAGES[rank], gt))
        results[rank] = metric.compute()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    gt, predictions = _scene()
    single = CocoKeypointAP(gt)
    single.update(*_batch(predictions, list(range(5)), gt))
    expected = single.compute()
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_ddp_worker, args=(str(tmp_path / "init"), results), nprocs=2)
        gathered = dict(results)
    for rank in (0, 1):
        assert _same_stats(gathered[rank], expected)


GOOD_GT = _gt([_person(area=AREA, bbox=[60, 50, 100, 100])], images=[IMAGE, EMPTY_IMAGE])


def _no_keypoint_names(gt: dict) -> None:
    del gt["categories"][0]["keypoints"]


def _no_labelled_person(gt: dict) -> None:
    gt["annotations"][0]["keypoints"] = [0] * 51


BAD_RESULTS = {  # name: (results list, record, field)
    "image not in the ground truth": ([_prediction(), _prediction(7)], "results[1]", "image_id"),
    "wrong number of keypoint values": ([{**_prediction(), "keypoints": [1.0] * 50}],
                                        "results[0]", "keypoints"),
    "missing score": ([{k: v for k, v in _prediction().items() if k != "score"}],
                      "results[0]", "score"),
    "empty list": ([], None, None),
}
BAD_GROUND_TRUTH = {  # name: (change to the ground truth, record, field, dataset)
    "category without keypoint names": (_no_keypoint_names, None, "categories", "auto"),
    "no person with a labelled keypoint": (_no_labelled_person, None, "annotations", "auto"),
    "OCHuman person without a mask": (lambda gt: None, "annotation 1", "segmentation",
                                      "ochuman"),
    "OCHuman's own layout": (lambda gt: gt.update(keypoint_names=gt.pop("annotations")), None,
                             "keypoint_names", "auto"),
}


@pytest.mark.parametrize("kind", list(BAD_RESULTS))
def test_bad_results_name_file_record_and_field(tmp_path, kind, expect_input_error):
    records, record, field = BAD_RESULTS[kind]
    gt = _write(tmp_path / "gt.json", GOOD_GT)
    pred = _write(tmp_path / "pred.json", records)
    expect_input_error(lambda: evaluate_coco(gt, pred), file=pred, record=record, field=field)


@pytest.mark.parametrize("kind", list(BAD_GROUND_TRUTH))
def test_bad_ground_truth_names_file_record_and_field(tmp_path, kind, expect_input_error):
    change, record, field, dataset = BAD_GROUND_TRUTH[kind]
    data = copy.deepcopy(GOOD_GT)
    change(data)
    gt = _write(tmp_path / "gt.json", data)
    pred = _write(tmp_path / "pred.json", [_prediction()])
    expect_input_error(lambda: evaluate_coco(gt, pred, dataset=dataset), file=gt, record=record,
                 field=field)


def test_bad_metric_ground_truth_names_the_dict_record_and_field(expect_input_error):
    expect_input_error(lambda: CocoKeypointAP(GOOD_GT, POSETRACK18), file=DICT_SOURCE, record=None,
                 field="categories")
    data = copy.deepcopy(GOOD_GT)
    data["annotations"][0]["keypoints"] = [1.0] * 48
    expect_input_error(lambda: CocoKeypointAP(data), file=DICT_SOURCE, record="annotation 1",
                 field="keypoints")
