"""vidpose: multi-person pose estimation and tracking experiments; ``vidpose.load`` is the
Python API (``vidpose.api``)."""


def load(checkpoint, device: str = "cpu"):
    """A trained checkpoint as a predictor: ``.predict(image, boxes=None)``, ``.track(frames)``
    (see ``vidpose.api``; imported here lazily, so ``import vidpose`` stays light)."""
    from vidpose.api import load as _load

    return _load(checkpoint, device)
