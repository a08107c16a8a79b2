"""Experiment composition: bases, scales, group selections, overrides and their errors."""
from __future__ import annotations

import re
from pathlib import Path

import lightning as L
import pytest
import torch

from vidpose.config import canonical_name, compose, find_experiment, list_experiments, to_dict
from vidpose.errors import ConfigError, InputError
from vidpose.methods import load_trained
from vidpose.methods.simple_baseline import SimpleBaseline
from vidpose.run.prerequisites import resolve_run_reference


def test_every_experiment_composes_at_both_scales():
    names = list_experiments()
    assert "simple_baseline" in names
    for name in names:
        for scale in ("compact", "paper"):
            cfg = compose(name, [f"experiment.scale={scale}"])
            assert cfg.experiment.name == canonical_name(name)  # an alias: its target's
            assert cfg.experiment.reproduces, f"{name} must say which paper row it reproduces"


def test_scale_block_then_overrides():
    compact = compose("simple_baseline")
    paper = compose("simple_baseline", ["experiment.scale=paper"])
    assert compact.model.resnet == "resnet18" and paper.model.resnet == "resnet50"
    assert list(paper.data.input_size) == [256, 192]
    # a dotted override wins over the scale block
    cfg = compose("simple_baseline", ["model.resnet=resnet34", "trainer.max_epochs=3"])
    assert cfg.model.resnet == "resnet34" and cfg.trainer.max_epochs == 3


def test_data_group_switches_dataset_and_scale():
    cfg = compose("simple_baseline", ["data=coco", "data.root=/data/coco"])
    assert cfg.data.dataset == "coco" and cfg.data.root == "/data/coco"
    assert cfg.data.synth_preset is None
    assert cfg.experiment.scale == "paper" and cfg.model.resnet == "resnet50"
    cfg = compose("simple_baseline", ["data=coco", "data.root=/c", "experiment.scale=compact"])
    assert cfg.model.resnet == "resnet18"


@pytest.mark.parametrize("group", ["posetrack18", "coco", "ochuman", "coco_posetrack18"])
def test_a_real_data_group_without_its_root_is_refused(group):
    # ``root: ???`` merged over the experiment's synthetic root kept that root: a run meant
    # for real data trained on the synthetic files.
    with pytest.raises(ConfigError, match=r"data\.(val_)?root must be given"):
        compose("simple_baseline", [f"data={group}"])


def test_unknown_key_names_the_key_and_a_close_one():
    with pytest.raises(ConfigError) as err:
        compose("simple_baseline", ["trainer.max_epoch=3"])
    msg = str(err.value)
    assert "trainer.max_epoch" in msg and "trainer.max_epochs" in msg


@pytest.mark.parametrize("name, override, new", [
    ("simple_baseline", "model.refine=taylor", "'data.subpixel'"),
    ("memory_t3_cpn_memory", "model.backbone=cpn", "'model.resnet' (the ResNet depth) or 'model.network'"),
    ("rnn_t1_ours", "model.refiner=true", "'model.lstm2'"),
    ("rnn_t1_ours", "model.refiner_layers=3", "'model.lstm2_layers'"),
    ("rnn_t1_ours", "model.refiner_input=matched", "'model.lstm2_input'"),
    ("stm_t3_c5_finetune", "data.refinement={jitter: 2.0}", "'data.map_augmentation'"),
])
def test_an_old_key_on_the_command_line_names_its_new_place(name, override, new):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=re.escape(f"unknown key '{key}' (it is now {new}")):
        compose(name, [override])


def test_a_checkpoint_with_an_old_data_key_names_the_file_and_the_new_key(tmp_path):
    # A run trained before the rename, read as another experiment's prerequisite.
    model = SimpleBaseline({"resnet": "resnet18", "deconv_filters": 16}, {"input_size": [64, 48]})
    hparams = {**model.hparams, "data": {**model.hparams["data"], "refinement": {"jitter": 1.0}}}
    checkpoint = tmp_path / "last.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams,
                "pytorch-lightning_version": L.__version__}, checkpoint)
    with pytest.raises(InputError, match=re.escape(f"{checkpoint}: field 'model.features': its saved "
                                                   "config: data.refinement is now data.map_augmentation")):
        load_trained("simple_baseline", str(checkpoint), "model.features")


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError) as err:
        compose("simple_baseline", ["trainer.max_epochs=many"])
    assert "trainer.max_epochs" in str(err.value)


def test_unknown_experiment_lists_close_names():
    with pytest.raises(ConfigError) as err:
        find_experiment("simple_baseline_x")
    assert "simple_baseline" in str(err.value)


