"""Video in and overlay video out for online tracking (``vidpose track``).

A video is a file that OpenCV's FFmpeg backend decodes (.mp4, .avi, .mov, ...) or a folder
of frame images (.jpg/.jpeg/.png), PoseTrack18's own layout. Either way it is read one
frame at a time, so a long video is never held in memory, and every frame comes as an
unlabelled ``Frame`` ready to receive the tracker's poses and the PoseTrack18 writers.

Image ids follow PoseTrack18: ``10_000_000_000 + video_number * 10_000 + frame_index``,
the video number being the leading digits of the video's name (``000001_mpiinew_test`` is
1, so the ids equal the official ground truth's and a results file evaluates against it)
or 0 without them, unless given. Within a video the ids are always unique; across videos
they are unique while the numbers differ and each video has fewer than 10,000 frames
(every PoseTrack18 video does).
"""
from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from vidpose.errors import InputError
from vidpose.keypoints import Schema
from vidpose.pose import Frame, Pose
from vidpose.viz import draw_pose, track_color

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# A folder of frames carries no rate; PoseTrack18 does not publish its videos' rates either,
# so overlays of frame folders play at this common video rate.
FOLDER_FPS = 25.0
FRAME_NAME = "%06d.jpg"


def image_id(video_number: int, frame_index: int) -> int:
    """The PoseTrack18-style image id of a frame (see the module docstring)."""
    return 10_000_000_000 + video_number * 10_000 + frame_index


def _natural_key(name: str) -> tuple:
    """Name order with digit runs compared as numbers, so ``f2.png`` precedes ``f10.png``."""
    return tuple(int(part) if i % 2 else part.lower() for i, part in enumerate(re.split(r"(\d+)", name)))


class VideoFrames:
    """A video file (read with ``cv2.VideoCapture``) or a folder of frame images (in name
    order, digit runs as numbers), as RGB uint8 frames decoded one at a time.

    ``name`` is the file stem or the folder name; ``fps`` the file's rate, else FOLDER_FPS.
    Iterating yields ``(Frame, image)`` pairs: the frame unlabelled and without poses,
    ``file_name`` the image's name relative to the folder or, for a file,
    ``"<name>/%06d.jpg" % frame_index`` (a name for result files; no such image is written).
    Use ``open_video`` to make one: it checks the input first.
    """

    def __init__(self, path: Path, name: str, fps: float, video_number: int,
                 images: list[Path] | None) -> None:
        self.path, self.name, self.fps, self.video_number = path, name, fps, video_number
        self._images = images  # None for a video file
        self._length: int | None = len(images) if images is not None else None

    def __len__(self) -> int:
        """The number of frames; for a file counted by one decoding pass, on first call."""
        if self._length is None:
            capture = _capture(self.path)
            try:
                self._length = sum(1 for _ in iter(capture.grab, False))
            finally:
                capture.release()
        return self._length

    def __iter__(self) -> Iterator[tuple[Frame, np.ndarray]]:
        images = self._read_images() if self._images is not None else self._read_file()
        for index, (file_name, image) in enumerate(images):
            height, width = image.shape[:2]
            frame = Frame(image_id=image_id(self.video_number, index), file_name=file_name,
                          width=width, height=height, video=self.name, frame_index=index,
                          is_labeled=False)
            yield frame, image

    def _read_images(self) -> Iterator[tuple[str, np.ndarray]]:
        for index, path in enumerate(self._images):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise InputError("frame image cannot be decoded", file=str(path), record=index,
                                 field="image")
            yield path.name, cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def _read_file(self) -> Iterator[tuple[str, np.ndarray]]:
        capture = _capture(self.path)
        try:
            index = 0
            while True:
                ok, image = capture.read()
                if not ok:
                    return
                yield f"{self.name}/{FRAME_NAME % index}", cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
                index += 1
        finally:
            capture.release()


def _capture(path: Path) -> cv2.VideoCapture:
    # FFmpeg explicitly: the default backend list would read a '%d' in a file name as an
    # image-sequence pattern.
    return cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)


def _frame_images(folder: Path) -> list[Path]:
    """The folder's frame images in name order; their sizes must agree (checked from headers)."""
    images = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                    key=lambda p: _natural_key(p.name))
    if not images:
        raise InputError(f"empty video: no frame images ({'/'.join(IMAGE_SUFFIXES)}) in this folder",
                         file=str(folder))
    first_size = None
    for index, path in enumerate(images):
        try:
            with Image.open(path) as image:
                size = image.size
        except (UnidentifiedImageError, OSError):
            raise InputError("frame image cannot be decoded", file=str(path), record=index,
                             field="image") from None
        first_size = first_size or size
        if size != first_size:
            # Trackers and the overlay writer assume one frame size per video.
            field = "width" if size[0] != first_size[0] else "height"
            raise InputError(f"frame size {size[0]}x{size[1]} differs from the first frame's "
                             f"{first_size[0]}x{first_size[1]} ({images[0].name})", file=str(path),
                             record=index, field=field)
    return images


