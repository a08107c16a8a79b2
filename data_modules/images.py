"""Bottom-up whole images for COCO-style training, validated on a normal and a crowded set.

The RNN pose decoder paper (and its AE baseline) trains on COCO and reports COCO AP on COCO
val and on OCHuman, whose persons overlap heavily. Samples are FrameDataset single frames
(``data_modules/frames.py``: image, max-merged heatmaps, per-person keypoints in input
pixels); this module adds the crowded set: with ``data.crowded_root`` set, the OCHuman-layout
split ``data.crowded_split`` there is the second validation (and test) dataloader.
``eval_sets()`` names the sets in dataloader order for the evaluation
(``methods/bottom_up.py``).
"""
from __future__ import annotations

import dataclasses

from torch.utils.data import DataLoader

from vidpose.data_modules.datasets import in_schema
from vidpose.data_modules.frames import FrameDataModule, FrameDataset
from vidpose.data_modules.sources import load_split
from vidpose.pose import PoseDataset

CROWDED = "crowded"  # the name of the second validation set in logged metrics


class ImageDataModule(FrameDataModule):
    """Single frames of a COCO-layout set; plus an OCHuman-layout crowded validation set."""

    def __init__(self, cfg, schema_name: str | None = None) -> None:
        super().__init__(cfg, schema_name)
        self.crowded_data: PoseDataset | None = None
        self.crowded_set: FrameDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if self.cfg.crowded_root and self.crowded_set is None:
            crowded_cfg = dataclasses.replace(self.cfg, root=self.cfg.crowded_root,
                                              dataset="ochuman")
            self.crowded_data = in_schema(load_split(crowded_cfg, self.cfg.crowded_split),
                                          self.schema_name)
            self.crowded_set = self.make_dataset(self.crowded_data, self.cfg.crowded_split,
                                                 train=False)

    def eval_sets(self) -> list[tuple[str, PoseDataset]]:
        """(name, ground truth) of each validation dataloader, in dataloader order."""
        if self.val_data is None:
            raise RuntimeError("call setup() before asking for the evaluation sets")
        sets = [("val", self.val_data)]
        if self.crowded_data is not None:
            sets.append((CROWDED, self.crowded_data))
        return sets

    def val_dataloader(self) -> list[DataLoader]:
        loaders = [super().val_dataloader()]
        if self.crowded_set is not None:
            loaders.append(self._loader(self.crowded_set, shuffle=False))
        return loaders
