"""The one error type users see for bad input: it names the file, record and field.

The CLI prints ``str(error)`` alone (no traceback) and exits with status 2.
"""
from __future__ import annotations


class VidposeError(Exception):
    """A problem with what the user gave us (a file, a config, an argument)."""


class InputError(VidposeError):
    """Bad data in a file: says where (file, record, field) and what was expected."""

    def __init__(self, message: str, *, file: str | None = None, record: str | int | None = None,
                 field: str | None = None) -> None:
        self.file, self.record, self.field, self.reason = file, record, field, message
        where = []
        if file is not None:
            where.append(str(file))
        if record is not None:
            where.append(f"record {record}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{': '.join(where)}: {message}" if where else message)


class ConfigError(VidposeError):
    """A bad experiment name, config key or value."""
