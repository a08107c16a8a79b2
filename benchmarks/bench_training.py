"""Data loading against SimpleBaseline training: is the loader ahead of the model?

Both are measured in this run on the same machine: loader samples/s (full augmentation and
target rendering, the experiment's worker count) and training samples/s (forward, backward
and optimizer step on batches already in memory). A ratio above 1 means the model, not the
data, is the bottleneck.
"""
from __future__ import annotations

import itertools
import tempfile
import time

import torch


def _samples_per_s(batches, fn, n: int) -> float:
    count, start = 0, time.perf_counter()
    for batch in itertools.islice(batches, n):
        fn(batch)
        count += batch["image"].shape[0]
    return count / (time.perf_counter() - start)


def run(quick: bool = False) -> dict[str, float]:
    from vidpose.config import compose
    from vidpose.run import build, ensure_data

    with tempfile.TemporaryDirectory() as tmp:
        overrides = ["logger.wandb=false"]
        if quick:
            overrides += ["data=synth_tiny", f"data.root={tmp}/tiny/posetrack18"]
        cfg = compose("simple_baseline", overrides)
        ensure_data(cfg, progress=False)
        model, datamodule = build(cfg)
        datamodule.setup("fit")
        n = 3 if quick else 20
        loader = datamodule.train_dataloader()

        loader_rate = _samples_per_s(itertools.cycle(loader), lambda b: None, n)

        cached = list(itertools.islice(itertools.cycle(loader), 2))
        optim = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.train()

        def step(batch):
            optim.zero_grad()
            loss = model.training_step(batch, 0)
            loss = loss["loss"] if isinstance(loss, dict) else loss
            loss.backward()
            optim.step()

        model.log = lambda *a, **k: None  # no trainer attached: logging is not measured
        train_rate = _samples_per_s(itertools.cycle(cached), step, n)
    ratio = loader_rate / train_rate
    print(f"input {list(cfg.data.input_size)}, batch {cfg.data.batch_size}, "
          f"{cfg.data.num_workers} workers, backbone {cfg.model.backbone}")
    print(f"loader {loader_rate:.0f} samples/s, training {train_rate:.0f} samples/s, "
          f"loader/training = {ratio:.2f}")
    return {"loader_samples_per_s": loader_rate, "train_samples_per_s": train_rate,
            "loader_over_training": ratio}
