"""Training step rate of each compact experiment in fp32, bf16-mixed and bf16 + channels_last,
against its data loader's rate alone.

One experiment per method, at its compact scale (its own model, input size and batch size)
on the synthetic data. Rates are per CPU core: samples per second of this process's CPU time
with one torch thread. Wall time on a machine shared with other jobs measures the others
(two OpenMP threads spin while the scheduler has parked one); CPU time of one thread does not,
and a step's CPU time is what the precision changes. Per experiment, in this run:

- loader: the experiment's training DataLoader in this process (full augmentation and target
  rendering), first batch excluded;
- fp32 / bf16 / bf16+NHWC: Lightning ``fit`` steps on batches already in memory (forward,
  loss, backward, optimizer step; manual optimisation included, so the RNN decoder's autocast
  is what Lightning's precision plugin gives it), timed from ``on_train_batch_start`` to
  ``on_train_batch_end`` after one untimed step, on copies of the same initial model; the
  precisions alternate round by round, and the fastest round counts.

Ratios are what to read: bf16 / fp32, bf16 + NHWC / fp32, and loader / step: the experiment's
``num_workers`` loader processes against a step on every core, ``workers x loader / (cores x
fastest step)``, which should be >= 2 (the loader is then never the bottleneck; a row below 2
is flagged). ``auto`` is what ``trainer.precision=auto`` picks here for the method
(callbacks/distribution.py).
"""
from __future__ import annotations

import copy
import itertools
import logging
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

EXPERIMENTS = ("simple_baseline", "memory_t3_cpn_memory", "centernet", "stm_t1_cc",
               "correspondence_pose", "correspondence_siamese", "correspondence_refinement",
               "assoc_embedding", "rnn_association")
MODES = {"fp32": ("32-true", False), "bf16": ("bf16-mixed", False),
         "bf16+NHWC": ("bf16-mixed", True)}
COMMON = ["logger.wandb=false", "trainer.progress_bar=false", "trainer.accelerator=cpu",
          "trainer.devices=1"]


def _samples(batch) -> int:
    """The batch's leading size: the first tensor's first dimension, depth first."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0] if batch.dim() else 0
    values = batch.values() if isinstance(batch, dict) else batch
    for value in values if isinstance(batch, (dict, list, tuple)) else ():
        found = _samples(value)
        if found:
            return found
    return 0


class StepTimer(L.Callback):
    """Seconds of each training step after the first ``skip``."""

    def __init__(self, skip: int = 1) -> None:
        self.skip, self.seconds, self._start = skip, [], 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._start = time.process_time()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if batch_idx >= self.skip:
            self.seconds.append(time.process_time() - self._start)


def _step_seconds(model: L.LightningModule, batches: list, mode: str, steps: int,
                  tmp: Path) -> float:
    from vidpose.callbacks.distribution import ChannelsLast

    precision, nhwc = MODES[mode]
    timer = StepTimer()
    callbacks = [timer] + ([ChannelsLast()] if nhwc else [])
    trainer = L.Trainer(accelerator="cpu", devices=1, precision=precision, max_steps=steps + 1,
                        max_epochs=-1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0,
                        default_root_dir=str(tmp), callbacks=callbacks)
    loader = DataLoader(list(itertools.islice(itertools.cycle(batches), steps + 1)),
                        batch_size=None)
    trainer.fit(copy.deepcopy(model), train_dataloaders=loader)
    return sum(timer.seconds) / len(timer.seconds)


def _loader_rate(loader, batches: int) -> tuple[float, list]:
    it = iter(loader)
    first = next(it)  # worker start-up and the first batch: once per run, not per step
    count, start, kept = 0, time.process_time(), [first]
    for batch in itertools.islice(it, batches):
        count += _samples(batch)
        if len(kept) < 2:
            kept.append(batch)
    return count / (time.process_time() - start), kept


def _synth(out: Path, quick: bool) -> Path:
    """The synthetic set (tiny when quick): the one ``make train`` uses if present, else new."""
    from vidpose.synth import synthesize

    preset = "tiny" if quick else "default"
    own = Path("data/synth") / preset
    if (own / "manifest.json").is_file():
        return own
    synthesize(out / preset, preset=preset, seed=0, progress=False)
    return out / preset


def _overrides(name: str, synth: Path, runs: Path) -> list[str]:
    from vidpose.config import compose

    cfg = compose(name, COMMON)
    found = [f"data.root={synth / Path(cfg.data.root).name}", f"runs_dir={runs}",
             f"data.synth_preset={synth.name}"]
    for key in ("crowded_root", "val_root"):
        if cfg.data.get(key):
            found.append(f"data.{key}={synth / Path(cfg.data[key]).name}")
    if cfg.init_from:
        found.append("init_from=null")  # the rate does not depend on where weights start
    return found


def measure(name: str, synth: Path, tmp: Path, rounds: int, loader_batches: int) -> dict:
    """One experiment's loader rate and step rates per precision (samples/s)."""
    from vidpose.callbacks.distribution import choose_precision
    from vidpose.config import compose
    from vidpose.methods import get_method
    from vidpose.run import build, train

    overrides = COMMON + _overrides(name, synth, tmp / "runs")
    workers = compose(name, overrides).data.num_workers
    overrides.append("data.num_workers=0")  # the loader's CPU time is this process's
    cfg = compose(name, overrides)
    if cfg.model.get("features"):
        # The RNN decoder decodes a trained AE's features: a one-step AE will do here.
        train(compose("assoc_embedding", overrides + [
            "trainer.max_steps=1", "trainer.limit_val_batches=0", "logger.csv=false"]))
    torch.manual_seed(0)
    model, datamodule = build(cfg)
    datamodule.setup("fit")
    loader_rate, batches = _loader_rate(datamodule.train_dataloader(), loader_batches)
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(rounds):  # the modes alternate round by round
        for mode in MODES:
            seconds[mode].append(_step_seconds(model, batches, mode, 1, tmp / name))
    size = _samples(batches[0])
    return {"batch": size, "workers": workers, "loader": loader_rate,
            "rate": {mode: size / min(s) for mode, s in seconds.items()},
            "auto": choose_precision("auto", "cpu", get_method(cfg.experiment.method).model_cls)}


