"""COCO keypoint AP of bottom-up methods on every validation set, for every decoder.

A bottom-up method predicts all persons of whole images. The RNN pose decoder paper compares
two ways of turning the same features into persons (its RNN and AE's grouping) on COCO and
on the crowded OCHuman; this mixin scores each decoder on each validation set of the data
module (``ImageDataModule.eval_sets()``: ``val`` and, when configured, ``crowded``) with
pycocotools, so both figures come from one pass over the images.

A method sets ``DECODERS`` (its own first) and implements ``predict_poses(batch)``. Logged
per set and decoder: ``val/AP``, ``val/AP50``, ``val/AP75``, ``val/AR`` for the first decoder
on the first set; ``_<decoder>`` appended for the others and ``crowded_`` prefixed for the
crowded set (``val/crowded_AP_ae``). Each decoder's poses are written as COCO results files,
``<run>/predictions/<stage>/<set>_<decoder>.json`` (``vidpose eval-coco`` scores them again).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from vidpose.data_modules.frames import FrameSample
from vidpose.data_modules.transforms import apply_affine, invert_affine
from vidpose.errors import ConfigError
from vidpose.evaluation.split import SplitEvaluator, result_folder
from vidpose.formats.cocostyle import PERSON_CATEGORY
from vidpose.formats.results import write_coco_results
from vidpose.methods.common import EvaluationHooks
from vidpose.metrics.coco_ap import coco_keypoint_stats, ground_truth_dict
from vidpose.pose import Frame, Pose, PoseDataset

LOGGED_STATS = ("AP", "AP50", "AP75", "AR")
DECODER_TITLES = {"rnn": "RNN decoder", "ae": "AE grouping"}


def metric_name(stage: str, set_name: str, decoder: str, primary: str, stat: str = "AP") -> str:
    """``val/AP``, ``val/AP_ae``, ``val/crowded_AP``, ...: the logged name of one figure."""
    prefix = "" if set_name == "val" else f"{set_name}_"
    suffix = "" if decoder == primary else f"_{decoder}"
    return f"{stage}/{prefix}{stat}{suffix}"


def place_dropped_joints(keypoints: np.ndarray) -> np.ndarray:
    """A person's (K, 3) keypoints (x, y, score) with every joint of score 0 (dropped by a
    decoder's threshold, or not found) moved to the mean position of its scored joints.

    A COCO results file cannot leave a joint out, and pycocotools scores every joint of a
    detection by its coordinates whatever its third value. pose-ae-train, on which the RNN
    decoder paper's code is built, writes a joint a person lacks at the mean of that
    person's other joints (``test.py``, ``genDtByPred``); so a dropped joint is not scored
    where its weak heatmap maximum happened to be, and it leaves the box of the person's
    joints, from which pycocotools takes the detection's area, unchanged. A person without
    a scored joint is returned as it is (decoders do not emit it).
    """
    out = np.array(keypoints, dtype=np.float64, copy=True)
    scored = out[:, 2] > 0
    if scored.any() and not scored.all():
        out[~scored, :2] = out[scored, :2].mean(0)
    return out


def to_image_pixels(poses: list[Pose], image_to_input: np.ndarray) -> list[Pose]:
    """Poses with keypoints in input pixels -> the same poses in image pixels."""
    to_image = invert_affine(image_to_input)
    return [Pose(np.column_stack([apply_affine(pose.keypoints[:, :2], to_image), pose.keypoints[:, 2]]),
                 score=float(pose.score)) for pose in poses]


class BottomUpEvaluation(EvaluationHooks):
    """Validation and test of a bottom-up method: COCO AP per set and decoder (see above).

    The method provides ``predict_poses(batch) -> {decoder: [poses of each image]}``, poses
    with keypoints in input pixels (x, y, score) and the person score that ranks them.
    """

    DECODERS: tuple[str, ...] = ()

    @classmethod
    def summary_table(cls, metrics: dict[str, float], stage: str = "val") -> str:
        """COCO AP of every decoder (rows) on every set (columns), as logged by a run."""
        sets = [s for s in ("val", "crowded")
                if metric_name(stage, s, cls.DECODERS[0], cls.DECODERS[0]) in metrics]
        if not sets:
            return ""
        header = "| COCO AP (%) | " + " | ".join(
            "normal" if s == "val" else s for s in sets) + " |"
        lines = [header, "|---" * (len(sets) + 1) + "|"]
        for decoder in cls.DECODERS:
            values = [metrics.get(metric_name(stage, s, decoder, cls.DECODERS[0])) for s in sets]
            cells = ["-" if value is None else f"{value:.1f}" for value in values]
            lines.append(f"| {DECODER_TITLES.get(decoder, decoder)} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    @classmethod
    def summary_legend(cls, stage: str = "val") -> str:
        """What the summary table's numbers are and the names they are logged under."""
        logged = "; ".join(
            f"{DECODER_TITLES.get(d, d)}: {metric_name(stage, 'val', d, cls.DECODERS[0])} "
            f"(normal), {metric_name(stage, 'crowded', d, cls.DECODERS[0])} (crowded)"
            for d in cls.DECODERS)
        return ("COCO keypoint AP (pycocotools), in percent: precision averaged over OKS "
                "thresholds 0.50:0.95 (OKS: each joint's distance scaled by the person's size "
                "and the joint's sigma), over the persons of the last validation; normal = the "
                f"val split, crowded = the crowded split (data.crowded_root). Logged as {logged}.")

    # Lightning hooks: the epoch hooks are EvaluationHooks'; a step knows its set by the
    # index of its dataloader.
    def validation_step(self, batch: FrameSample, batch_idx: int,
                        dataloader_idx: int = 0) -> None:
        self._evaluation_step(batch, dataloader_idx)

    def test_step(self, batch: FrameSample, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluation_step(batch, dataloader_idx)

    def make_evaluator(self) -> SplitEvaluator:
        """Holds (set index, decoder, frame, poses in image pixels) per image; the scores
        are this mixin's (per set and decoder)."""
        return SplitEvaluator()

    def _evaluation_step(self, batch: FrameSample, set_index: int) -> None:
        predicted = self.predict_poses(batch)
        frames = batch["frame"].cpu().numpy()
        affines = batch["image_to_input"].cpu().numpy()
        for decoder in self.DECODERS:
            for i, poses in enumerate(predicted[decoder]):
                self.evaluator.batches.append((set_index, decoder, int(frames[i]),
                                               to_image_pixels(poses, affines[i])))

    def _ground_truth(self, truth: PoseDataset) -> dict[str, Any]:
        """pycocotools' dict of a set, built once per set object (it reads every mask's
        area), not at every validation."""
        if not hasattr(self, "_ground_truth_cache"):
            self._ground_truth_cache: dict[int, tuple[PoseDataset, dict[str, Any]]] = {}
        if id(truth) not in self._ground_truth_cache:
            # Holding the set as well keeps its id from being reused by another object.
            self._ground_truth_cache[id(truth)] = (truth, ground_truth_dict(truth))
        return self._ground_truth_cache[id(truth)][1]

    def _evaluation_epoch_end(self, stage: str) -> None:
        predictions = self.evaluator.gathered()
        if not predictions:
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "eval_sets"):
            raise ConfigError(f"{type(self).__name__} is scored on the sets of the `images` data "
                              "module (experiment.datamodule: images)")
        folder = result_folder(self.trainer, stage)
        for set_index, (set_name, truth) in enumerate(datamodule.eval_sets()):
            ground_truth = self._ground_truth(truth)
            for decoder in self.DECODERS:
                # DistributedSampler repeats images to even out the ranks: keep each once.
                per_frame: dict[int, list[Pose]] = {}
                for s, d, frame, poses in predictions:
                    if s == set_index and d == decoder:
                        per_frame.setdefault(frame, poses)
                if not per_frame:
                    continue
                frames = [Frame(truth.frames[f].image_id, truth.frames[f].file_name,
                                truth.frames[f].width, truth.frames[f].height, poses)
                          for f, poses in sorted(per_frame.items())]
                # Only the images seen: a limited validation is scored on what it ran.
                seen = {frame.image_id for frame in frames}
                subset = {**ground_truth,
                          "images": [im for im in ground_truth["images"] if im["id"] in seen],
                          "annotations": [a for a in ground_truth["annotations"]
                                          if a["image_id"] in seen]}
                records = [{"image_id": f.image_id, "category_id": PERSON_CATEGORY,
                            "keypoints": p.keypoints.ravel().tolist(), "score": float(p.score)}
                           for f in frames for p in f.poses]
                stats = coco_keypoint_stats(subset, records, truth.schema.sigmas)
                for stat in LOGGED_STATS:
                    if not np.isnan(stats[stat]):  # NaN: no ground-truth person of that kind
                        # Every rank holds all predictions: the values agree, no sync needed.
                        self.log(metric_name(stage, set_name, decoder, self.DECODERS[0], stat),
                                 stats[stat])
                if folder is not None:
                    folder.mkdir(parents=True, exist_ok=True)
                    write_coco_results(folder / f"{set_name}_{decoder}.json", frames)
