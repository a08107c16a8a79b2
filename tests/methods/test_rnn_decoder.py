"""The RNN pose decoder LightningModule: config, frozen AE features, manual optimisation,
checkpoints, and inference from heatmaps to poses."""
from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
from rnn_scripted import ScriptedDecoder
from torch.utils.data import DataLoader

from vidpose.codec import HeatmapCodec
from vidpose.config import compose, list_experiments
from vidpose.errors import ConfigError, InputError
from vidpose.methods.assoc_embedding import AssociativeEmbedding
from vidpose.methods.rnn_decoder import RNNPoseDecoder, emit_persons, heatmaps_to_poses, refine_persons
from vidpose.nn.rnn_decoder import PoseRefinerLSTM

DATA = {"input_size": [32, 48], "heatmap_stride": 4, "sigma": 1.5, "max_persons": 4}
TINY_AE = {"num_stacks": 1, "channels": 16, "depth": 2, "increase": 0}
FEATURE_MODEL = {"model": TINY_AE, "data": DATA, "schema": "coco17"}
SMALL = {"hidden": 8, "layers": 2}


def _model(**model) -> RNNPoseDecoder:
    torch.manual_seed(0)
    return RNNPoseDecoder({**SMALL, **model}, DATA, feature_model=copy.deepcopy(FEATURE_MODEL))


def _sample(seed: int) -> dict[str, torch.Tensor]:
    """One image with 1-2 persons and a row whose keypoints were all pushed out."""
    g = torch.Generator().manual_seed(seed)
    keypoints = torch.zeros(4, 17, 3)
    persons = 1 + seed % 2
    for p in range(persons):
        keypoints[p, :, 0] = torch.rand(17, generator=g) * 46
        keypoints[p, :, 1] = torch.rand(17, generator=g) * 30
        keypoints[p, :, 2] = 2.0
    return {"image": torch.randn(3, 32, 48, generator=g), "keypoints": keypoints,
            "num_persons": torch.tensor(persons + 1), "frame": torch.tensor(seed),
            "image_to_input": torch.eye(3, dtype=torch.float64)[:2]}


def _batch(size: int = 2) -> dict[str, torch.Tensor]:
    return next(iter(DataLoader([_sample(i) for i in range(size)], batch_size=size)))


@pytest.mark.parametrize("model, match", [
    ({"loss_config": "aa'"}, "model.loss_config"),
    ({"ordering": "sorted"}, "model.ordering"),
    ({"hidden": 2, "layers": 3}, "model.hidden"),
    ({"omega": 1.5}, "model.omega"),
    ({"heatmap_reduction": "max"}, "model.heatmap_reduction"),
    ({"stop_weight": 0}, "model.stop_weight"),
    ({"colour": 1}, "unknown key"),
])
def test_bad_config_names_the_key(model, match):
    with pytest.raises(ConfigError, match=match):
        _model(**model)


def test_features_are_required():
    with pytest.raises(ConfigError, match="model.features"):
        RNNPoseDecoder(SMALL, DATA)
    with pytest.raises(InputError) as info:
        RNNPoseDecoder({**SMALL, "features": "/nonexistent/ae.ckpt"}, DATA)
    assert info.value.field == "model.features"


def test_the_ae_is_frozen_and_stays_in_eval_mode():
    model = _model(lstm2=True)
    model.train()
    assert model.lstm1.training and model.norm.training and not model.ae.training
    assert not any(p.requires_grad for p in model.ae.parameters())
    optimizer = model.configure_optimizers()["optimizer"]
    optimised = {id(p) for group in optimizer.param_groups for p in group["params"]}
    decoder = [*model.norm.parameters(), *model.lstm1.parameters(), *model.lstm2.parameters()]
    assert optimised == {id(p) for p in decoder}
    assert model.max_steps == DATA["max_persons"] + 1


class Checks(L.Callback):
    """The AE stays in eval mode during training; the lr schedule per epoch."""

    def __init__(self) -> None:
        self.ae_training: list[bool] = []
        self.lrs: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.ae_training.append(module.ae.training)

    def on_train_epoch_start(self, trainer, module) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_training_step_with_manual_optimisation_and_checkpoint_round_trip(quiet_trainer, tmp_path):
    model = _model(lstm2=True, lr=1e-3, lr_steps=[1])
    before = copy.deepcopy(model.state_dict())
    checks = Checks()
    trainer = quiet_trainer(max_epochs=2, limit_val_batches=0, callbacks=[checks])
    loader = DataLoader([_sample(i) for i in range(4)], batch_size=2)
    trainer.fit(model, train_dataloaders=loader)
    assert trainer.global_step == 4  # one optimiser step per batch, however many chunks
    assert checks.ae_training == [False] * 4
    assert checks.lrs == pytest.approx([1e-3, 1e-4])  # stepped by hand after epoch 1
    metrics = trainer.callback_metrics
    for name in ("train/loss_epoch", "train/heatmap_loss", "train/stop_loss",
                 "train/refined_loss", "train/persons_predicted"):
        assert torch.isfinite(metrics[name]), name
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("ae."))
    for name in ("lstm1.heatmap.weight", "lstm1.stop.weight", "lstm2.heatmap.weight",
                 "norm.weight"):
        assert not torch.equal(before[name], after[name]), name
    assert int(after["norm.num_batches_tracked"]) == 4

    path = tmp_path / "rnn.ckpt"
    trainer.save_checkpoint(path)
    loaded = RNNPoseDecoder.load_from_checkpoint(path)
    assert set(loaded.state_dict()) == set(after)
    assert all(torch.equal(loaded.state_dict()[k], after[k]) for k in after)
    batch = _batch()
    model.eval()
    loaded.eval()
    torch.manual_seed(1)
    first = model.predict_poses(batch)
    torch.manual_seed(1)
    second = loaded.predict_poses(batch)
    for decoder in ("rnn", "ae"):
        for a, b in zip(first[decoder], second[decoder]):
            assert len(a) == len(b)
            for p, q in zip(a, b):
                assert p.keypoints == pytest.approx(q.keypoints)
                assert p.score == pytest.approx(q.score)