def run(quick: bool = False, experiments: tuple[str, ...] = EXPERIMENTS) -> dict[str, float]:
    from vidpose.callbacks.distribution import choose_precision

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no per-fit banners
    here = choose_precision("auto", "cpu")
    cores = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _table(quick, experiments, here, cores)
    finally:
        torch.set_num_threads(cores)


def _table(quick: bool, experiments: tuple[str, ...], here, cores: int) -> dict[str, float]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        synth = _synth(tmp / "synth", quick)
        print(f"samples/s per core ({cores} cores); data {synth.name}; auto on this CPU: "
              f"{here.precision}"
              f"{' + channels_last' if here.channels_last else ''} ({here.reason})")
        print(f"{'experiment':<26} {'batch':>5} {'wk':>2} {'loader':>7} {'fp32':>6} {'bf16':>6} "
              f"{'bf16+NHWC':>9} {'bf16/fp32':>9} {'NHWC/fp32':>9} {'loader/step':>11} auto",
              flush=True)
        for name in experiments:
            m = measure(name, synth, tmp, 1 if quick else 2, 2 if quick else 6)
            rate, auto = m["rate"], m["auto"]
            feed = m["workers"] * m["loader"] / (cores * max(rate.values()))
            pick = auto.precision + ("+NHWC" if auto.channels_last else "")
            print(f"{name:<26} {m['batch']:>5} {m['workers']:>2} {m['loader']:>7.1f} "
                  f"{rate['fp32']:>6.1f} {rate['bf16']:>6.1f} {rate['bf16+NHWC']:>9.1f} "
                  f"{rate['bf16'] / rate['fp32']:>9.2f} {rate['bf16+NHWC'] / rate['fp32']:>9.2f} "
                  f"{feed:>11.1f} {pick}" + ("  <- loader is the bottleneck" if feed < 2 else ""),
                  flush=True)
            results.update({f"{name}_loader_samples_per_s": m["loader"],
                            f"{name}_loader_over_step": feed,
                            **{f"{name}_{mode}_samples_per_s": r for mode, r in rate.items()},
                            f"{name}_bf16_over_fp32": rate["bf16"] / rate["fp32"],
                            f"{name}_bf16_nhwc_over_fp32": rate["bf16+NHWC"] / rate["fp32"]})
    return results
