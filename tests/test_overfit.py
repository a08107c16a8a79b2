"""Overfit proofs (src/vidpose/overfit.py): the data they train on, the oracle check of the
path behind the network, and the proofs that are quick enough for `make test`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vidpose import overfit
from vidpose.cli import main as cli_main
from vidpose.config import compose
from vidpose.errors import ConfigError
from vidpose.losses import keypoint_cells
from vidpose.methods.two_stage_pose import offset_targets
from vidpose.run import build
from vidpose.run.trainer import build_trainer


@pytest.fixture(scope="module")
def overfit_data(tiny_synth, tmp_path_factory) -> Path:
    return overfit.overfit_root(tiny_synth, tmp_path_factory.mktemp("overfit"))


def _oracle_metrics(method: str, overfit_data: Path, tmp_path: Path, outputs, attribute: str,
                    extra: tuple[str, ...] = ()) -> dict:
    """Validate ``method``'s overfit recipe with ``outputs(model, batch)`` fed where the
    network's outputs go (``model.<attribute>`` replaced for each batch): the oracle check
    of the path behind the network."""
    recipe = overfit.RECIPES[method]
    cfg = compose(recipe.experiment, overfit.recipe_overrides(recipe, overfit_data, tmp_path)
                  + list(extra))
    model, datamodule = build(cfg)
    evaluate = model._evaluation_step

    *path, name = attribute.split(".")
    owner = model
    for part in path:
        owner = getattr(owner, part)

    def oracle_step(batch, *args):
        setattr(owner, name, lambda image: outputs(model, batch))
        return evaluate(batch, *args)

    model._evaluation_step = oracle_step
    return build_trainer(cfg, tmp_path / "oracle").validate(model, datamodule=datamodule)[0]


def _persons(path: Path) -> int:
    data = json.loads(path.read_text())
    labelled = {i["id"] for i in data["images"] if i.get("is_labeled", True)}
    return sum(a["image_id"] in labelled for a in data["annotations"])


def test_overfit_root_holds_at_most_16_samples_in_one_split(overfit_data):
    """Training and scoring read the same files, and they hold at most 16 persons."""
    videos = list((overfit_data / "posetrack18" / "annotations" / overfit.SPLIT).glob("*.json"))
    assert len(videos) == 1
    assert 0 < _persons(videos[0]) <= 16
    coco = overfit_data / "coco" / "annotations" / f"person_keypoints_{overfit.SPLIT}.json"
    assert 0 < _persons(coco) <= 16
    images = json.loads(coco.read_text())["images"]
    assert 0 < len(images) <= 16
    assert all((overfit_data / "coco" / overfit.SPLIT / i["file_name"]).is_file() for i in images)


def test_every_recipe_trains_and_scores_the_same_split(overfit_data, tmp_path):
    for recipe in overfit.RECIPES.values():
        cfg = compose(recipe.experiment, overfit.recipe_overrides(recipe, overfit_data, tmp_path))
        assert cfg.data.train_split == cfg.data.val_split == overfit.SPLIT, recipe.name
        assert cfg.data.root == str(overfit_data / recipe.dataset), recipe.name
        assert cfg.data.augment.flip == 0 and cfg.data.augment.rotation == 0, recipe.name
        assert cfg.data.crowded_root is None, recipe.name


def test_a_precision_replaces_auto_for_every_recipe(overfit_data, tmp_path):
    for recipe in overfit.RECIPES.values():
        cfg = compose(recipe.experiment, overfit.recipe_overrides(recipe, overfit_data, tmp_path,
                                                                  "32-true"))
        assert cfg.trainer.precision == "32-true", recipe.name
        assert compose(recipe.experiment, overfit.recipe_overrides(
            recipe, overfit_data, tmp_path)).trainer.precision == "auto", recipe.name


def test_unknown_method_is_a_one_line_error(tiny_synth, tmp_path, capsys):
    with pytest.raises(ConfigError, match="unknown method 'nosuch'"):
        overfit.run_all(["nosuch"], tiny_synth, tmp_path)
    assert cli_main(["overfit", "nosuch", "--tiny", str(tiny_synth),
                     "--work", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_recipe_that_reads_another_ones_run_trains_it_first(overfit_data, tmp_path):
    # `vidpose overfit correspondence_refinement` alone stopped with "no run of experiment
    # 'correspondence_siamese'" and lost the table of the methods before it.
    order = overfit.with_prerequisites(["stm", "correspondence_refinement", "rnn_decoder"],
                                       overfit_data, tmp_path)
    assert order == ["stm", "correspondence_siamese", "correspondence_refinement",
                     "assoc_embedding", "rnn_decoder"]
    assert overfit.with_prerequisites(["correspondence_siamese", "correspondence_refinement"],
                                      overfit_data, tmp_path) == ["correspondence_siamese",
                                                                  "correspondence_refinement"]


def test_table_marks_a_missed_goal():
    hit = overfit.Outcome("a", "val/mAP", 90.0, 95.0, 10, 1.0, [])
    missed = overfit.Outcome("b", "val/AP", 0.9, 0.95, 10, 1.0, [("count", 0.5, 0.9)])
    text = overfit.table([hit, missed])
    assert hit.passed and not missed.passed
    assert [line.split()[-1] for line in text.splitlines()[1:3]] == ["ok", "MISSED"]


@pytest.mark.slow
def test_ground_truth_heatmaps_score_near_100(overfit_data, tmp_path):
    """The path behind the network (decoding, crop -> image mapping, PoseTrack mAP) is
    exact: the target heatmaps themselves, fed where the network's go, score ~100 mAP."""
    metrics = _oracle_metrics("simple_baseline", overfit_data, tmp_path,
                              lambda model, batch: batch["heatmaps"], "predict_heatmaps")
    assert metrics["val/mAP"] >= 95.0, metrics


