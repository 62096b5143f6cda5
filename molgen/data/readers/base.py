"""What every reader shares: opening (gzip) files, the error policy and the skip log.

A reader is a generator ``reader(path, policy) -> Iterator[Data]``. On a bad record it calls
``policy.fail(InputError(...))``, which raises in ``"raise"`` mode and logs and returns in
``"skip"`` mode, after which the reader goes on with the next record. Nothing is dropped
silently: every skipped record is in :class:`SkipLog` with its file, record and reason.
"""

from __future__ import annotations

import gzip
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator, Literal

from molgen.errors import InputError

ErrorMode = Literal["raise", "skip"]


@dataclass
class SkipLog:
    """Records skipped by readers, with file, record and reason."""

    entries: list[InputError] = field(default_factory=list)

    def add(self, error: InputError) -> None:
        self.entries.append(error)

    def __len__(self) -> int:
        return len(self.entries)

    def reasons(self) -> Counter:
        """Count of skipped records per reason."""
        return Counter(error.reason for error in self.entries)

    def summary(self, max_examples: int = 5) -> str:
        """A few lines: how many were skipped, why, and the first examples."""
        if not self.entries:
            return "skipped 0 records"
        lines = [f"skipped {len(self.entries)} record(s):"]
        for reason, count in self.reasons().most_common():
            lines.append(f"  {count} x {reason}")
        lines.append("first examples:")
        lines.extend(f"  {error}" for error in self.entries[:max_examples])
        return "\n".join(lines)


@dataclass
class ReadPolicy:
    """How readers react to a bad record: raise at once, or log it and continue."""

    mode: ErrorMode = "raise"
    skipped: SkipLog = field(default_factory=SkipLog)

    def fail(self, error: InputError) -> None:
        """Raise ``error`` in raise mode; log it in skip mode."""
        if self.mode == "raise":
            raise error
        self.skipped.add(error)


def logical_suffix(path: str | Path) -> str:
    """File extension without a trailing ``.gz``, lower case: ``mols.sdf.gz`` -> ``.sdf``."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def open_text(path: str | Path) -> IO[str]:
    """Open a text file for reading, transparently decompressing ``.gz``.

    Raises :class:`InputError` naming the file when it is missing or not valid gzip/text.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        if path.suffix.lower() == ".gz":
            raw = gzip.open(path, "rb")
            raw.peek(1)  # fail now, with the file named, if this is not gzip
            return io.TextIOWrapper(raw, encoding="utf-8", errors="replace")
        return open(path, encoding="utf-8", errors="replace")
    except (OSError, EOFError) as exc:
        raise InputError(path, f"cannot be opened: {exc}") from None


def read_text(path: str | Path) -> str:
    """Whole text of a (possibly gzip-compressed) file."""
    with open_text(path) as handle:
        try:
            return handle.read()
        except (OSError, EOFError) as exc:
            raise InputError(path, f"cannot be read: {exc}") from None


def open_binary(path: str | Path) -> IO[bytes]:
    """Open a binary file, transparently decompressing ``.gz``."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")

