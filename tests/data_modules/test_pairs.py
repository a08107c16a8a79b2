"""PairDataModule: self-supervised image pairs (image, its random affine warp) and their geometry."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from vidpose.data_modules.config import PairConfig
from vidpose.data_modules.pairs import PairDataModule, make_pair, pair_affine
from vidpose.data_modules.sequences import step_affine
from vidpose.data_modules.transforms import IMAGENET_MEAN, IMAGENET_STD, apply_affine, invert_affine
from vidpose.errors import ConfigError
from vidpose.formats.coco import write_coco
from vidpose.keypoints import COCO17
from vidpose.pose import Frame, Pose, PoseDataset

LW, RW = COCO17.index["left_wrist"], COCO17.index["right_wrist"]


def pixels(image: torch.Tensor) -> np.ndarray:
    """Normalised (3, H, W) back to RGB values in [0, 255], (H, W, 3)."""
    return (image.permute(1, 2, 0).numpy() * IMAGENET_STD + IMAGENET_MEAN) * 255.0


def bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """``image`` (H, W, C) sampled at float points (N, 2), pixel centres at integers."""
    x0, y0 = np.floor(xy[:, 0]).astype(int), np.floor(xy[:, 1]).astype(int)
    fx, fy = (xy[:, 0] - x0)[:, None], (xy[:, 1] - y0)[:, None]
    return ((1 - fx) * (1 - fy) * image[y0, x0] + fx * (1 - fy) * image[y0, x0 + 1]
            + (1 - fx) * fy * image[y0 + 1, x0] + fx * fy * image[y0 + 1, x0 + 1])


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth but everywhere-varying RGB texture (bilinear resampling stays close to it)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    phase = np.array([0.0, 1.0, 2.0]) + seed
    image = (127 + 60 * np.sin(xs[..., None] / 3.1 + phase) * np.cos(ys[..., None] / 4.3 - phase)
             + 50 * np.sin((xs[..., None] + ys[..., None]) / 7.0 + 2 * phase))
    return np.clip(image, 0, 255).astype(np.uint8)


def person(center: tuple[float, float], scale: float) -> np.ndarray:
    """(17, 3) keypoints spread around ``center`` (all visible), left and right apart."""
    gen = np.random.default_rng(int(center[0] * 7 + center[1]))
    kps = np.zeros((17, 3))
    kps[:, 0] = center[0] + scale * gen.uniform(-1, 1, 17)
    kps[:, 1] = center[1] + scale * gen.uniform(-1, 1, 17)
    kps[:, 2] = 2
    return kps


@pytest.fixture(scope="module")
def textured_root(tmp_path_factory):
    """coco layout: 4 textured images per split at exactly the input size (64 x 48), so
    image 1 is the file's pixels; 2 persons each."""
    root = tmp_path_factory.mktemp("pairs") / "coco"
    for split in ("train", "val"):
        frames = []
        for i in range(4):
            poses = [Pose(person((14 + i, 20), 10)), Pose(person((34, 44 - i), 12))]
            frame = Frame(i + 1, f"{i:012d}.png", 48, 64, poses)
            (root / split).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / split / frame.file_name),
                        cv2.cvtColor(texture(64, 48, i), cv2.COLOR_RGB2BGR))
            frames.append(frame)
        write_coco(root / "annotations" / f"person_keypoints_{split}.json",
                   PoseDataset(frames, COCO17, str(root / split)))
    return root


def test_pair_affine_ranges_and_flip():
    size = (64, 48)
    identity = pair_affine(PairConfig(0.0, 0.0, 0.0, 0.0), size, torch.Generator())
    np.testing.assert_allclose(identity, np.eye(3)[:2], atol=1e-12)
    mirror = pair_affine(PairConfig(0.0, 0.0, 0.0, 1.0), size, torch.Generator())
    np.testing.assert_allclose(apply_affine([[0.0, 5.0], [47.0, 9.0]], mirror), [[47, 5], [0, 9]],
                               atol=1e-12)
    cfg = PairConfig(translate=0.1, rotation=20.0, scale=0.2, flip=0.5)
    gen = torch.Generator().manual_seed(0)
    center = np.array([23.5, 31.5])
    dets = []
    for _ in range(40):
        warp = pair_affine(cfg, size, gen)
        det = np.linalg.det(warp[:, :2])
        dets.append(det)
        assert 1 / 1.2 ** 2 - 1e-9 <= abs(det) <= 1.2 ** 2 + 1e-9
        linear = warp[:, :2] @ np.diag([np.sign(det), 1.0])  # undo the mirror
        assert abs(math.degrees(math.atan2(linear[0, 1], linear[0, 0]))) <= 20.0 + 1e-9
        # The centre (a fixed point of mirror, rotation and zoom) moves by the shift alone.
        shift = apply_affine(center, warp) - center
        assert abs(shift[0]) <= 0.1 * 48 + 1e-9 and abs(shift[1]) <= 0.1 * 64 + 1e-9
    assert 5 < sum(d < 0 for d in dets) < 35  # about half the warps mirror