def open_video(path: str | os.PathLike, *, video_number: int | None = None) -> VideoFrames:
    """Open a video file or a folder of frame images, checking that it holds frames.

    ``video_number`` sets the image ids' video number (default: the name's leading digits,
    else 0); give distinct numbers when tracking several videos without numbered names
    into one set of results.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("no such video file or frame folder", file=str(path))
    name = Path(os.path.abspath(path)).name if path.is_dir() else path.stem
    if video_number is None:
        digits = re.match(r"\d+", name)
        video_number = int(digits.group()) if digits else 0
    if path.is_dir():
        return VideoFrames(path, name, FOLDER_FPS, video_number, _frame_images(path))
    capture = _capture(path)
    try:
        if not capture.isOpened() or not capture.grab():
            raise InputError("empty video: no decodable frame (not a video file, or corrupt)",
                             file=str(path), record=0, field="frame")
        fps = capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()
    return VideoFrames(path, name, fps if math.isfinite(fps) and fps > 0 else FOLDER_FPS,
                       video_number, None)


class _H264Writer:
    """H.264 (libx264, yuv420p) through the ffmpeg binary that the ``imageio-ffmpeg`` wheel
    ships, so browsers and W&B play the overlay (OpenCV's wheels encode only ``mp4v``)."""

    codec = "h264"

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        import imageio_ffmpeg  # a dependency; imported here so that a broken install falls back

        # macro_block_size=1: sizes are already even (yuv420p's only need), never rescaled;
        # crf 18 is visually lossless, so joints and ids stay sharp.
        self._frames = imageio_ffmpeg.write_frames(
            str(path), size, fps=fps, codec="libx264", pix_fmt_in="bgr24", pix_fmt_out="yuv420p",
            macro_block_size=1, quality=None, ffmpeg_log_level="error",
            output_params=["-crf", "18", "-movflags", "+faststart"])
        self._frames.send(None)  # starts ffmpeg: a missing binary or encoder raises here

    def write(self, bgr: np.ndarray) -> None:
        self._frames.send(np.ascontiguousarray(bgr))

    def release(self) -> None:
        self._frames.close()


class _Mp4vWriter:
    """OpenCV's own ``mp4v`` writer, the fallback when no H.264 encoder starts."""

    codec = "mpeg4"

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self._writer.isOpened():
            raise OSError(f"cannot write an mp4v video at {path}")

    def write(self, bgr: np.ndarray) -> None:
        self._writer.write(bgr)

    def release(self) -> None:
        self._writer.release()


def _video_writer(path: Path, fps: float, size: tuple[int, int]) -> _H264Writer | _Mp4vWriter:
    """An H.264 writer, else (one-line warning) OpenCV's mp4v writer."""
    try:
        return _H264Writer(path, fps, size)
    except (ImportError, OSError, RuntimeError, StopIteration) as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        warnings.warn(f"no H.264 encoder ({reason}); writing {path.name} as mp4v, which browsers "
                      "and W&B do not play (pip install imageio-ffmpeg)", stacklevel=3)
        return _Mp4vWriter(path, fps, size)


def write_overlay(path: str | os.PathLike, frames: Iterable[tuple[np.ndarray, list[Pose]]],
                  schema: Schema, fps: float) -> int:
    """Write RGB frames with their poses drawn as an H.264 mp4 (else mp4v with a warning:
    ``_video_writer``); returns the frame count.

    Each pose is drawn by ``viz.draw_pose`` in its track's colour with ``id <track_id>`` as
    its label. Frames are written as they come, so the input can be a generator over a long
    video. Odd widths or heights get one replicated edge row/column (yuv420p needs even sizes).
    """
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"expected a positive frame rate; got {fps}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer: _H264Writer | _Mp4vWriter | None = None
    size: tuple[int, int] | None = None
    count = 0
    try:
        for image, poses in frames:
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"frame {count}: expected an RGB uint8 (H, W, 3) image; got "
                                 f"{image.dtype} {image.shape}")
            if writer is None:
                size = image.shape[1], image.shape[0]
                writer = _video_writer(path, fps, (size[0] + size[0] % 2, size[1] + size[1] % 2))
            elif (image.shape[1], image.shape[0]) != size:
                # The writer would silently drop a frame of another size.
                raise ValueError(f"frame {count} is {image.shape[1]}x{image.shape[0]}; the video "
                                 f"is {size[0]}x{size[1]}")
            canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)  # viz colours are BGR
            for pose in poses:
                label = f"id {pose.track_id}" if pose.track_id >= 0 else None
                canvas = draw_pose(canvas, pose, schema, color=track_color(pose.track_id), label=label)
            canvas = cv2.copyMakeBorder(canvas, 0, size[1] % 2, 0, size[0] % 2, cv2.BORDER_REPLICATE)
            writer.write(canvas)
            count += 1
    finally:
        if writer is not None:
            writer.release()
    if count == 0:
        raise ValueError("no frames to write")
    return count
