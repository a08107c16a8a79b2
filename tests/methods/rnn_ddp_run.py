"""Two-process CPU DDP training of a tiny RNN pose decoder (run as a script by
test_rnn_decoder_ddp.py): writes each rank's backward count and decoder parameters."""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_rnn_decoder import DATA, FEATURE_MODEL, SMALL, _sample  # noqa: E402

from vidpose.evaluation.split import gather_all  # noqa: E402
from vidpose.methods.rnn_decoder import RNNPoseDecoder  # noqa: E402


class Report(L.Callback):
    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_end(self, trainer, module) -> None:
        flat = torch.cat([p.detach().flatten() for p in module.decoder_modules().parameters()])
        gathered = [torch.zeros_like(flat) for _ in range(trainer.world_size)]
        dist.all_gather(gathered, flat)
        counts = gather_all(module.backward_count)
        if trainer.is_global_zero:
            self.out.write_text(json.dumps({
                "backward_counts": counts, "initial": module.initial.tolist(),
                "parameters": [g.tolist() for g in gathered]}))


def main(out: Path) -> None:
    torch.manual_seed(0)
    model = RNNPoseDecoder({**SMALL, "within_image_batch": 1, "lstm2": True, "lr": 1e-2},
                           DATA, feature_model=copy.deepcopy(FEATURE_MODEL))
    # A decided stop head (p ~ 0.007 < omega): each image stops at t = z + 1, so with T = 1
    # the rank that gets the one two-person image runs one backward pass more.
    with torch.no_grad():
        model.lstm1.stop.weight.zero_()
        model.lstm1.stop.bias.fill_(-5.0)
    model.initial = torch.cat([p.detach().flatten() for p in model.decoder_modules().parameters()])
    model.backward_count = 0
    backward = model.manual_backward

    def counting(loss, *args, **kwargs):
        model.backward_count += 1
        backward(loss, *args, **kwargs)

    model.manual_backward = counting
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, max_epochs=1, limit_val_batches=0,
                        default_root_dir=str(out.parent), callbacks=[Report(out)])
    samples = [_sample(i) for i in (0, 2, 4, 6, 8, 10, 12, 1)]  # one person, except the last
    trainer.fit(model, train_dataloaders=DataLoader(samples, batch_size=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