def test_image_2_pixel_at_the_warp_equals_image_1_pixel():
    image1 = (np.random.default_rng(0).integers(0, 256, (32, 40, 3))).astype(np.uint8)
    ys, xs = np.mgrid[0:32, 0:40]
    points = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    center = np.array([19.5, 15.5])
    # Warps that take integer pixels to integer pixels: a quarter turn plus a shift, and a
    # mirror plus a shift; every pixel of random noise must arrive unchanged.
    turn = step_affine(center, np.array([2.0, -1.0]), 90.0, 1.0, 0.0)
    mirror = np.array([[-1.0, 0.0, 36.0], [0.0, 1.0, 3.0]])
    for warp in (turn, mirror):
        pair = make_pair(image1, np.zeros((0, 17, 3)), warp, COCO17)
        moved = np.rint(apply_affine(points, warp)).astype(int)
        inside = (moved[:, 0] >= 0) & (moved[:, 0] < 40) & (moved[:, 1] >= 0) & (moved[:, 1] < 32)
        assert inside.sum() > 600
        got = pair.image2[moved[inside, 1], moved[inside, 0]]
        assert np.array_equal(got, image1[ys.ravel()[inside], xs.ravel()[inside]])


def test_keypoints_follow_the_warp_flip_swaps_slots_and_leaving_truncates():
    keypoints1 = np.zeros((2, 17, 3))
    keypoints1[0] = person((14, 16), 6)
    keypoints1[0, 3] = 0  # an absent keypoint is neither moved nor truncated
    keypoints1[1, :, :2] = [[30.0 + k % 5, 5.0 + k] for k in range(17)]
    keypoints1[1, :, 2] = 1
    image = np.zeros((32, 40, 3), np.uint8)
    # Mirror (x -> 39 - x), then shift right by 12: x -> 51 - x. Person 0 (x 8..20) partly
    # leaves the 40 px wide image 2; person 1 (x 30..34) lands at 17..21.
    warp = np.array([[-1.0, 0.0, 39.0 + 12.0], [0.0, 1.0, 0.0]])
    pair = make_pair(image, keypoints1, warp, COCO17)
    assert pair.flipped
    expected = apply_affine(keypoints1[..., :2], warp)
    inside = (expected[..., 0] >= 0) & (expected[..., 0] <= 39) & (keypoints1[..., 2] > 0)
    np.testing.assert_allclose(pair.correspondences[inside][:, :2], expected[inside])
    assert np.all(pair.correspondences[~inside] == 0)
    assert np.array_equal(pair.truncated, (keypoints1[..., 2] > 0) & ~inside)
    assert pair.truncated[0].any() and not pair.truncated[0, 3]
    # Image 2's annotations: the joint at the warp of image 1's right wrist is image 2's left.
    assert np.array_equal(pair.keypoints2[:, LW], pair.correspondences[:, RW])
    assert np.array_equal(pair.keypoints2, pair.correspondences[:, COCO17.flip_index])
    plain = make_pair(image, keypoints1, np.array([[1.0, 0, 3], [0, 1, -2]]), COCO17)
    assert not plain.flipped and np.array_equal(plain.keypoints2, plain.correspondences)
    assert not plain.truncated.any()
    np.testing.assert_allclose(plain.correspondences[1, :, :2], keypoints1[1, :, :2] + [3, -2])


def test_samples_keys_padding_and_geometry(textured_root, data_module):
    ranges = {"translate": 0.3, "rotation": 25.0, "scale": 0.1, "flip": 0.5}
    modules = [data_module(PairDataModule, textured_root, "coco", input_size=[64, 48],
                           max_persons=5, pair={**ranges, "val_seed": seed}) for seed in (0, 5)]
    assert len(modules[0].train_set) == 4 and len(modules[0].val_set) == 4
    flips = []
    for dm, index in ((dm, index) for dm in modules for index in range(4)):
        s = dm.val_set[index]
        assert s["image1"].shape == s["image2"].shape == (3, 64, 48)
        assert s["keypoints1"].shape == s["correspondences"].shape == s["keypoints2"].shape == (5, 17, 3)
        assert s["truncated"].shape == (5, 17) and int(s["num_persons"]) == 2
        assert torch.all(s["keypoints1"][2:] == 0) and not s["truncated"][2:].any()
        frame = dm.val_data.frames[int(s["frame"])]
        np.testing.assert_allclose(s["image_to_input"].numpy(), np.eye(3)[:2], atol=1e-12)
        kp1 = s["keypoints1"][:2].numpy()
        np.testing.assert_allclose(kp1, np.stack([p.keypoints for p in frame.poses]), atol=1e-4)
        warp = s["warp"].numpy()
        corr = s["correspondences"][:2].numpy()
        expected = apply_affine(kp1[..., :2], warp)
        kept = corr[..., 2] > 0
        np.testing.assert_allclose(corr[kept][:, :2], expected[kept], atol=1e-4)
        truncated = s["truncated"][:2].numpy()
        assert np.array_equal(truncated, (kp1[..., 2] > 0) & ~kept)
        off = expected[truncated]
        assert np.all((off[:, 0] < 0) | (off[:, 0] > 47) | (off[:, 1] < 0) | (off[:, 1] > 63))
        flipped = bool(s["flipped"])
        flips.append(flipped)
        assert flipped == (np.linalg.det(warp[:, :2]) < 0)
        order = COCO17.flip_index if flipped else np.arange(17)
        assert torch.equal(s["keypoints2"], s["correspondences"][:, order])
        # Pixels: image 2 at warp(x) is image 1 at x (bilinear resampling of a smooth texture).
        image1, image2 = pixels(s["image1"]), pixels(s["image2"])
        np.testing.assert_allclose(image1, texture(64, 48, int(s["frame"])), atol=0.01)
        ys, xs = np.mgrid[0:64, 0:48]
        points = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
        moved = apply_affine(points, warp)
        # Away from both images' borders, where image 2's neighbours of warp(x) come from
        # inside image 1 rather than from the black fill.
        inner = ((moved[:, 0] >= 1) & (moved[:, 0] <= 46) & (moved[:, 1] >= 1) & (moved[:, 1] <= 62)
                 & (points[:, 0] >= 2) & (points[:, 0] <= 45) & (points[:, 1] >= 2)
                 & (points[:, 1] <= 61))
        diff = np.abs(bilinear(image2, moved[inner]) - image1.reshape(-1, 3)[inner])
        assert inner.sum() > 500 and diff.mean() < 2.0 and diff.max() < 12.0, (diff.mean(), diff.max())
    assert any(flips) and not all(flips)


