"""What ``vidpose train``, ``eval`` and ``infer`` print under a run: its figures, the method's
own table, and how to read them (what they are, the paper's numbers, where the logs are)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def print_metrics(run_dir: Path, metrics: dict[str, float]) -> None:
    if os.environ.get("LOCAL_RANK", "0") != "0":
        return
    # Per-joint figures (val/AP/<joint>) stay in the CSV log; the crowd subset's are shown.
    shown = {k: v for k, v in sorted(metrics.items())
             if k.count("/") <= 1 or k.split("/")[1] == "crowd"}
    print(f"\nRun folder: {run_dir}")
    for key, value in shown.items():
        print(f"  {key:24s} {value:10.4f}")


def wandb_location(cfg: Any, run_dir: Path) -> str:
    """Where a run's W&B log is: its online page, its offline folder (and how to upload it),
    or that W&B was off."""
    from vidpose.run.trainer import wandb_mode

    mode = wandb_mode(cfg)
    id_file = run_dir / "wandb_id.txt"
    if mode == "disabled" or not id_file.is_file():
        return "none (W&B was disabled for this run: logger.wandb, logger.mode or WANDB_MODE)"
    run_id = id_file.read_text().strip()
    folders = sorted((run_dir / "wandb").glob(f"*-{run_id}"))
    folder = folders[-1] if folders else run_dir / "wandb"
    url_file = run_dir / "wandb_url.txt"
    if mode == "online" and url_file.is_file():
        return f"{url_file.read_text().strip()} (local copy {folder})"
    return f"offline run {folder} (upload it with: wandb sync {folder})"


def reading_notes(cfg: Any, run_dir: Path, legend: str = "") -> list[str]:
    """How to read a run's printed figures: what they are (the method's ``legend``), what the
    paper reports (``experiment.paper_metrics``), where the run, its CSV log and W&B log are."""
    from vidpose.config import logged_metric_name

    lines = ["How to read it:"]
    if legend:
        lines.append(f"  {legend}")
    info = cfg.experiment
    if info.paper_metrics:
        numbers = ", ".join(f"{logged_metric_name(str(k))} {float(v):g}"
                            for k, v in info.paper_metrics.items())
        lines.append(f"  The paper ({info.reproduces}): {numbers}. Those are at paper scale on "
                     "the paper's data; compare a compact run on synthetic data by its trend "
                     "(docs/RESULTS.md), not its value.")
    lines.append(f"  Run folder: {run_dir}; every validation's values: "
                 f"{run_dir / 'csv' / 'metrics.csv'} (vidpose report {run_dir}).")
    lines.append(f"  W&B log: {wandb_location(cfg, run_dir)}.")
    return lines


def print_summary(cfg: Any, metrics: dict[str, float], run_dir: Path) -> None:
    """The method's own table of the run's figures (e.g. RNN vs AE on normal and crowded
    images), for methods that are a ``methods.SummaryTable``, then how to read the run's
    figures and where the run is."""
    from vidpose.methods import SummaryTable, get_method

    if os.environ.get("LOCAL_RANK", "0") != "0":
        return
    model_cls = get_method(cfg.experiment.method).model_cls
    legend = ""
    if isinstance(model_cls, SummaryTable):
        table = model_cls.summary_table(metrics)
        if table:
            print(f"\n{table}")
            legend = model_cls.summary_legend()
    print("\n" + "\n".join(reading_notes(cfg, run_dir, legend)))
