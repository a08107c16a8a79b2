"""init_from: a run starts from every tensor of its checkpoint, or says which it re-initialises."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from vidpose.config import chain, compose, experiments_dir, list_experiments
from vidpose.errors import ConfigError, InputError
from vidpose.run import _init_weights, _new_model


def _net(width: int = 4) -> nn.Module:
    torch.manual_seed(width)
    return nn.ModuleDict({"trunk": nn.Linear(3, width), "head": nn.Linear(width, 2)})


def _save(module: nn.Module, path) -> None:
    torch.save({"state_dict": module.state_dict()}, path)


def test_a_full_load_copies_every_tensor(tmp_path, capsys):
    _save(_net(4), tmp_path / "a.ckpt")
    model = _net(4)  # same shapes; other values below
    torch.manual_seed(99)
    for p in model.parameters():
        nn.init.normal_(p)
    _init_weights(model, tmp_path / "a.ckpt")
    for key, value in _net(4).state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert f"init_from: loaded 4/4 tensors from {tmp_path / 'a.ckpt'}" in capsys.readouterr().out


def test_misshaped_or_missing_tensors_are_an_error_naming_the_checkpoint(tmp_path):
    ckpt = tmp_path / "narrow.ckpt"
    _save(_net(4), ckpt)
    with pytest.raises(InputError) as info:
        _init_weights(_net(8), ckpt)  # another width: every tensor but head.bias misshaped
    err = info.value
    assert err.file == str(ckpt) and err.field == "init_from"
    assert "3 of another shape" in str(err) and "trunk.weight (4, 3) vs (8, 3)" in str(err)
    assert "init_from_skip" in str(err)
    partial = nn.ModuleDict({"trunk": nn.Linear(3, 4)})
    _save(partial, ckpt)
    with pytest.raises(InputError, match=r"2 tensors of the model missing \(head.weight, head.bias\)"):
        _init_weights(_net(4), ckpt)
    _save(_net(4), ckpt)
    with pytest.raises(InputError, match=r"2 with no place in the model \(head.weight, head.bias\)"):
        _init_weights(partial, ckpt)


def test_skipped_prefixes_are_re_initialised_and_the_rest_must_load(tmp_path, capsys):
    ckpt = tmp_path / "trunk.ckpt"
    source = _net(4)
    _save(nn.ModuleDict({"trunk": source["trunk"]}), ckpt)
    model = _net(5)  # trunk (5, 3): would not fit
    with pytest.raises(InputError, match="of another shape"):
        _init_weights(model, ckpt, ["head."])
    model = nn.ModuleDict({"trunk": nn.Linear(3, 4), "head": nn.Linear(4, 2)})
    fresh_head = {k: v.clone() for k, v in model["head"].state_dict().items()}
    _init_weights(model, ckpt, ["head."])
    assert torch.equal(model["trunk"].weight, source["trunk"].weight)
    assert all(torch.equal(model["head"].state_dict()[k], v) for k, v in fresh_head.items())
    out = capsys.readouterr().out
    assert "loaded 2/4 tensors" in out and "re-initialised 2 under head." in out
    with pytest.raises(ConfigError, match="'neck.' is the prefix of no tensor"):
        _init_weights(model, ckpt, ["neck."])


def _chains() -> list[tuple[str, str]]:
    """(experiment, scale) of every file whose YAML chain names an init_from run."""
    root = experiments_dir()
    return [(name, scale) for name, path in sorted(list_experiments().items())
            if any(str(part.get("init_from") or "").startswith("run:") for _, part in chain(path, root))
            for scale in ("compact", "paper")]


# Chains the experiment files document as command lines (``ARGS="init_from=..."``).
DOCUMENTED = {"memory_t3_simple_baseline_memory": [
    "init_from=run:memory_t3_simple_baseline_baseline", "init_from_skip=[read.]"]}


@pytest.mark.parametrize("name, scale", _chains() + [(name, "compact") for name in DOCUMENTED])
def test_every_chain_loads_fully_at_both_scales(name, scale):
    """Each init_from experiment takes every tensor of its prerequisite's model, whichever
    dataset layout the prerequisite trained on (STM pre-trains on COCO images), except the
    prefixes it declares in init_from_skip."""
    cfg = compose(name, [f"experiment.scale={scale}", *DOCUMENTED.get(name, [])])
    skip = tuple(cfg.init_from_skip)
    with torch.device("meta"):  # shapes only
        own = _new_model(cfg).state_dict()
        for layout in ("posetrack18", "coco"):
            pre = compose(str(cfg.init_from)[len("run:"):],
                          [f"experiment.scale={scale}", f"data.dataset={layout}"])
            theirs = _new_model(pre).state_dict()
            kept = {k: v.shape for k, v in own.items() if not (skip and k.startswith(skip))}
            assert {k: v.shape for k, v in theirs.items()
                    if not (skip and k.startswith(skip))} == kept, layout
    assert len(kept) > len(own) // 2
