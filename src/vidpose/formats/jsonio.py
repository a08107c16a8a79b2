"""JSON in and out: errors that point at the line, writes that never leave half a file."""
from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from vidpose.errors import InputError

try:  # a C parser several times faster than the standard library's on large files
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; the standard library suffices
    orjson = None


def load_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; a missing or malformed one is an ``InputError`` (line and column).

    orjson parses what it can; anything it refuses (NaN and Infinity literals, which the
    standard library reads, bad UTF-8, very deep nesting) goes through the standard
    library, so what is accepted and every message are the standard library's.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", file=str(path)) from None
    except OSError as err:
        raise InputError(f"not a readable UTF-8 JSON file ({err})", file=str(path)) from None
    if orjson is not None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise InputError(f"not a readable UTF-8 JSON file ({err})", file=str(path)) from None
    except json.JSONDecodeError as err:
        raise InputError(
            f"malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}", file=str(path)
        ) from None
    except RecursionError:
        raise InputError("JSON nested too deeply to read (arrays or objects more than about "
                         f"{sys.getrecursionlimit()} levels inside each other)",
                         file=str(path)) from None


def _to_builtin(value: Any) -> Any:
    """``json.dump`` fallback: numpy scalars and arrays become Python numbers and lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dump_json(path: str | os.PathLike, obj: Any, *, allow_nan: bool = False) -> None:
    """Write ``obj`` as JSON, creating parent folders; atomic (temporary file + rename).

    NaN and infinity are refused (``ValueError``): they are not JSON and other tools
    reading the file would fail far from the cause. ``allow_nan=True`` writes them as
    Python's ``json`` does, for files that must look like another tool's (poseval's).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder (so the rename is atomic); opened like any new file so the umask applies.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as handle:
            json.dump(obj, handle, default=_to_builtin, allow_nan=allow_nan)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
