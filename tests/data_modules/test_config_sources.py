"""DataConfig as a structured config, and resolving the on-disk layouts."""
from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from vidpose.data_modules.config import AugmentConfig, DataConfig
from vidpose.data_modules.datasets import as_data_config, in_schema
from vidpose.data_modules.sources import load_detections, load_split
from vidpose.errors import ConfigError, InputError
from vidpose.keypoints import COCO17, POSETRACK18


def test_defaults_are_the_documented_ones():
    cfg = DataConfig()
    assert (cfg.dataset, cfg.root, cfg.synth_preset) == ("posetrack18", "data/synth/default/posetrack18",
                                                         "default")
    assert (cfg.train_split, cfg.val_split, cfg.detections, cfg.box_source) == ("train", "val", None, "gt")
    assert cfg.input_size == [256, 192] and cfg.heatmap_stride == 4
    assert (cfg.sigma, cfg.limb_sigma, cfg.clip_length, cfg.clip_stride) == (2.0, 1.5, 4, 1)
    assert (cfg.batch_size, cfg.num_workers, cfg.box_padding, cfg.min_keypoints) == (32, 2, 1.25, 1)
    assert cfg.max_train_samples is None and cfg.max_val_samples is None
    assert cfg.augment == AugmentConfig()
    aug = cfg.augment
    assert (aug.flip, aug.rotation, aug.scale, aug.color, aug.blur) == (0.5, 30.0, 0.25, True, 0.1)
    # Every field is a type OmegaConf can validate.
    assert OmegaConf.to_object(OmegaConf.structured(DataConfig)) == cfg


def test_dict_and_omegaconf_sections_become_a_dataconfig():
    cfg = as_data_config({"input_size": [64, 48], "augment": {"flip": 0.0}})
    assert isinstance(cfg, DataConfig) and cfg.input_size == [64, 48]
    assert cfg.augment.flip == 0.0 and cfg.augment.rotation == 30.0
    section = OmegaConf.structured(DataConfig(sigma=3.0))
    assert as_data_config(section).sigma == 3.0


@pytest.mark.parametrize("bad, key", [({"sigmaa": 2.0}, "sigmaa"), ({"batch_size": "many"}, "batch_size"),
                                      ({"augment": {"flop": 1}}, "flop"), ({"dataset": "mpii"}, "dataset"),
                                      ({"input_size": [66, 48]}, "input_size"),
                                      ({"input_size": [64]}, "input_size")])
def test_bad_data_sections_name_the_key(bad, key):
    with pytest.raises(ConfigError, match=key):
        as_data_config(bad)


def test_posetrack_layout_loads(posetrack_root):
    cfg = DataConfig(root=str(posetrack_root))
    train = load_split(cfg, "train")
    assert train.schema is POSETRACK18
    assert sorted(train.videos()) == ["vid_a", "vid_b"] and len(train) == 12
    assert sum(f.is_labeled for f in train.frames) == 9


def test_coco_layout_loads_and_converts(coco_root):
    data = load_split(DataConfig(dataset="coco", root=str(coco_root)), "val")
    assert data.schema is COCO17 and len(data) == 2 and len(data.frames[0].poses) == 3
    converted = in_schema(data, "posetrack18")
    assert converted.schema is POSETRACK18
    nose = data.frames[0].poses[0].keypoints[0]
    assert converted.frames[0].poses[0].keypoints[0].tolist() == nose.tolist()
    assert converted.frames[0].poses[0].keypoints[1:5].sum() == 0  # eyes and ears have no slot


def test_missing_root_says_how_to_get_data(tmp_path):
    with pytest.raises(InputError, match="vidpose data synth") as err:
        load_split(DataConfig(root=str(tmp_path / "nowhere")), "train")
    assert err.value.file == str(tmp_path / "nowhere") and err.value.field == "data.root"


def test_missing_split_names_the_expected_path(posetrack_root, coco_root):
    with pytest.raises(InputError, match="annotations/test") as err:
        load_split(DataConfig(root=str(posetrack_root)), "test")
    assert err.value.file == str(posetrack_root / "annotations" / "test")
    with pytest.raises(InputError, match="person_keypoints_train2017.json"):
        load_split(DataConfig(dataset="coco", root=str(coco_root)), "train2017")


def test_unknown_dataset_is_a_config_error(posetrack_root):
    with pytest.raises(ConfigError, match="mpii"):
        load_split(DataConfig(dataset="mpii", root=str(posetrack_root)), "val")


def test_detections_default_path_and_missing_file(posetrack_root, tmp_path):
    cfg = DataConfig(root=str(posetrack_root))
    val = load_split(cfg, "val")
    detections = load_detections(cfg, "val", val)
    assert set(detections) == {f.image_id for f in val.frames}
    assert [d.score for d in detections[1200]] == [0.9, 0.4]
    missing = dataclasses.replace(cfg, detections=str(tmp_path / "dets.json"))
    with pytest.raises(InputError, match="box_source=gt") as err:
        load_detections(missing, "val", val)
    assert err.value.field == "data.detections"
