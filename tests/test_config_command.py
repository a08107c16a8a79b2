"""`vidpose config EXP [overrides] [--diff OTHER]`: the resolved config before a run (issue 18.5)."""
from __future__ import annotations

import re

from vidpose.cli import main


def _rows(out: str) -> dict[str, list[str]]:
    """The diff table's rows: key -> its cells (rich's box-drawing columns)."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 3 and cells[0]:
            rows[cells[0]] = cells[1:]
    return rows


def test_config_prints_the_resolved_tree_with_overrides(capsys):
    assert main(["config", "simple_baseline", "trainer.max_epochs=3", "data=synth_tiny"]) == 0
    out = capsys.readouterr().out
    # Sections as branches, the override applied, defaults of the schema filled in.
    for section in ("experiment", "trainer", "data", "model", "logger"):
        assert re.search(rf"[├└]── {section}$", out, re.M), section
    assert "max_epochs: 3" in out
    assert "synth_preset: 'tiny'" in out
    assert "checkpoint_every_n_steps: 50" in out  # a TrainerConfig default no file sets


def test_config_of_an_alias_is_its_target(capsys):
    assert main(["config", "rnn_t4_aa"]) == 0
    assert "name: 'rnn_association'" in capsys.readouterr().out


def test_config_diff_lists_only_differing_keys(capsys):
    assert main(["config", "simple_baseline", "trainer.max_epochs=77",
                 "--diff", "simple_baseline"]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert rows == {"trainer.max_epochs": ["77", rows["trainer.max_epochs"][1]]}
    assert "1 keys differ" in out


def test_config_diff_across_methods_names_keys_only_one_has(capsys):
    assert main(["config", "rnn_association", "--diff", "assoc_embedding"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows["experiment.method"] == ["'rnn_decoder'", "'assoc_embedding'"]
    # A model key of the RNN decoder that AE's schema lacks.
    assert rows["model.omega"][1] == "(absent)"
    assert "trainer.accelerator" not in rows  # the same in both


def test_config_bad_override_and_unknown_other_exit_2(capsys):
    assert main(["config", "simple_baseline", "trainer.max_epoch=3"]) == 2
    assert "did you mean 'trainer.max_epochs'" in capsys.readouterr().err
    assert main(["config", "simple_baseline", "--diff", "simple_baselin"]) == 2
    assert "simple_baseline" in capsys.readouterr().err
