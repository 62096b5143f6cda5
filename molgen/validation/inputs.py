"""Reading validation inputs: every file goes through :func:`molgen.data.readers.read_structures` in skip mode.

A record that cannot be read (unknown element, NaN coordinates, unparsable block, ...) is not dropped: it
becomes a :class:`~molgen.validation.molecule_metrics.Failure` with the reader's reason, counts in ``n`` and
fails every check. Whole files that cannot be opened are failures too (one per file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from molgen.errors import InputError
from molgen.validation.molecule_metrics import Failure, Molecule, molecule_from_record


def iter_records(paths: Iterable[str | Path], failures: list[Failure]) -> Iterator[tuple[str, int, object]]:
    """Yield ``(file label, index in file, record)``; unreadable records and files are appended to ``failures``."""
    from molgen.data.readers import READERS, ReadPolicy, read_structures
    from molgen.data.readers.base import logical_suffix

    expanded: list[str | Path] = []
    for path in paths:  # folders file by file (the order read_structures uses), so rows name their file
        folder = Path(path)
        files = sorted(p for p in folder.rglob("*") if p.is_file() and logical_suffix(p) in READERS) if folder.is_dir() else []
        expanded.extend(files or [path])
    for path in expanded:
        policy = ReadPolicy("skip")
        label = str(path)
        try:
            for index, record in enumerate(read_structures(path, policy)):
                yield label, index, record
        except InputError as exc:
            # a whole file that cannot be read (not found, unsupported, corrupt gzip, bad header)
            if not Path(path).exists():
                raise
            failures.append(Failure(name=label, reason=exc.reason))
        for error in policy.skipped.entries:
            where = error.path or label
            if error.record is not None:
                where = f"{where} [{error.record}]"
            failures.append(Failure(name=where, reason=error.reason))


def _name(record, label: str, index: int) -> str:
    from molgen import keys as K

    name = record[K.NAME] if K.NAME in record else None
    return f"{Path(label).name}:{index}" + (f" {name}" if name else "")


def read_molecules(paths: Iterable[str | Path]) -> tuple[list[Molecule], list[Failure]]:
    """Molecules and failures of the given files / folders."""
    failures: list[Failure] = []
    molecules = []
    for label, index, record in iter_records(paths, failures):
        molecule = molecule_from_record(record)
        molecule.name = _name(record, label, index)
        molecules.append(molecule)
    return molecules, failures


def read_crystals(paths: Iterable[str | Path]):
    """Crystals and failures; a record without a lattice is a failure."""
    from molgen.validation.crystal_metrics import crystal_from_record

    failures: list[Failure] = []
    crystals = []
    for label, index, record in iter_records(paths, failures):
        name = _name(record, label, index)
        try:
            crystal = crystal_from_record(record)
        except ValueError as exc:
            failures.append(Failure(name=name, reason=str(exc)))
            continue
        crystal.name = name
        crystals.append(crystal)
    return crystals, failures


def read_records(paths: Iterable[str | Path]) -> tuple[list[tuple[str, object]], list[Failure]]:
    """(name, record) pairs and failures."""
    failures: list[Failure] = []
    records = [(_name(record, label, index), record) for label, index, record in iter_records(paths, failures)]
    return records, failures


def guess_kind(paths: Iterable[str | Path]) -> str:
    """``crystal`` when the first readable record is periodic, else ``molecule``."""
    from molgen import keys as K

    failures: list[Failure] = []
    for _, _, record in iter_records(paths, failures):
        return "crystal" if K.CELL in record else "molecule"
    return "molecule"
