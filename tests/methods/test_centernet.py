"""CenterNet: decoding round trips, detect(), box AP, learning on two images and a
validation run that writes the detections file (the losses: tests/test_losses.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidpose.data_modules.boxes import BoxDataModule, centernet_targets, transform_boxes
from vidpose.data_modules.transforms import letterbox, normalize
from vidpose.errors import ConfigError, InputError
from vidpose.evaluation.boxes import box_ap
from vidpose.formats.detections import read_detections
from vidpose.keypoints import POSETRACK18
from vidpose.losses import centernet_loss
from vidpose.methods.centernet import CenterNet, boxes_to_image, decode_boxes
from vidpose.pose import Frame, Pose, PoseDataset

SMALL_MODEL = {"deconv_filters": 16, "head_conv": 16}
# Boxes x, y, w, h in the pixels of a 240 x 320 image.
GT_BOXES = np.array([[20.0, 30, 60, 150], [150, 40, 45.5, 120.3], [250, 100, 40, 60]])


def small_centernet(input_size: tuple[int, int] = (64, 64), **model) -> CenterNet:
    torch.manual_seed(0)
    return CenterNet({**SMALL_MODEL, **model}, {"input_size": list(input_size)})


def oracle_outputs(targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Head outputs that say exactly what the targets say: logits of the target heatmap,
    sizes and offsets at the centre cells."""
    heatmap = targets["heatmap"][None]
    count = int(targets["mask"].sum())
    index = targets["index"][:count]
    outputs = {"heatmap": torch.logit(heatmap.clamp(1e-6, 1 - 1e-6))}
    for key in ("size", "offset"):
        maps = torch.zeros(1, 2, *heatmap.shape[-2:])
        maps.flatten(2)[0, :, index] = targets[key][:count].T
        outputs[key] = maps
    return outputs


def by_x(boxes: np.ndarray) -> np.ndarray:
    return boxes[np.argsort(boxes[:, 0])]


def test_decoding_the_targets_gives_back_the_boxes_in_image_pixels():
    _, affine = letterbox(np.zeros((1, 240, 320, 3), dtype=np.uint8), (96, 128))
    targets = centernet_targets(transform_boxes(GT_BOXES, affine), (96, 128), 4, max_objects=8)
    boxes, scores, valid = decode_boxes(oracle_outputs(targets), max_detections=100, threshold=0.5)
    assert boxes.shape == (1, 100, 4) and int(valid.sum()) == 3
    assert scores[0, :3].min() > 0.99 and torch.all(scores[0, :-1] >= scores[0, 1:])
    found = boxes_to_image(boxes[0][valid[0]].numpy(), 4, affine)
    np.testing.assert_allclose(by_x(found), GT_BOXES, atol=1.0)


def test_detect_maps_boxes_to_each_images_pixels(monkeypatch):
    model = small_centernet((96, 128))
    _, affine = letterbox(np.zeros((1, 240, 320, 3), dtype=np.uint8), (96, 128))
    targets = centernet_targets(transform_boxes(GT_BOXES, affine), (96, 128), 4, max_objects=8)
    outputs = oracle_outputs(targets)
    seen = []

    def forward(image: torch.Tensor) -> dict[str, torch.Tensor]:
        seen.append((image.shape, model.training))
        return {k: v.expand(image.shape[0], -1, -1, -1) for k, v in outputs.items()}

    monkeypatch.setattr(model, "forward", forward)
    model.train()
    # The second image has the first's aspect at half the size: same input, half the boxes.
    found = model.detect([np.zeros((240, 320, 3), np.uint8), np.zeros((120, 160, 3), np.uint8)])
    assert seen == [((2, 3, 96, 128), False)] and model.training
    (boxes, scores), (half, _) = found
    assert boxes.shape == (3, 4) and scores.shape == (3,) and scores.min() >= 0.3
    np.testing.assert_allclose(by_x(boxes), GT_BOXES, atol=1.0)
    np.testing.assert_allclose(by_x(half), GT_BOXES / 2, atol=1.0)
    none, none_scores = model.detect([np.zeros((240, 320, 3), np.uint8)], score_threshold=1.1)[0]
    assert none.shape == (0, 4) and none_scores.shape == (0,)


def test_detect_refuses_what_is_not_an_rgb_uint8_image():
    model = small_centernet()
    assert model.detect([]) == []
    with pytest.raises(ValueError, match="image 1: expected RGB uint8"):
        model.detect([np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32), np.uint8)])


