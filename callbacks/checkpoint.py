"""Checkpoints that survive faults: written atomically, checked before use, saved on SIGTERM.

* :func:`atomic_write` is the one way the suite writes a file it must not lose half of: a
  temporary file in the same folder (so the rename never crosses file systems), fsynced,
  then ``os.replace``\\ d over the old one. A kill or a full disk mid-write leaves the previous
  file whole. :class:`AtomicCheckpointIO` routes every Lightning checkpoint (``last.ckpt``
  and ``best-*.ckpt``) through it instead of Lightning's fsspec transaction, whose temporary
  file lives in ``TMPDIR`` and is *copied* into place when that is another file system.
* :func:`read_checkpoint` is the one way a checkpoint file is opened (resume, eval, track,
  infer, init_from): a missing, truncated or foreign file is one ``InputError`` naming it.
* :class:`LastCheckpoint` writes one ``last.ckpt`` every N optimizer steps, at the end of
  every epoch and of training, and when SIGTERM (what SLURM and most schedulers send) stops the run.
  Lightning's ModelCheckpoint takes either a step or an epoch interval; a crash must lose at
  most N steps and a finished epoch must always be resumable, so this one does both. The
  best-on-metric checkpoint is a separate, plain ModelCheckpoint that does not write `last`.
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from vidpose.errors import InputError

# What a checkpoint must hold to be resumed from (Lightning's full training state).
RESUMABLE_KEYS = ("state_dict", "loops", "optimizer_states", "global_step")
# mkstemp makes owner-only files; written files get the usual permissions instead.
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place.

    Until the rename the old ``path`` (if any) is untouched; an ``OSError`` while writing
    (disk full, quota, permissions) removes the temporary file and is one ``InputError``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            kept = "the previous file is kept" if path.exists() else "nothing was written"
            raise InputError(f"could not write ({err.strerror or err}); {kept}",
                             file=str(path)) from None
        raise
    # The rename itself is durable only once the folder's entry is on disk.
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode()))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO with :func:`atomic_write` for saving."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        # Serialised in memory first (as Lightning does): torch's zip writer turns a failed
        # write into an opaque RuntimeError, the plain file write keeps the OSError.
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write(path, lambda handle: handle.write(buffer.getbuffer()))


def read_checkpoint(path: str | Path, *, field: str, needs: tuple[str, ...] = ("state_dict",)
                    ) -> dict[str, Any]:
    """The contents of the checkpoint file ``path`` (CPU tensors, ``weights_only``).

    Missing, truncated (a kill mid-copy), foreign (a text file, a pickle of something else)
    or lacking one of ``needs`` (``()`` accepts a plain state dict): one ``InputError``
    naming the file and the config ``field`` or option that named it.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint not found", file=str(path), field=field)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # zip, unpickling and weights_only errors alike
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"not a readable checkpoint (truncated, or not a torch checkpoint "
                         f"file): {reason}", file=str(path), field=field) from None
    if not isinstance(state, dict):
        raise InputError(f"not a checkpoint: holds a {type(state).__name__}, expected a "
                         "mapping of tensors", file=str(path), field=field)
    missing = [key for key in needs if key not in state]
    if missing:
        raise InputError(f"not a Lightning training checkpoint: it has no {missing[0]!r}",
                         file=str(path), field=field)
    return state


class LastCheckpoint(ModelCheckpoint):
    def __init__(self, dirpath: str, every_n_train_steps: int) -> None:
        # No version counter: a resumed run whose folder was moved (so the restored
        # last_model_path names the old place) still rewrites last.ckpt, never last-v1.ckpt.
        super().__init__(dirpath=dirpath, every_n_train_steps=every_n_train_steps,
                         save_top_k=0, save_last=True, enable_version_counter=False)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A run that max_steps or max_time stops mid-epoch ends with its final state too.
        if not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule,
                     exception: BaseException) -> None:
        # Lightning turns SIGTERM into SIGTERMException between two batches, where the state
        # is whole. Any other exception may come mid-step (Ctrl-C inside backward): saving
        # that would overwrite a good last.ckpt with a half-updated one, so those keep the
        # last periodic checkpoint.
        if (isinstance(exception, SIGTERMException)
                and not self._should_skip_saving_checkpoint(trainer)):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
