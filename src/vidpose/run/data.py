"""The data a run reads: the synthetic set generated on first use, a real root checked."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from vidpose.data_modules.config import DATASETS
from vidpose.errors import ConfigError, InputError


def ensure_data(cfg: DictConfig, *, progress: bool = True) -> None:
    """Generate the synthetic data set when the config points at one that is missing.

    ``data.root`` (and ``data.crowded_root``, when set) of a synthetic experiment is
    ``<out>/<layout>``; ``<out>/manifest.json`` is written last, so a half-written set (a
    crash mid-generation) is generated again. Data is generated only into a folder named
    after the preset (``data/synth/<preset>/<layout>``): any other root without a manifest
    is taken for a real data set, whose mistyped path must be an error, not a synthetic set
    written into the user's data folder.
    """
    roots = [("data.root", Path(cfg.data.root))]
    for key in ("val_root", "crowded_root"):
        if cfg.data.get(key):
            roots.append((f"data.{key}", Path(cfg.data[key])))
    preset = cfg.data.synth_preset
    for field, root in roots:
        if not preset:
            if not root.exists():
                raise InputError("data root not found; set data.root to your dataset folder "
                                 "(or data.synth_preset to generate synthetic data there)",
                                 file=str(root), field=field)
            continue
        if root.name not in DATASETS:
            raise ConfigError(f"{field}: a synthetic root must end in one of {DATASETS} "
                              f"(got {root}); set data.synth_preset=null for real data")
        out = root.parent
        if (out / "manifest.json").is_file():
            continue
        if out.name != preset:
            raise InputError(f"no synthetic set here ({out / 'manifest.json'} missing), and "
                             f"synthetic data '{preset}' is only generated into a folder named "
                             f"'{preset}' (.../{preset}/{root.name}); for real data select it "
                             f"(data={root.name} data.root=...)", file=str(root), field=field)
        from vidpose.synth import synthesize

        print(f"Generating synthetic data '{preset}' into {out.resolve()} (once) ...", flush=True)
        synthesize(out, preset=preset, seed=int(cfg.seed), progress=progress)