def _write_checkpoint(module: L.LightningModule, path) -> None:
    """A Lightning checkpoint of an untrained module: its hyperparameters and weights."""
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": L.__version__}, path)


def test_ae_checkpoint_is_loaded_once_then_travels_in_the_decoder_checkpoint(tmp_path):
    torch.manual_seed(0)
    ae = AssociativeEmbedding(TINY_AE, DATA)
    ae_path = tmp_path / "ae.ckpt"
    _write_checkpoint(ae, ae_path)
    model = RNNPoseDecoder({**SMALL, "features": str(ae_path)}, DATA)
    assert model.hparams["model"]["features"] is None
    assert model.hparams["feature_model"]["model"]["num_stacks"] == 1
    assert all(torch.equal(a, b) for a, b in zip(ae.state_dict().values(),
                                                  model.ae.state_dict().values()))
    rnn_path = tmp_path / "rnn.ckpt"
    _write_checkpoint(model, rnn_path)
    ae_path.unlink()  # the decoder's checkpoint no longer needs the AE file
    loaded = RNNPoseDecoder.load_from_checkpoint(rnn_path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(ConfigError, match="not both"):
        RNNPoseDecoder({**SMALL, "features": str(rnn_path)}, DATA, feature_model=FEATURE_MODEL)


def test_predict_poses_runs_both_decoders_on_one_ae_pass():
    model = _model(lstm2=True, ordering="canonical").eval()
    batch = _batch()
    with torch.no_grad():
        assert torch.equal(torch.cat(model.ae(batch["image"]), 1),
                           model.features(batch["image"]))
    predicted = model.predict_poses(batch)
    assert set(predicted) == {"rnn", "ae"}
    assert len(predicted["rnn"]) == len(predicted["ae"]) == 2
    # An untrained decoder never stops (p ~ 0.5 >= omega): max_steps persons per image.
    assert [len(poses) for poses in predicted["rnn"]] == [model.max_steps] * 2
    for pose in predicted["rnn"][0]:
        assert pose.keypoints.shape == (17, 3)
        assert (pose.keypoints[:, 0] >= 0).all() and (pose.keypoints[:, 0] <= 47).all()
        assert (pose.keypoints[:, 1] >= 0).all() and (pose.keypoints[:, 1] <= 31).all()
        assert 0 < pose.score <= 1


def test_input_features_choose_what_of_each_stack_is_fed():
    """model.input_features=intermediate feeds only the AE's extra maps of every stack (the
    paper's c = 4 x 34); outputs feeds the stacks' whole outputs (issue 16 point 13)."""
    feature_model = copy.deepcopy(FEATURE_MODEL)
    feature_model["model"] = {**TINY_AE, "num_stacks": 2, "extra_outputs": 5}
    batch = _batch()
    fed = {}
    for which in ("outputs", "intermediate"):
        torch.manual_seed(0)
        model = RNNPoseDecoder({**SMALL, "input_features": which}, DATA,
                               feature_model=copy.deepcopy(feature_model)).eval()
        outputs = model.ae(batch["image"])
        first = 0 if which == "outputs" else 17 + 17
        expected = torch.cat([o[:, first:] for o in outputs], 1)
        with torch.no_grad():
            assert torch.equal(model.features(batch["image"]), expected)
        assert model.norm.weight.shape == (expected.shape[1],)
        seen = []
        model.decode = lambda features, seen=seen: seen.append(features) or [[], []]
        model.predict_poses(batch)
        assert torch.equal(seen[0], expected)  # what inference decodes
        fed[which] = expected.shape[1]
    assert fed == {"outputs": 2 * (17 + 17 + 5), "intermediate": 2 * 5}
    with pytest.raises(ConfigError, match="model.input_features"):
        _model(input_features="intermediate")  # the tiny AE has no extra maps
    with pytest.raises(ConfigError, match="model.input_features"):
        _model(input_features="hidden")


def test_use_settings_changes_only_the_inference_thresholds():
    """`vidpose eval` runs a trained decoder with the experiment's omega and tau (Fig. 6's
    omega sweep on one checkpoint); trained settings stay the checkpoint's."""
    model = _model().eval()
    batch = _batch()
    assert [len(p) for p in model.predict_poses(batch)["rnn"]] == [model.max_steps] * 2
    model.use_settings({**SMALL, "omega": 0.9, "tau": 0.5, "hidden": 64, "passes": 3}, DATA)
    assert (model.cfg.omega, model.cfg.tau) == (0.9, 0.5)
    assert (model.cfg.hidden, model.cfg.passes) == (8, 2)
    assert model.hparams["model"]["omega"] == 0.9  # a checkpoint saved now keeps them
    # An untrained decoder's p ~ 0.5 is below omega = 0.9: nobody is emitted.
    assert [len(p) for p in model.predict_poses(batch)["rnn"]] == [0, 0]


def test_heatmaps_to_poses_by_hand():
    heatmaps = torch.zeros(2, 3, 8, 8)
    heatmaps[0, 0, 2, 5] = 0.8  # x = 5, y = 2
    heatmaps[0, 0, 2, 6] = 0.3  # right neighbour higher: +0.25 in x
    heatmaps[0, 1, 6, 1] = 0.4
    heatmaps[0, 2, 4, 4] = 0.01  # below tau = 0.015: score 0
    heatmaps[1, :, 3, 3] = 0.01  # no joint kept: the person is dropped
    poses = heatmaps_to_poses(heatmaps, torch.tensor([0.9, 0.8]), tau=0.015,
                              codec=HeatmapCodec((32, 32), stride=4, sigma=2.0))
    assert len(poses) == 1
    keypoints = poses[0].keypoints
    assert keypoints[0].tolist() == pytest.approx([5.25 * 4, 2 * 4, 0.8])
    assert keypoints[1].tolist() == pytest.approx([1 * 4, 6 * 4, 0.4])
    # Joint 2 is dropped (below tau): score 0 and not at its argmax (16, 16), where
    # pycocotools would score it, but at the mean of the kept joints (pose-ae-train's
    # missing joint; issue 16 point 15).
    assert keypoints[2].tolist() == pytest.approx([(21 + 4) / 2, (8 + 24) / 2, 0.0])
    assert poses[0].score == pytest.approx(0.9 * (0.8 + 0.4) / 2)


def test_emit_persons_stops_at_omega_or_max_steps():
    maps = torch.rand(3, 4, 2, 5, 5)
    probs = [[0.9, 0.8, 0.1, 0.9], [0.1, 0.9, 0.9, 0.9], [0.9, 0.9, 0.9, 0.9]]
    decoder = ScriptedDecoder(probs, maps)
    persons = emit_persons(ScriptedDecoder.features(3, (5, 5)), decoder, passes=1, omega=0.27,
                           max_steps=3)
    assert [len(p[0]) for p in persons] == [2, 0, 3]
    assert torch.allclose(persons[0][0], maps[0, :2])
    assert persons[0][1].tolist() == pytest.approx([0.9, 0.8])
    assert persons[1][0].shape == (0, 2, 5, 5)


def test_refine_persons_returns_emission_order():
    torch.manual_seed(0)
    refiner = PoseRefinerLSTM(1, 2, hidden=4, layers=2).eval()
    features = torch.randn(2, 1, 5, 5)
    persons = [(torch.rand(3, 2, 5, 5), torch.tensor([0.5, 0.9, 0.7])),
               (torch.zeros(0, 2, 5, 5), torch.zeros(0))]
    with torch.no_grad():
        refined = refine_persons(features, refiner, persons, "inverse")
        by_hand, _ = refiner(features[:1], persons[0][0].flip(0)[:, None])
    assert torch.allclose(refined[0], by_hand[:, 0].flip(0), atol=1e-6)
    assert refined[1].shape == (0, 2, 5, 5)


def _rnn_configs(scale: str):
    """(name, composed config) of every rnn_decoder experiment at ``scale``."""
    for name in sorted(list_experiments()):
        cfg = compose(name, [f"experiment.scale={scale}"])
        if cfg.experiment.method == "rnn_decoder":
            yield name, cfg


@pytest.mark.slow  # composes every experiment at both scales
def test_every_rnn_experiment_uses_the_summed_squared_l2_at_both_scales():
    """The experiment files document Eq. 2/4's l2 as the sum over pixels (issue 16 point 12:
    paper scale resolved to the dataclass's mean)."""
    for scale in ("compact", "paper"):
        configs = dict(_rnn_configs(scale))
        assert "rnn_association" in configs and "rnn_t1_ours" in configs
        for name, cfg in configs.items():
            assert cfg.model.heatmap_reduction == "sum", (name, scale)
            # Paper scale feeds the paper's input: each stack's 34 extra maps (point 13).
            expected = "intermediate" if scale == "paper" else "outputs"
            assert cfg.model.input_features == expected, (name, scale)
    assert compose("assoc_embedding", ["experiment.scale=paper"]).model.extra_outputs == 34
