"""CropDataModule: the exact batch contract SimpleBaseline consumes, and its geometry."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidpose.data_modules.crops import CropDataModule
from vidpose.data_modules.transforms import apply_affine
from vidpose.errors import ConfigError

KEYS = {"image": (torch.float32, (3, 64, 48)), "heatmaps": (torch.float32, (17, 16, 12)),
        "target_weight": (torch.float32, (17,)), "keypoints": (torch.float32, (17, 3)),
        "crop_to_image": (torch.float64, (2, 3)), "frame": (torch.int64, ()),
        "person": (torch.int64, ()), "score": (torch.float32, ()), "track_id": (torch.int64, ()),
        "gt_keypoints": (torch.float32, (17, 3)), "head_size": (torch.float32, ())}
AUGMENT = {"flip": 0.5, "rotation": 30.0, "scale": 0.25, "color": True, "blur": 0.5, "noise": 0.5}


def test_batch_has_exact_keys_shapes_and_dtypes(posetrack_root, data_module):
    dm = data_module(CropDataModule, posetrack_root, augment=AUGMENT)
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == set(KEYS)
    for key, (dtype, shape) in KEYS.items():
        assert batch[key].dtype == dtype, key
        assert tuple(batch[key].shape) == (4,) + shape, key
    assert len(dm.val_dataloader()) == 2  # 7 val persons, batches of 4, last one kept


def test_counts_min_keypoints_and_sample_cap(posetrack_root, data_module):
    dm = data_module(CropDataModule, posetrack_root)
    # 9 labelled train frames x 2 persons + the extra person of frame 2 in both videos.
    assert len(dm.train_set) == 20
    # Person 2 lacks both wrists (13 of 15 annotated joints): min_keypoints=14 drops it.
    strict = data_module(CropDataModule, posetrack_root, min_keypoints=14, max_val_samples=3)
    assert len(strict.train_set) == 11
    assert {r.person for r in strict.train_set.records} == {0, 2}
    assert len(strict.val_set) == 3  # the cap applies, min_keypoints does not (7 before)
    capped = data_module(CropDataModule, posetrack_root, max_train_samples=5)
    frames = [r.frame for r in capped.train_set.records]
    assert len(frames) == 5 and frames[-1] > 6  # spread over both videos, not the first 5


def test_val_crops_map_back_to_ground_truth(posetrack_root, data_module):
    dm = data_module(CropDataModule, posetrack_root, stage="validate")
    assert dm.train_set is None and len(dm.val_set) == 7
    schema = dm.val_data.schema
    for sample in dm.val_set:
        frame = dm.val_data.frames[int(sample["frame"])]
        assert frame.is_labeled
        pose = frame.poses[int(sample["person"])]
        assert int(sample["track_id"]) == pose.track_id and float(sample["score"]) == 1.0
        np.testing.assert_allclose(sample["gt_keypoints"].numpy(), pose.keypoints, atol=1e-5)
        present = pose.keypoints[:, 2] > 0
        back = apply_affine(sample["keypoints"].numpy()[present, :2], sample["crop_to_image"].numpy())
        np.testing.assert_allclose(back, pose.keypoints[present, :2], atol=1e-3)
        weight = sample["target_weight"].numpy()
        assert weight[~schema.annotated_mask].sum() == 0  # ears never count in PoseTrack18
        np.testing.assert_array_equal(weight > 0, present)  # all inside the padded box
        head = pose.head_box
        assert float(sample["head_size"]) == pytest.approx(0.6 * np.hypot(head[2], head[3]))
        # Each heatmap peaks at its keypoint / stride (SimpleBaseline's convention).
        k = int(np.flatnonzero(present)[0])
        peak = divmod(int(sample["heatmaps"][k].argmax()), 12)
        x, y = sample["keypoints"][k, :2].numpy() / 4
        assert abs(peak[0] - y) <= 0.5 and abs(peak[1] - x) <= 0.5
        assert float(sample["heatmaps"][~torch.from_numpy(present)].abs().max()) == 0


def test_crop_pixels_hold_the_keypoint_dots(posetrack_root, data_module):
    """The fixture draws a white dot on each keypoint: the crop must show it there too."""
    dm = data_module(CropDataModule, posetrack_root, input_size=[128, 96], augment=AUGMENT | {
        "color": False, "blur": 0.0, "noise": 0.0, "rotation_prob": 1.0})
    torch.manual_seed(1)
    sample = dm.train_set[0]
    image = sample["image"].numpy().sum(0)  # normalised; white is the brightest
    for x, y in sample["keypoints"].numpy()[sample["target_weight"].numpy() > 0, :2]:
        xi, yi = int(round(x)), int(round(y))
        assert image[yi, xi] > np.quantile(image, 0.9)


def test_augmentation_follows_torch_seed(posetrack_root, data_module):
    dm = data_module(CropDataModule, posetrack_root, augment=AUGMENT)
    draws = []
    for seed in (5, 6, 5):
        torch.manual_seed(seed)
        draws.append(dm.train_set[3])
    torch.testing.assert_close(draws[0]["image"], draws[2]["image"])
    assert not torch.equal(draws[0]["crop_to_image"], draws[1]["crop_to_image"])


def test_detection_boxes(posetrack_root, data_module):
    dm = data_module(CropDataModule, posetrack_root, stage="validate", box_source="detections")
    samples = list(dm.val_set)
    assert [float(s["score"]) for s in samples] == pytest.approx([0.9, 0.4, 0.8])
    for s in samples:
        assert int(s["person"]) == -1 and int(s["track_id"]) == -1
        assert s["gt_keypoints"].abs().sum() == 0 and s["target_weight"].sum() == 0
        assert float(s["head_size"]) == 0
    # The crop still maps back: the box centre sits at the crop centre.
    centre = apply_affine(np.array([23.5, 31.5]), samples[0]["crop_to_image"].numpy())
    np.testing.assert_allclose(centre, [40.0, 45.0], atol=1e-6)


def test_unknown_box_source(posetrack_root, data_config):
    with pytest.raises(ConfigError, match="box_source"):
        CropDataModule(data_config(posetrack_root, box_source="yolo"))


def test_workers_load_in_parallel(posetrack_root, data_module):
    dm = data_module(CropDataModule, posetrack_root, num_workers=2, augment=AUGMENT)
    loader = dm.train_dataloader()
    assert loader.persistent_workers and loader.num_workers == 2
    images = torch.cat([batch["image"] for batch in loader])
    assert images.shape == (20, 3, 64, 48)


def test_real_posetrack18_fixture(data_module, fixtures):
    root = fixtures / "posetrack18"
    dm = data_module(CropDataModule, root, stage="validate", input_size=[128, 96],
                     outside_tolerance=50.0)
    assert len(dm.val_set) >= 10
    for index in (0, len(dm.val_set) - 1):
        sample = dm.val_set[index]
        gt = sample["gt_keypoints"].numpy()
        present = gt[:, 2] > 0
        back = apply_affine(sample["keypoints"].numpy()[present, :2], sample["crop_to_image"].numpy())
        np.testing.assert_allclose(back, gt[present, :2], atol=1e-3)
        assert float(sample["head_size"]) > 0
    detections = root / "annotations" / "test_posetrack18_human_detections.json"
    det = data_module(CropDataModule, root, stage="validate", box_source="detections",
                      detections=str(detections), outside_tolerance=50.0)
    assert len(det.val_set) > 0 and int(det.val_set[0]["person"]) == -1


def test_schema_name_converts_the_loaded_data(coco_root, data_config):
    dm = CropDataModule(data_config(coco_root, "coco"), schema_name="posetrack18")
    dm.setup("validate")
    assert dm.val_data.schema.name == "posetrack18"
    sample = dm.val_set[0]
    # COCO has no head_bottom/head_top and PoseTrack18 never labels the ears: slots 1-4 empty.
    assert sample["target_weight"][1:5].sum() == 0 and sample["target_weight"][0] == 1
    assert sample["heatmaps"][1:5].abs().sum() == 0
