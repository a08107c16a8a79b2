"""The optical-flow tracking cue: OKS after warping each track's pose by the flow.

Xiao et al., "Simple Baselines for Human Pose Estimation and Tracking" (ECCV 2018,
FlowTrack), the correspondence paper's Table 2 row "Optical Flow": the poses of the previous
frame are moved into the current frame by the dense optical flow between the two frames,
then compared with the new poses by OKS. The paper used a pretrained PWC-Net; we have no
pretrained flow network, so the flow is OpenCV's dense Farneback flow on the grayscale
frames, optionally computed on frames downscaled by ``scale`` for speed.

A track not seen in a frame keeps being carried forward by the flow while it is alive, so a
person missed for a few frames is looked for where the flow has taken them.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from vidpose.pose import Pose
from vidpose.tracking.similarity import track_oks


def warp_pose(pose: Pose, flow: np.ndarray, scale: float = 1.0) -> Pose:
    """``pose`` moved by ``flow`` (h, w, 2), the forward flow of the frame it is in, computed
    on that frame resized by ``scale``.

    Each joint moves by the flow sampled bilinearly at its position (border values outside
    the frame); unlabelled or zero-score joints stay where they are. The box moves by the
    mean displacement of the moved joints.
    """
    keypoints = pose.keypoints.copy()
    present = keypoints[:, 2] > 0
    if not present.any():
        return dataclasses.replace(pose, keypoints=keypoints, extra=dict(pose.extra))
    # Pixel centres of the image in the resized flow's pixel coordinates (cv2.resize's mapping).
    at = (keypoints[present, :2] + 0.5) * scale - 0.5
    sampled = cv2.remap(np.ascontiguousarray(flow, dtype=np.float32),
                        at[None, :, 0].astype(np.float32), at[None, :, 1].astype(np.float32),
                        cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[0]
    moved = sampled.astype(np.float64) / scale  # flow in resized pixels -> image pixels
    keypoints[present, :2] += moved
    box = None if pose.box is None else pose.box + np.concatenate([moved.mean(0), [0.0, 0.0]])
    return dataclasses.replace(pose, keypoints=keypoints, box=box, extra=dict(pose.extra))


def gray_frame(image: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """An RGB uint8 frame as the grayscale image the flow is computed on, resized by ``scale``."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    if scale == 1:
        return gray
    return cv2.resize(gray, (0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def dense_flow(previous: np.ndarray, current: np.ndarray, levels: int = 4, window: int = 15,
               iterations: int = 3) -> np.ndarray:
    """Farneback's dense forward flow (h, w, 2) from gray frame ``previous`` to ``current``:
    the content at (x, y) in ``previous`` is at (x, y) + flow[y, x] in ``current``."""
    return cv2.calcOpticalFlowFarneback(previous, current, None, 0.5, levels, window, iterations,
                                        5, 1.1, 0)


class FlowCue:
    """Tracking cue: OKS of the new poses with the tracks' poses warped by Farneback flow.

    ``scale``: the frames are resized by this factor before the flow is computed (speed);
    ``levels``, ``window``, ``iterations``: Farneback's pyramid levels (more levels follow
    larger motions), averaging window and iterations per level. OpenCV stops the pyramid
    before a level gets smaller than about 32 px, so on small frames, or with a small
    ``scale``, the pyramid is shorter and only smaller motions are followed.
    """

    def __init__(self, sigmas: np.ndarray | None, scale: float = 0.5, levels: int = 4,
                 window: int = 15, iterations: int = 3) -> None:
        if sigmas is None:
            raise ValueError("flow tracking compares poses by OKS: it needs the keypoint sigmas "
                             "of the poses' schema")
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        if levels < 1 or window < 3 or iterations < 1:
            raise ValueError(f"Farneback needs levels >= 1, window >= 3 and iterations >= 1, got "
                             f"{levels}, {window}, {iterations}")
        self.sigmas = np.asarray(sigmas, dtype=np.float64)
        self.scale, self.levels, self.window, self.iterations = scale, levels, window, iterations
        self._previous: np.ndarray | None = None  # the last frame, gray and resized
        self._size: tuple[int, int] | None = None  # the last frame's full (height, width)
        self._poses: dict[int, Pose] = {}  # track id -> pose, warped into the current frame

    def begin(self, image: np.ndarray | None) -> None:
        """Warp every remembered pose from the previous frame into this one."""
        if image is None:
            raise ValueError("flow tracking needs each frame's image "
                             "(GreedyTracker.update(poses, image))")
        if self._size is not None and image.shape[:2] != self._size:
            raise ValueError(f"frame size changed from {self._size} to {image.shape[:2]} within a video")
        current = gray_frame(image, self.scale)
        if self._previous is not None and self._poses:
            flow = dense_flow(self._previous, current, self.levels, self.window, self.iterations)
            self._poses = {tid: warp_pose(pose, flow, self.scale) for tid, pose in self._poses.items()}
        self._previous, self._size = current, image.shape[:2]

    def similarity(self, poses: list[Pose], tracks: dict[int, Pose]) -> np.ndarray:
        """OKS of each new pose against each track's warped pose, at that pose's scale."""
        # Tracks the tracker no longer offers are gone for good: stop carrying them.
        self._poses = {tid: self._poses[tid] for tid in tracks}
        return track_oks(poses, [self._poses[tid] for tid in tracks], self.sigmas)

    def end(self, tracked: list[Pose]) -> None:
        """Remember the tracked poses; tracks not seen keep their warped poses."""
        self._poses.update({pose.track_id: pose for pose in tracked})
