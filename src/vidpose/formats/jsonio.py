"""JSON in and out: errors that point at the line, writes that never leave half a file."""
from __future__ import annotations

import functools
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from vidpose.errors import InputError

try:  # a C parser several times faster than the standard library's on large files
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; the standard library suffices
    orjson = None

T = TypeVar("T")


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
        raise InputError(f"malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}",
                         file=str(path)) from None
    except RecursionError:
        raise InputError("JSON nested too deeply to read (arrays or objects more than about "
                         f"{sys.getrecursionlimit()} levels inside each other)",
                         file=str(path)) from None


def reports_deep_nesting(reader: Callable[..., T]) -> Callable[..., T]:
    """A file reader whose RecursionError (a value nested nearly as deep as the parser
    allows, met while checking or naming it) becomes an ``InputError`` naming the file
    (its first argument)."""
    @functools.wraps(reader)
    def read(path, *args, **kwargs):
        try:
            return reader(path, *args, **kwargs)
        except RecursionError:
            raise InputError("values nested too deeply (arrays or objects hundreds of levels "
                             "inside each other)", file=str(path)) from None
    return read


def check_output(path: str | os.PathLike, *, folder: bool = False,
                 option: str = "--out") -> Path:
    """Refuse, before any work is done, an output that cannot be written: a path under a
    file, a file where a folder is asked for (or the reverse), or a folder without write
    permission. Returns the path; missing folders are created later by the writer."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise InputError("exists and is not a folder; give a folder for the outputs",
                         file=str(path), field=option)
    if not folder and path.is_dir():
        raise InputError("is a folder; give a file name", file=str(path), field=option)
    existing = path if folder else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{existing} is a file, so nothing can be written under it",
                         file=str(path), field=option)
    target = path if path.exists() else existing
    if not os.access(target, os.W_OK | (os.X_OK if target.is_dir() else 0)):
        raise InputError(f"{target} is not writable", file=str(path), field=option)
    return path


def _to_builtin(value: Any) -> Any:
    """``json.dump`` fallback: numpy scalars and arrays become Python numbers and lists."""
    if isinstance(value, (np.ndarray, np.bool_, np.integer, np.floating)):
        return value.tolist()
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
