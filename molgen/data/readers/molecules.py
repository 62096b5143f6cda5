"""Molecule files: SDF/MOL (V2000 and V3000) and plain or extended XYZ.

Both readers stream the file record by record (``.gz`` is decompressed on the fly), check
each record's layout themselves before handing it to RDKit or ASE, and report a bad record
through the :class:`~molgen.data.readers.base.ReadPolicy` with a message that names the
file, the record (numbered from 1, with its title when it has one) and what is wrong:
a truncated record, an unknown element symbol, a non-finite coordinate, a wrong atom count.

Raw QM9 ``dsgdb9nsd_*.xyz`` files (second line ``gdb <index> ...``) are recognised by
:func:`read_xyz` and read by :func:`molgen.data.readers.qm9.read_qm9_raw_xyz`.
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import IO, Iterator

from torch_geometric.data import Data

from molgen.data.readers.base import ReadPolicy, open_text
from molgen.data.record import RecordError, make_record
from molgen.elements import UnknownElementError, atomic_number
from molgen.errors import InputError

# symbols RDKit reads as hydrogen isotopes; everything else must be an element symbol
_HYDROGEN_ISOTOPES = {"D", "T"}
_SDF_END = "$$$$"


# ----------------------------------------------------------------------------------------
# SDF / MOL
# ----------------------------------------------------------------------------------------
def read_sdf(path: Path, policy: ReadPolicy) -> Iterator[Data]:
    """Records of a (multi-record, optionally gzip-compressed) SDF or MOL file.

    Each record keeps positions ``[n_atoms, 3]`` (Å), atomic numbers, formal charges (from
    ``M  CHG`` lines or the atom block's charge column), bonds ``[2, n_bonds]`` with their
    SDF codes (1, 2, 3, 4 = aromatic, as real files write them), the title line as ``name``
    and the SD tags in ``info['tags']``. Records are parsed by RDKit without sanitization,
    so chemistry that RDKit would reject (odd valences, aromatic bonds outside rings) is
    read as written; judging it is the validators' job.

    Raises (in ``"raise"`` mode) or logs (in ``"skip"`` mode) an :class:`InputError` per bad
    record: a record cut short (also the last one of a truncated file), a counts line that
    disagrees with the atom and bond lines, an unknown element symbol, unreadable or
    non-finite coordinates, or a block RDKit cannot parse.
    """
    from rdkit import Chem, rdBase
    from molgen.data.convert.rdkit_mol import record_from_rdkit

    path = Path(path)
    supplier = Chem.SDMolSupplier()
    index = 0
    with open_text(path) as handle:
        for index, lines, terminated in _sdf_blocks(path, handle):
            title = lines[0].strip() if lines else ""
            label = _record_label(index, title)
            problem = _check_molblock(lines, terminated)
            if problem is not None:
                policy.fail(InputError(path, problem, record=label))
                continue
            text = "".join(lines) + ("" if terminated else "$$$$\n")
            with rdBase.BlockLogs():  # RDKit prints long C++ traces for bad blocks; we report instead
                try:
                    supplier.SetData(text, sanitize=False, removeHs=False, strictParsing=True)
                    mol = supplier[0] if len(supplier) else None
                except Exception as exc:  # RDKit raises assorted Boost-wrapped errors
                    policy.fail(InputError(path, f"RDKit cannot parse this record: {exc}", record=label))
                    continue
            if mol is None:
                policy.fail(InputError(path, "RDKit cannot parse this record (invalid mol block)", record=label))
                continue
            try:
                record = record_from_rdkit(mol, name=title)
            except (RecordError, ValueError) as exc:
                policy.fail(InputError(path, str(exc), record=label))
                continue
            yield record
    if index == 0:
        raise InputError(path, "file holds no molecule records (empty, or not an SDF/MOL file)")


def _sdf_blocks(path: Path, handle: IO[str]) -> Iterator[tuple[int, list[str], bool]]:
    """``(record number from 1, lines, ended with $$$$)`` for each record of an SDF stream."""
    lines: list[str] = []
    index = 0
    try:
        for line in handle:
            if line.rstrip() == _SDF_END:
                index += 1
                yield index, lines, True
                lines = []
            else:
                lines.append(line if line.endswith("\n") else line + "\n")
    except (OSError, EOFError) as exc:  # a cut gzip stream
        raise InputError(path, f"file cannot be read to its end (record {index + 1}): {exc}") from None
    if any(line.strip() for line in lines):
        yield index + 1, lines, False


def _record_label(index: int, title: str) -> str | int:
    return f"{index} ('{title}')" if title else index


def _check_molblock(lines: list[str], terminated: bool) -> str | None:
    """Why a mol block (with its SD tags) is unreadable, or None when its layout is sound."""
    cut = "" if terminated else " (the file ends inside this record)"
    if len(lines) < 4:
        return f"truncated record: it ends before the counts line{cut}"
    counts = lines[3]
    if "V3000" in counts:
        return _check_v3000(lines, cut)
    try:
        n_atoms, n_bonds = int(counts[0:3]), int(counts[3:6])
    except ValueError:
        return f"counts line is not valid: '{counts.rstrip()}' (expected atom and bond counts in columns 1-6)"
    body = lines[4:]
    end = next((i for i, line in enumerate(body) if line.startswith("M  END")), None)
    ctab = body if end is None else body[:end]
    if len(ctab) < n_atoms:
        return f"truncated record: counts line announces {n_atoms} atoms but only {len(ctab)} atom lines follow{cut}"
    for i, line in enumerate(ctab[:n_atoms], start=1):
        if len(line.rstrip("\n")) < 32:
            return f"atom line {i} is incomplete: '{line.rstrip()}' (expected x, y, z and an element symbol)"
        problem = _check_atom(line[31:34].strip(), (line[0:10], line[10:20], line[20:30]), i)
        if problem is not None:
            return problem
    if len(ctab) < n_atoms + n_bonds:
        n_found = len(ctab) - n_atoms
        return f"truncated record: counts line announces {n_bonds} bonds but only {n_found} bond lines follow{cut}"
    if end is None:
        return f"truncated record: no 'M  END' line{cut}"
    return None


def _check_v3000(lines: list[str], cut: str) -> str | None:
    text = [line.rstrip() for line in lines]
    counts = next((line for line in text if line.startswith("M  V30 COUNTS")), None)
    if counts is None:
        return f"truncated record: V3000 block without 'M  V30 COUNTS' line{cut}"
    try:
        n_atoms = int(counts.split()[3])
    except (IndexError, ValueError):
        return f"V3000 counts line is not valid: '{counts}'"
    try:
        start = text.index("M  V30 BEGIN ATOM")
    except ValueError:
        return f"truncated record: V3000 block without an atom table{cut}"
    atoms = []
    for line in text[start + 1 :]:
        if line.startswith("M  V30 END ATOM"):
            break
        atoms.append(line)
    else:
        return f"truncated record: V3000 atom table has no 'M  V30 END ATOM' line{cut}"
    atoms = [line for line in atoms if not line.endswith("-")]  # continuation lines
    if len(atoms) != n_atoms:
        return f"counts line announces {n_atoms} atoms but the atom table has {len(atoms)}"
    for i, line in enumerate(atoms, start=1):
        fields = line.split()
        if len(fields) < 7:
            return f"V3000 atom line {i} is incomplete: '{line}'"
        problem = _check_atom(fields[3], tuple(fields[4:7]), i)
        if problem is not None:
            return problem
    if not any(line.startswith("M  END") for line in text):
        return f"truncated record: no 'M  END' line{cut}"
    return None


def _check_atom(symbol: str, coordinates: tuple[str, ...], index: int) -> str | None:
    if symbol not in _HYDROGEN_ISOTOPES:
        try:
            atomic_number(symbol)
        except UnknownElementError:
            return f"unknown element symbol '{symbol}' on atom {index}"
        if symbol.isdigit():
            return f"unknown element symbol '{symbol}' on atom {index}"
    try:
        values = [float(c) for c in coordinates]
    except ValueError:
        return f"atom {index} has unreadable coordinates {[c.strip() for c in coordinates]}"
    if not all(math.isfinite(v) for v in values):
        return f"atom {index} has a non-finite coordinate {values}"
    return None


# ----------------------------------------------------------------------------------------
# XYZ / extended XYZ
# ----------------------------------------------------------------------------------------
_EXTXYZ_KEYS = re.compile(r"(?:^|\s)(?:Lattice|Properties|pbc)\s*=", re.IGNORECASE)


def read_xyz(path: Path, policy: ReadPolicy) -> Iterator[Data]:
    """Records of a plain or extended XYZ file with any number of frames.

    A frame is an atom-count line, a comment line and one line per atom
    (``symbol-or-number x y z [more columns]``, Å). A comment line with ``Lattice=``,
    ``Properties=`` or ``pbc=`` makes the frame extended XYZ, read by ASE: a lattice makes
    the record periodic (``cell``, ``pbc``, ``frac_pos``) and the comment's key=value pairs
    (and calculator results such as ``energy``) are kept in ``info['ase']``. A plain frame's
    comment becomes the record's ``name`` (``<file stem>_<frame>`` when empty).

    A raw QM9 file (second line ``gdb <index> ...``) is handed to
    :func:`molgen.data.readers.qm9.read_qm9_raw_xyz`.

    Bad frames (a count line that is not a number, fewer atom lines than announced, an
    unknown element, a non-finite coordinate) are reported with the frame number from 1
    and its first line number; in ``"skip"`` mode reading goes on at the next frame.
    """
    path = Path(path)
    with open_text(path) as handle:
        head = [handle.readline(), handle.readline()]
    if head[1].lstrip().startswith("gdb") and len(head[1].split()) >= 17:
        from molgen.data.readers.qm9 import read_qm9_raw_xyz

        yield from read_qm9_raw_xyz(path, policy)
        return
    stem = _stem(path)
    frame = 0
    with open_text(path) as handle:
        for frame, lineno, count_line, comment, atom_lines, problem in _xyz_frames(path, handle):
            label = f"{frame} (line {lineno})"
            if problem is not None:
                policy.fail(InputError(path, problem, record=label))
                continue
            try:
                if _EXTXYZ_KEYS.search(comment):
                    record = _extxyz_record(count_line, comment, atom_lines, default_name=f"{stem}_{frame}")
                else:
                    record = _plain_xyz_record(comment, atom_lines, name=comment.strip() or f"{stem}_{frame}")
            except _FrameError as exc:
                policy.fail(InputError(path, str(exc), record=label))
                continue
            except RecordError as exc:
                policy.fail(InputError(path, str(exc), record=label))
                continue
            yield record
    if frame == 0:
        raise InputError(path, "file holds no XYZ frames (it is empty)")


class _FrameError(ValueError):
    """One XYZ frame is malformed; the message says how."""


class _Lines:
    """Line iterator with line numbers and a one-line push-back."""

    def __init__(self, path: Path, handle: IO[str]):
        self.path, self.handle, self.lineno, self.pending = path, handle, 0, None

    def next(self) -> str | None:
        if self.pending is not None:
            line, self.pending = self.pending, None
        else:
            try:
                line = self.handle.readline()
            except (OSError, EOFError) as exc:
                raise InputError(self.path, f"file cannot be read past line {self.lineno}: {exc}") from None
            if line == "":
                return None
        self.lineno += 1
        return line

    def push_back(self, line: str) -> None:
        self.pending = line
        self.lineno -= 1


def _xyz_frames(path: Path, handle: IO[str]):
    """``(frame, first line number, count line, comment, atom lines, problem or None)`` per frame."""
    lines = _Lines(path, handle)
    frame = 0
    while True:
        line = lines.next()
        if line is None:
            return
        if not line.strip():
            continue  # blank lines between frames or at the end
        frame += 1
        start = lines.lineno
        fields = line.split()
        if len(fields) != 1 or not fields[0].isdigit():
            yield frame, start, line, "", [], f"expected the atom count on this line, found '{line.strip()[:60]}'"
            _resynchronise(lines)
            continue
        n_atoms = int(fields[0])
        if n_atoms == 0:
            yield frame, start, line, "", [], "frame has an atom count of 0"
            continue
        comment = lines.next()
        if comment is None:
            yield frame, start, line, "", [], f"truncated frame: expected a comment line and {n_atoms} atom lines, found none"
            return
        atom_lines = []
        while len(atom_lines) < n_atoms:
            atom = lines.next()
            if atom is None:
                break
            atom_lines.append(atom)
        if len(atom_lines) < n_atoms:
            yield frame, start, line, comment, atom_lines, (
                f"truncated frame: atom count line says {n_atoms} atoms but only {len(atom_lines)} atom lines follow"
            )
            return
        yield frame, start, line, comment, atom_lines, None


def _resynchronise(lines: _Lines) -> None:
    """Skip to the next line that holds only an integer: the count line of the next frame."""
    while True:
        line = lines.next()
        if line is None:
            return
        fields = line.split()
        if len(fields) == 1 and fields[0].isdigit():
            lines.push_back(line)
            return


def _parse_atom_line(line: str, index: int) -> tuple[int, list[float]]:
    fields = line.split()
    if len(fields) < 4:
        raise _FrameError(f"atom line {index} should hold an element and x y z, found '{line.strip()[:60]}'")
    try:
        number = atomic_number(fields[0])
    except UnknownElementError:
        raise _FrameError(f"unknown element symbol '{fields[0]}' on atom {index}") from None
    try:
        xyz = [float(v) for v in fields[1:4]]
    except ValueError:
        raise _FrameError(f"atom {index} has unreadable coordinates {fields[1:4]}") from None
    if not all(math.isfinite(v) for v in xyz):
        raise _FrameError(f"atom {index} has a non-finite coordinate {xyz}")
    return number, xyz


def _plain_xyz_record(comment: str, atom_lines: list[str], name: str) -> Data:
    numbers, positions = [], []
    for i, line in enumerate(atom_lines, start=1):
        number, xyz = _parse_atom_line(line, i)
        numbers.append(number)
        positions.append(xyz)
    return make_record(positions, numbers, name=name)


def _extxyz_record(count_line: str, comment: str, atom_lines: list[str], default_name: str) -> Data:
    import ase.io

    from molgen.data.convert.ase_atoms import record_from_ase

    # check the species and the first three numbers of each line ourselves, for clear messages
    properties = re.search(r"Properties\s*=\s*(\S+)", comment)
    if properties is None or properties.group(1).lower().startswith("species:s:1:pos:r:3"):
        for i, line in enumerate(atom_lines, start=1):
            _parse_atom_line(line, i)
    text = count_line + comment + "".join(atom_lines)
    try:
        atoms = ase.io.read(io.StringIO(text), format="extxyz", index=0)
    except KeyError as exc:
        raise _FrameError(f"extended XYZ frame names an unknown element or column: {exc}") from None
    except Exception as exc:  # ase raises ValueError, IndexError, ... for malformed frames
        raise _FrameError(f"extended XYZ frame cannot be parsed: {exc}") from None
    if atoms.calc is not None:  # energy=, forces, stress: keep them for export
        for key, value in atoms.calc.results.items():
            atoms.info.setdefault(key, value)
        atoms.calc = None
    name = atoms.info.get("name")
    return record_from_ase(atoms, name=default_name if name is None else str(name))


def _stem(path: Path) -> str:
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return Path(name).stem


__all__ = ["read_sdf", "read_xyz"]