def test_a_few_dozen_steps_on_two_images_find_the_centres():
    boxes = [np.array([[8.0, 12, 20, 36]]), np.array([[30.0, 6, 24, 40], [4, 20, 16, 30]])]
    images = np.full((2, 64, 64, 3), 40, np.uint8)
    for image, frame_boxes in zip(images, boxes):
        for x, y, w, h in frame_boxes.astype(int):
            image[y:y + h, x:x + w] = (200, 120, 60)
    targets = [centernet_targets(b, (64, 64), 4, max_objects=4) for b in boxes]
    batch = {key: torch.stack([t[key] for t in targets]) for key in targets[0]}
    batch["image"] = normalize(images)
    model = small_centernet()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    centre = batch["heatmap"] == 1
    losses, peaks = [], []
    for _ in range(40):
        outputs = model(batch["image"])
        loss = centernet_loss(outputs, batch, model.cfg)["loss"]
        losses.append(loss.item())
        peaks.append(torch.sigmoid(outputs["heatmap"].detach())[centre].mean().item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert peaks[0] == pytest.approx(0.1, abs=0.03)  # the -2.19 bias prior
    assert peaks[-1] > 0.6
    assert losses[-1] < 0.25 * losses[0]


def _frames() -> PoseDataset:
    crowd = Pose(np.zeros((17, 3)), box=[250, 150, 60, 80], iscrowd=True)
    persons = [Pose(np.zeros((17, 3)), box=b) for b in GT_BOXES[:2]]
    first = Frame(1, "a.jpg", 320, 240, persons + [crowd],
                  ignore_regions=[np.array([[200.0, 5], [240, 5], [240, 30], [200, 30]])])
    second = Frame(2, "b.jpg", 320, 240, [Pose(np.zeros((17, 3)), box=GT_BOXES[2])])
    return PoseDataset([first, second], POSETRACK18, "", source="gt.json")


def test_box_ap_is_100_for_the_ground_truth_and_ignores_crowds_and_ignore_regions():
    data = _frames()
    perfect = {1: (GT_BOXES[:2], np.array([0.9, 0.8])), 2: (GT_BOXES[2:], np.array([0.7]))}
    stats = box_ap(data, [0, 1], perfect)
    assert stats == pytest.approx({"AP": 100.0, "AP50": 100.0, "AP75": 100.0, "AR": 100.0})
    # Confident boxes inside the crowd person and the ignore region are neither hit nor miss.
    ignored = {1: (np.vstack([[[260.0, 160, 30, 40], [205, 8, 20, 15]], GT_BOXES[:2]]),
                   np.array([0.99, 0.98, 0.9, 0.8])), 2: perfect[2]}
    assert box_ap(data, [0, 1], ignored)["AP"] == pytest.approx(100.0)
    # The same box elsewhere is a false positive ranked first.
    wrong = {1: (np.vstack([[[100.0, 200, 30, 30]], GT_BOXES[:2]]), np.array([0.99, 0.9, 0.8])),
             2: perfect[2]}
    assert box_ap(data, [0, 1], wrong)["AP"] < 90.0
    assert box_ap(data, [0, 1], {})["AP"] == 0.0
    with pytest.raises(InputError, match="no person box"):
        box_ap(PoseDataset([Frame(3, "c.jpg", 32, 32)], POSETRACK18, ""), [0], {})


def test_model_section_is_validated():
    with pytest.raises(ConfigError, match="unknown key"):
        small_centernet(head_channels=8)
    with pytest.raises(ConfigError, match="heatmap_stride"):
        small_centernet(deconv_layers=2)


def test_validation_logs_box_ap_and_writes_the_detections_file(tiny_synth, quiet_trainer, tmp_path):
    data = {"root": str(tiny_synth / "posetrack18"), "synth_preset": None, "input_size": [64, 80],
            "batch_size": 4, "num_workers": 0}
    datamodule = BoxDataModule(data)
    torch.manual_seed(0)
    model = CenterNet(dict(SMALL_MODEL), data)
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(model, datamodule=datamodule)
    metrics = trainer.callback_metrics
    assert {"val/AP", "val/AP50", "val/AR", "val/loss", "train/loss"} <= set(metrics)
    assert 0.0 <= float(metrics["val/AP"]) <= float(metrics["val/AP50"]) <= 100.0
    path = tmp_path / "predictions" / "val" / "detections.json"
    frames = datamodule.val_data.frames
    detections = read_detections(path, image_ids={f.image_id for f in frames})
    assert 0 < sum(map(len, detections.values())) <= 4 * 100  # one batch of 4 frames
    # The checkpoint rebuilds the detector for the tracking pipeline.
    trainer.save_checkpoint(tmp_path / "centernet.ckpt")
    reloaded = CenterNet.load_from_checkpoint(tmp_path / "centernet.ckpt", map_location="cpu")
    image = np.random.default_rng(0).integers(0, 255, (128, 160, 3), dtype=np.uint8)
    (boxes, scores), = model.detect([image], score_threshold=0.0)
    (boxes_again, scores_again), = reloaded.detect([image], score_threshold=0.0)
    np.testing.assert_allclose(boxes_again, boxes, atol=1e-4)
    np.testing.assert_allclose(scores_again, scores, atol=1e-6)
