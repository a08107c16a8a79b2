"""Under the figures `vidpose train` prints: how to read them (what the table's numbers are,
what the paper got, where the run folder, its CSV log and its W&B log are)."""
from __future__ import annotations

from vidpose.commands.summary import print_summary, reading_notes
from vidpose.config import compose
from vidpose.methods.rnn_decoder import RNNPoseDecoder


def test_the_flagship_table_says_how_to_read_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_SWEEP_ID", raising=False)
    run_dir = tmp_path / "runs" / "rnn_association" / "20260101-000000"
    offline = run_dir / "wandb" / "offline-run-20260101_000000-abc123"
    offline.mkdir(parents=True)
    (run_dir / "wandb_id.txt").write_text("abc123\n")
    cfg = compose("rnn_association")
    metrics = {"val/AP": 41.0, "val/AP_ae": 40.5, "val/crowded_AP": 16.0,
               "val/crowded_AP_ae": 15.5}
    print_summary(cfg, metrics, run_dir)
    out = capsys.readouterr().out
    table, notes = out.split("How to read it:", 1)
    assert "| RNN decoder | 41.0 | 16.0 |" in table
    assert "COCO keypoint AP (pycocotools), in percent" in notes
    assert "OKS thresholds 0.50:0.95" in notes
    # The paper's numbers: decoder 58.7 / 37.8, AE 56.6 / 32.1, under their logged names.
    for number in ("val/AP 58.7", "val/crowded_AP 37.8", "val/AP_ae 56.6",
                   "val/crowded_AP_ae 32.1"):
        assert number in notes
    assert "RNN decoder: val/AP (normal), val/crowded_AP (crowded)" in notes
    assert "AE grouping: val/AP_ae (normal), val/crowded_AP_ae (crowded)" in notes
    assert f"Run folder: {run_dir};" in notes
    assert str(run_dir / "csv" / "metrics.csv") in notes
    assert f"W&B log: offline run {offline} (upload it with: wandb sync {offline})." in notes


def test_any_experiment_gets_its_run_and_wandb_location_and_the_paper_where_recorded(
        tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_SWEEP_ID", raising=False)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "wandb_id.txt").write_text("xyz")
    (run_dir / "wandb_url.txt").write_text("https://wandb.ai/me/vidpose/runs/xyz")
    monkeypatch.setenv("WANDB_MODE", "online")
    lines = reading_notes(compose("memory_t3_simple_baseline_memory"), run_dir)
    assert any("val/mAP 75" in line and "val/MOTA 65.3" in line for line in lines)
    assert lines[-1].startswith("  W&B log: https://wandb.ai/me/vidpose/runs/xyz")
    # No paper numbers recorded: no paper line. W&B off: said so.
    lines = reading_notes(compose("simple_baseline", ["logger.wandb=false"]), run_dir)
    assert not any("The paper" in line for line in lines)
    assert lines[-2] == (f"  Run folder: {run_dir}; every validation's values: "
                         f"{run_dir / 'csv' / 'metrics.csv'} (vidpose report {run_dir}).")
    assert lines[-1].startswith("  W&B log: none (W&B was disabled")


def test_the_legend_names_each_decoders_logged_metrics():
    legend = RNNPoseDecoder.summary_legend()
    assert legend.endswith("Logged as RNN decoder: val/AP (normal), val/crowded_AP (crowded); "
                           "AE grouping: val/AP_ae (normal), val/crowded_AP_ae (crowded).")