def test_unknown_group_choice_lists_choices():
    with pytest.raises(ConfigError) as err:
        compose("simple_baseline", ["data=kitti"])
    assert "posetrack18" in str(err.value) and "coco" in str(err.value)


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_bad_key_in_a_file_names_the_file(tmp_path):
    _write(tmp_path, "_base/defaults.yaml", "trainer:\n  max_epochs: 2\n")
    _write(tmp_path, "x/bad.yaml", "bases: [_base/defaults]\nexperiment:\n  method: simple_baseline\n"
           "  reproduces: test\nmodel:\n  backbone_depth: 3\n")
    with pytest.raises(ConfigError) as err:
        compose("bad", root=tmp_path)
    msg = str(err.value)
    assert "bad.yaml" in msg and "model.backbone_depth" in msg


def test_an_emptied_section_names_the_file_and_section(tmp_path):
    _write(tmp_path, "x/empty.yaml", "experiment:\n  method: simple_baseline\nmodel:\n")
    with pytest.raises(ConfigError, match="empty.yaml: section 'model' is empty"):
        compose("empty", root=tmp_path)


def test_base_cycle_and_missing_base_are_errors(tmp_path):
    _write(tmp_path, "a.yaml", "bases: [b]\nexperiment:\n  method: simple_baseline\n")
    _write(tmp_path, "b.yaml", "bases: [a]\n")
    with pytest.raises(ConfigError, match="cycle"):
        compose("a", root=tmp_path)
    _write(tmp_path, "c/c.yaml", "bases: [nowhere]\nexperiment:\n  method: simple_baseline\n")
    with pytest.raises(ConfigError, match="nowhere"):
        compose("c", root=tmp_path)


def test_unknown_method_is_an_error(tmp_path):
    _write(tmp_path, "m.yaml", "experiment:\n  method: nomethod\n")
    with pytest.raises(ConfigError, match="nomethod"):
        compose("m", root=tmp_path)


# The paper's duplicate rows (issue 16 point 16): each alias composes its target.
ALIASES = {"rnn_t3_learned": "rnn_t1_ours", "rnn_t7_h2_learned": "rnn_t1_ours",
           "rnn_t4_aa": "rnn_association", "rnn_t5_loop2": "rnn_association",
           "rnn_f6_omega0p27": "rnn_association", "rnn_t7_h2_random": "rnn_t3_random"}


@pytest.mark.parametrize("alias, target", sorted(ALIASES.items()))
def test_an_alias_composes_its_targets_config(alias, target):
    assert canonical_name(alias) == target and canonical_name(target) == target
    for scale in ("compact", "paper"):
        overrides = [f"experiment.scale={scale}", "trainer.max_epochs=1"]
        assert to_dict(compose(alias, overrides)) == to_dict(compose(target, overrides))


def test_no_two_rnn_experiments_are_one_configuration_unless_aliased():
    """Two rows of one configuration would be two runs of it: name the second an alias."""
    seen: dict[str, str] = {}
    for name in sorted(list_experiments()):
        if not name.startswith(("rnn_", "assoc_")) or canonical_name(name) != name:
            continue
        cfg = to_dict(compose(name))
        cfg.pop("experiment")
        key = repr(cfg)
        assert key not in seen, f"{name} is {seen.get(key)}'s configuration: make it an alias"
        seen[key] = name


def test_alias_files_are_checked(tmp_path):
    _write(tmp_path, "t.yaml", "experiment:\n  method: simple_baseline\n  reproduces: row\n")
    _write(tmp_path, "a.yaml", "alias_of: t\nreproduces: another row\n")
    assert compose("a", root=tmp_path).experiment.name == "t"
    assert canonical_name("a", tmp_path) == "t" and canonical_name("gone", tmp_path) == "gone"
    _write(tmp_path, "b.yaml", "alias_of: a\nreproduces: x\n")
    with pytest.raises(ConfigError, match="b.yaml: field 'alias_of': 'a' is itself an alias"):
        compose("b", root=tmp_path)
    _write(tmp_path, "b.yaml", "alias_of: nowhere\nreproduces: x\n")
    with pytest.raises(ConfigError, match="b.yaml: field 'alias_of': unknown experiment"):
        compose("b", root=tmp_path)
    _write(tmp_path, "b.yaml", "alias_of: t\nmodel:\n  resnet: resnet50\n")
    with pytest.raises(ConfigError, match="b.yaml: field 'model': an alias file holds only"):
        compose("b", root=tmp_path)


def test_run_lookups_of_an_alias_find_its_targets_runs(tmp_path):
    ckpt = "rnn_t1_ours/2026-01-01_00-00-00/checkpoints/last.ckpt"
    _write(tmp_path, ckpt, "")
    assert resolve_run_reference("run:rnn_t3_learned", tmp_path) == tmp_path / ckpt