@pytest.mark.slow
def test_ground_truth_maps_and_offsets_of_two_stage_pose_score_100(overfit_data, tmp_path):
    """The two-stage estimator's Eq. 7 decoding (heatmap peak + offset), crop -> image and
    PoseTrack mAP are exact: its targets as both stages' outputs give mAP 100."""
    def targets_as_outputs(model, batch):
        offsets, _ = offset_targets(batch["keypoints"], batch["target_weight"],
                                    batch["heatmaps"].shape[-2:], model.stride,
                                    model.cfg.offset_radius)
        logits = torch.logit(batch["heatmaps"].float().clamp(1e-6, 1 - 1e-6))
        return [(logits, offsets), (logits, offsets)]

    metrics = _oracle_metrics("two_stage_pose", overfit_data, tmp_path, targets_as_outputs,
                              "net.forward", ("model.flip_test=false",))
    assert metrics["val/mAP"] == pytest.approx(100.0), metrics


@pytest.mark.slow
def test_ground_truth_centre_maps_detect_every_person(overfit_data, tmp_path):
    """CenterNet's path behind the network (peak decoding, offsets, sizes, letterbox back to
    the image, box AP) is exact: its own targets as outputs give box AP 100."""
    def targets_as_outputs(model, batch):
        heat = batch["heatmap"].float()
        count, _, height, width = heat.shape
        outputs = {"heatmap": torch.logit(heat.clamp(1e-6, 1 - 1e-6))}
        for name in ("size", "offset"):
            flat = torch.zeros(count, 2, height * width)
            for i in range(count):
                kept = batch["mask"][i].bool()
                flat[i][:, batch["index"][i][kept].long()] = batch[name][i][kept].T.float()
            outputs[name] = flat.view(count, 2, height, width)
        return outputs

    metrics = _oracle_metrics("centernet", overfit_data, tmp_path, targets_as_outputs,
                              "forward")
    assert metrics["val/AP"] == pytest.approx(100.0), metrics


@pytest.mark.slow
def test_ground_truth_maps_and_tags_group_every_person(overfit_data, tmp_path):
    """AE's path behind the network (peaks, quarter shift, tag grouping, COCO AP): the target
    heatmaps with a distinct tag per person score >= 90 AP at the recipe's input size (at
    the images' own size stride 4 alone caps them near 75 on these small persons)."""
    def targets_as_outputs(model, batch):
        tag_dim = model.cfg.tag_dim
        heatmaps = batch["heatmaps"].float()
        count, joints, height, width = heatmaps.shape
        keypoints = batch["keypoints"].float()
        cells = keypoint_cells(keypoints, model.stride, (height, width))
        tags = torch.zeros(count, joints, height * width, tag_dim)
        for b in range(count):
            for person in range(int(batch["num_persons"][b])):
                labelled = keypoints[b, person, :, 2] > 0
                for k in torch.nonzero(labelled).flatten().tolist():
                    tags[b, k, cells[b, person, k]] = 3.0 * (person + 1)  # > tag_threshold apart
        tags = tags.view(count, joints, height, width, tag_dim).permute(0, 1, 4, 2, 3)
        return [torch.cat([heatmaps, tags.reshape(count, joints * tag_dim, height, width)], 1)]

    metrics = _oracle_metrics("assoc_embedding", overfit_data, tmp_path, targets_as_outputs,
                              "forward")
    assert metrics["val/AP"] >= 90.0, metrics


# One whole proof is in make test, the quickest: STM-skeletons, about 1.5 minutes on 2
# cores (100 steps); the others take 2 to 8 minutes each and run in `make overfit`.
@pytest.mark.slow
def test_stm_overfit_proof_reaches_its_goal(overfit_data, tmp_path):
    """The whole path of STM-skeletons (keypoint and limb maps -> network -> loss -> peaks ->
    10 px keypoint F1) learns the overfit clip: F1 >= 90 percent."""
    outcome = overfit.run_recipe(overfit.RECIPES["stm"], overfit_data, tmp_path)
    assert outcome.passed, overfit.table([outcome])