def test_validation_is_fixed_and_training_draws_anew(textured_root, data_module):
    options = {"input_size": [64, 48], "augment": {"color": True}}
    first, second = (data_module(PairDataModule, textured_root, "coco", **options) for _ in range(2))
    for key, value in first.val_set[1].items():
        assert torch.equal(value, second.val_set[1][key]), key
        assert torch.equal(value, first.val_set[1][key]), key
    torch.manual_seed(5)
    a = first.train_set[1]
    torch.manual_seed(5)
    b = second.train_set[1]
    assert torch.equal(a["image2"], b["image2"]) and torch.equal(a["warp"], b["warp"])
    assert not torch.equal(first.train_set[1]["warp"], a["warp"])


def test_truncation_is_common_with_large_shifts(textured_root, data_module):
    dm = data_module(PairDataModule, textured_root, "coco", input_size=[64, 48],
                     pair={"translate": 0.6, "rotation": 0.0, "scale": 0.0, "flip": 0.0})
    truncated = sum(int(dm.val_set[i]["truncated"].sum()) for i in range(4))
    kept = sum(int((dm.val_set[i]["correspondences"][..., 2] > 0).sum()) for i in range(4))
    assert truncated > 10 and kept > 10


def test_posetrack18_layout_and_batches(posetrack_root, data_module):
    dm = data_module(PairDataModule, posetrack_root, input_size=[64, 48])
    assert len(dm.train_set) == sum(f.is_labeled for f in dm.train_data.frames)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image1"].shape == (4, 3, 64, 48) and batch["keypoints2"].shape == (4, 20, 17, 3)
    assert batch["warp"].dtype == torch.float64 and batch["truncated"].dtype == torch.bool


def test_real_posetrack18_fixture(data_module, fixtures):
    dm = data_module(PairDataModule, fixtures / "posetrack18", stage="validate",
                     input_size=[128, 224], outside_tolerance=50.0)
    assert len(dm.val_set) == 3
    s = dm.val_set[0]
    kp1 = s["keypoints1"].numpy()
    present = kp1[..., 2] > 0
    assert present.sum() > 5
    assert np.all((kp1[present, 0] >= 0) & (kp1[present, 0] <= 223) & (kp1[present, 1] <= 127))
    corr = s["correspondences"].numpy()
    kept = corr[..., 2] > 0
    np.testing.assert_allclose(corr[kept][:, :2], apply_affine(kp1[kept][:, :2], s["warp"].numpy()),
                               atol=1e-3)
    back = apply_affine(kp1[present][:, :2], invert_affine(s["image_to_input"].numpy()))
    frame = dm.val_data.frames[int(s["frame"])]
    labelled = np.concatenate([p.keypoints for p in frame.poses if p.num_visible > 0])
    assert np.min(np.abs(back[:, None] - labelled[None, :, :2]).sum(-1), 1).max() < 1e-3


@pytest.mark.parametrize("pair, key", [({"flip": 1.5}, "data.pair.flip"),
                                       ({"rotation": -1.0}, "data.pair.rotation"),
                                       ({"translate": -0.1}, "data.pair.translate"),
                                       ({"shear": 3.0}, "shear")])
def test_bad_pair_settings_are_refused(textured_root, data_config, pair, key):
    with pytest.raises(ConfigError, match=key):
        PairDataModule(data_config(textured_root, "coco", pair=pair)).setup("validate")
