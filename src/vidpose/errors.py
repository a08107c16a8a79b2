"""The one error type users see for bad input: it names the file, record and field.

The CLI prints ``str(error)`` alone (no traceback) and exits with status 2. ``MOVED_KEYS``
sits here, at the bottom layer, because config composition and methods' ``model_config``
(a checkpoint's hparams) both name a moved key's new place.
"""
from __future__ import annotations

# Config keys that moved (old dotted key -> new one, or a phrase naming several).
MOVED_KEYS = {"model.refine": "data.subpixel",  # the heatmap codec's decoding (vidpose.codec)
              "model.backbone": "'model.resnet' (the ResNet depth) or 'model.network' "
                                "(pose_memory's simple_baseline | cpn)",
              "model.refiner": "model.lstm2", "model.refiner_layers": "model.lstm2_layers",
              "model.refiner_input": "model.lstm2_input", "data.refinement": "data.map_augmentation"}


def _unwrapped(message: object, cls: type) -> object:
    """The worker's own message, where torch's DataLoader re-raised a worker's error.

    torch re-raises an exception from a DataLoader worker as ``cls("Caught <cls> in
    DataLoader worker process N.\nOriginal Traceback ...")``; the traceback's last line is
    ``<module>.<cls>: <message>``, the one-line message the user should see.
    """
    if not (isinstance(message, str) and message.startswith(f"Caught {cls.__name__} ")
            and "\nOriginal Traceback" in message):
        return message
    marker = f"\n{cls.__module__}.{cls.__qualname__}: "
    at = message.rfind(marker)
    return message[at + len(marker):].rstrip("\n") if at >= 0 else message


class VidposeError(Exception):
    """A problem with what the user gave us (a file, a config, an argument)."""

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(_unwrapped(message, type(self)), *args)


class InputError(VidposeError):
    """Bad data in a file: says where (file, record, field) and what was expected."""

    def __init__(self, message: str, *, file: str | None = None, record: str | int | None = None,
                 field: str | None = None) -> None:
        message = str(_unwrapped(message, type(self)))
        self.file, self.record, self.field, self.reason = file, record, field, message
        where = [form.format(value) for value, form in
                 ((file, "{}"), (record, "record {}"), (field, "field '{}'")) if value is not None]
        Exception.__init__(self, f"{': '.join(where)}: {message}" if where else message)


class ConfigError(VidposeError):
    """A bad experiment name, config key or value."""
