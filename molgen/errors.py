"""Errors a user can cause, with messages that name the file and the record.

The command line catches :class:`MolgenError` and prints its message without a
traceback; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from os import PathLike


class MolgenError(Exception):
    """Base class of the errors that come from user input rather than from bugs."""


class InputError(MolgenError):
    """A file, or one record in it, cannot be read.

    Parameters
    ----------
    path : file the problem is in (or ``None`` when the input is not a file).
    message : what is wrong and, when possible, what to do about it.
    record : which record inside the file (index, title or line), if known.
    """

    def __init__(self, path: str | PathLike | None, message: str, record: str | int | None = None):
        self.path = None if path is None else str(path)
        self.record = record
        self.reason = message
        where = []
        if self.path is not None:
            where.append(self.path)
        if record is not None:
            where.append(f"record {record}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ConfigError(MolgenError):
    """A configuration key or value is wrong; the message names the key."""


class MissingDependencyError(MolgenError):
    """An optional dependency is not installed; the message says what to install."""

    def __init__(self, package: str, purpose: str, install: str | None = None):
        install = install or f"pip install {package}"
        super().__init__(f"{purpose} needs the optional package '{package}': install it with `{install}`")
