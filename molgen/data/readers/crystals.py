"""Crystal readers: CDVAE/DiffCSP CSV files, CIF files and ASE databases.

Every reader yields periodic records (``cell [1, 3, 3]``, ``frac_pos [n_atoms, 3]`` in [0, 1),
``pbc [1, 3]``) built by :func:`molgen.data.convert.record_from_pymatgen` or
:func:`molgen.data.convert.record_from_ase`.

CIF text is parsed with pymatgen's ``CifParser`` (the path the CDVAE/DiffCSP code takes through
``Structure.from_str(cif, fmt="cif")``; about 2 ms per 20-atom P1 CIF). The structure is kept as given:
no Niggli or primitive reduction unless asked for. Before pymatgen builds a structure the block is
read with gemmi's CIF parser (microseconds) and checked here, because pymatgen accepts some nonsense
quietly (a negative or NaN cell length, an unknown element symbol becomes a dummy species, coinciding
atoms are merged):

- cell lengths must be finite and positive, angles finite, in (0, 180) degrees, and together span a
  non-degenerate cell;
- every ``_atom_site_type_symbol`` (or label, when there is no type symbol) must name an element
  (oxidation states such as ``Fe2+`` are allowed);
- every site must be fully occupied by one element: partial occupancy means a disordered structure,
  which a record (one element per site) cannot hold;
- in a P1 block, the number of sites must equal the number of ``_atom_site`` rows (pymatgen merges
  atoms closer than 1e-4 in fractional coordinates; two atoms in one place are an error).

pymatgen rounds fractional coordinates within 1e-4 of simple fractions (1/3, 1/2, ...) and warns
about it; that warning is expected on CDVAE files and is not reported.
"""

from __future__ import annotations

import csv
import math
import re
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch_geometric.data import Data

from molgen import keys as K
from molgen.data.readers.base import ReadPolicy, open_text, read_text
from molgen.elements import UnknownElementError, atomic_number
from molgen.errors import InputError

# columns of the CDVAE CSV layout that are identifiers or text, never properties
CDVAE_TEXT_COLUMNS = frozenset({"", "material_id", "cif", "formula", "pretty_formula", "elements"})

_BENIGN_WARNINGS = ("rounded to ideal values",)
_CELL_LENGTHS = ("_cell_length_a", "_cell_length_b", "_cell_length_c")
_CELL_ANGLES = ("_cell_angle_alpha", "_cell_angle_beta", "_cell_angle_gamma")
_SYMBOL = re.compile(r"^([A-Za-z]{1,3})")


class CifBlockError(ValueError):
    """A CIF block that does not describe an ordered crystal; the message says why."""


# --------------------------------------------------------------------------- CIF text -> pymatgen


def _cif_number(text: str) -> float:
    """A CIF numeric value; standard uncertainties in brackets (``5.431(2)``) are dropped."""
    value = str(text).strip()
    value = value.split("(", 1)[0]
    if value in ("?", "."):
        return math.nan
    return float(value)  # ValueError on text that is not a number


def _find(block, *tags: str):
    """First value of the first tag present (CIF 1 ``_cell_length_a`` or DDL2 ``_cell.length_a`` spelling)."""
    for tag in tags:
        value = block.find_value(tag)
        if value is not None:
            return value
    return None


def _find_column(block, *tags: str) -> list[str]:
    import gemmi

    for tag in tags:
        values = list(block.find_values(tag))
        if values:
            return [gemmi.cif.as_string(v) for v in values]
    return []


def _check_block(block) -> None:
    """Check the cell and element symbols of one CIF block (a ``gemmi.cif.Block``)."""
    if _find(block, "_atom_site.Cartn_x", "_atom_site_Cartn_x") is not None and _find(block, "_cell_length_a") is None:
        raise CifBlockError(
            "this is a macromolecular mmCIF (Cartesian _atom_site.Cartn_x), not a crystal; read receptors with "
            "molgen.data.readers.proteins.read_protein"
        )
    values = []
    for key in _CELL_LENGTHS + _CELL_ANGLES:
        raw = _find(block, key, key.replace("_cell_", "_cell."))
        if raw is None:
            raise CifBlockError(f"the cell is incomplete: {key} is missing")
        try:
            values.append(_cif_number(raw))
        except ValueError:
            raise CifBlockError(f"{key} = {raw!r} is not a number") from None
    lengths, angles = values[:3], values[3:]
    for key, value in zip(_CELL_LENGTHS, lengths):
        if not math.isfinite(value) or value <= 0:
            raise CifBlockError(f"impossible cell: {key} = {value:g} Å (cell lengths must be finite and positive)")
    for key, value in zip(_CELL_ANGLES, angles):
        if not math.isfinite(value) or not 0 < value < 180:
            raise CifBlockError(f"impossible cell: {key} = {value:g} degrees (angles must lie in (0, 180))")
    cos = [math.cos(math.radians(a)) for a in angles]
    # squared volume of a cell with unit edges; zero or negative means the three angles cannot be realised
    factor = 1 - cos[0] ** 2 - cos[1] ** 2 - cos[2] ** 2 + 2 * cos[0] * cos[1] * cos[2]
    if factor <= 1e-8:
        raise CifBlockError(
            "impossible cell: angles "
            f"(alpha, beta, gamma) = ({angles[0]:g}, {angles[1]:g}, {angles[2]:g}) degrees give a singular cell "
            "(zero volume)"
        )
    symbols = _find_column(block, "_atom_site_type_symbol", "_atom_site.type_symbol") or _find_column(
        block, "_atom_site_label", "_atom_site.label"
    )
    if not symbols:
        raise CifBlockError("no atoms: the block has no _atom_site_type_symbol or _atom_site_label loop")
    for text in symbols:
        match = _SYMBOL.match(str(text).strip())
        candidates = [] if match is None else [match.group(1), match.group(1)[:2], match.group(1)[:1]]
        if not any(_is_element(c) for c in candidates):
            raise CifBlockError(f"unknown element symbol '{text}' in the _atom_site loop")


def _is_element(symbol: str) -> bool:
    if not symbol:
        return False
    try:
        atomic_number(symbol)
    except UnknownElementError:
        return False
    return True


def _n_atom_site_rows(block) -> int:
    for tag in ("_atom_site_fract_x", "_atom_site.fract_x", "_atom_site_label", "_atom_site_type_symbol"):
        n = len(list(block.find_values(tag)))
        if n:
            return n
    return 0


def _is_p1(block) -> bool:
    ops = _find_column(
        block, "_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz", "_space_group_symop.operation_xyz"
    )
    return len(ops) == 1 and ops[0].replace(" ", "").lower() == "x,y,z"


def structure_from_cif_block(text: str, *, primitive: bool = False, niggli: bool = False):
    """pymatgen ``Structure`` of CIF text holding one data block, checked as described in the module.

    Raises :class:`CifBlockError` with a plain-language reason when the block is not an ordered crystal.
    """
    from pymatgen.core.periodic_table import DummySpecies
    from pymatgen.io.cif import CifParser

    import gemmi

    try:
        block = gemmi.cif.read_string(text)[0]
    except (RuntimeError, ValueError, IndexError) as exc:
        raise CifBlockError(f"not valid CIF syntax: {exc}") from None
    _check_block(block)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parser = CifParser.from_str(text)
            structures = parser.parse_structures(primitive=False, on_error="raise")
        except Exception as exc:  # pymatgen raises several types on malformed blocks
            reasons = [str(w.message) for w in caught if not _benign(w)]
            detail = "; ".join(reasons) or f"{type(exc).__name__}: {exc}"
            detail = " ".join(detail.split())
            raise CifBlockError(f"pymatgen cannot build a structure: {detail}") from None
    if len(structures) != 1:
        raise CifBlockError(f"expected one structure in the block, pymatgen found {len(structures)}")
    structure = structures[0]
    for site in structure:
        for specie in site.species:
            if isinstance(specie, DummySpecies):
                raise CifBlockError(f"unknown element '{specie}' at site {site.label or site.frac_coords}")
    if not structure.is_ordered:
        site = next(s for s in structure if not s.is_ordered)
        raise CifBlockError(
            f"disordered structure: site {site.label or ''} at {np.round(site.frac_coords, 4).tolist()} is partially "
            f"occupied ({site.species.formula}); a record needs one element per site"
        )
    if _is_p1(block) and len(structure) != _n_atom_site_rows(block):
        raise CifBlockError(
            f"{_n_atom_site_rows(block)} atom sites listed but {len(structure)} distinct positions: "
            "some atoms coincide (closer than 1e-4 in fractional coordinates)"
        )
    if primitive:
        structure = structure.get_primitive_structure()
    if niggli:
        structure = structure.get_reduced_structure()
    return structure


def _benign(warning: warnings.WarningMessage) -> bool:
    return any(text in str(warning.message) for text in _BENIGN_WARNINGS)


def _record_from_cif_text(text: str, name: str, *, primitive: bool = False, niggli: bool = False) -> Data:
    from molgen.data.convert.pymatgen_objects import record_from_pymatgen

    structure = structure_from_cif_block(text, primitive=primitive, niggli=niggli)
    return record_from_pymatgen(structure, name=name)


def split_cif_blocks(text: str) -> list[tuple[str, str]]:
    """Split CIF text into ``(block_name, block_text)`` pairs at ``data_`` lines.

    ``data_`` at the start of a line inside a semicolon-delimited text field does not start a block.
    Text before the first block (comments) is dropped.
    """
    blocks: list[tuple[str, list[str]]] = []
    in_text_field = False
    for line in text.splitlines(keepends=True):
        if line.startswith(";"):
            in_text_field = not in_text_field
        if not in_text_field and line[:5].lower() == "data_":
            blocks.append((line.strip()[5:], [line]))
        elif blocks:
            blocks[-1][1].append(line)
    return [(name, "".join(lines)) for name, lines in blocks]


# --------------------------------------------------------------------------- readers


def read_cif(path: Path, policy: ReadPolicy, *, primitive: bool = False, niggli: bool = False) -> Iterator[Data]:
    """One periodic record per data block of a CIF file (``.cif`` or ``.cif.gz``).

    Record names are ``<file stem>:<block name>``; a bad block is reported with the file and block
    name. A folder of CIF files is read with :func:`molgen.data.readers.read_structures`.
    """
    path = Path(path)
    blocks = split_cif_blocks(read_text(path))
    if not blocks:
        policy.fail(InputError(path, "no CIF data block found (a block starts with a 'data_<name>' line)"))
        return
    stem = path.name.split(".")[0]
    for block_name, block_text in blocks:
        label = f"data_{block_name}"
        try:
            yield _record_from_cif_text(block_text, f"{stem}:{block_name}", primitive=primitive, niggli=niggli)
        except (CifBlockError, ValueError) as exc:
            policy.fail(InputError(path, str(exc), record=f"block {label}"))


def cdvae_property_columns(path: str | Path) -> list[str]:
    """Names of the numeric property columns of a CDVAE CSV file, in the order of ``y``.

    A column is a property when it is not an identifier or text column (index, ``material_id``,
    ``cif``, ``formula``, ``pretty_formula``, ``elements``) and its value in the first row is a number.
    Perov-5: heat_all, heat_ref, dir_gap, ind_gap (eV); Carbon-24: energy_per_atom (eV);
    MP-20: formation_energy_per_atom (eV/atom), band_gap (eV), e_above_hull (eV/atom), spacegroup.number.
    """
    header, first = _csv_head(Path(path))
    return [col for col, value in zip(header, first) if col not in CDVAE_TEXT_COLUMNS and _is_number(value)]


def _csv_head(path: Path) -> tuple[list[str], list[str]]:
    with open_text(path) as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise InputError(path, "CSV file is empty") from None
        first = next(reader, [""] * len(header))
    return header, first


def _is_number(text: str) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def read_cdvae_csv(
    path: Path, policy: ReadPolicy, *, primitive: bool = False, niggli: bool = False
) -> Iterator[Data]:
    """Records of a CDVAE/DiffCSP CSV file (MP-20, Perov-5, Carbon-24, MPTS-52 layout).

    Columns: an unnamed index column, ``material_id``, ``cif`` (a CIF string) and property columns.
    Each record is named by its ``material_id``; ``y [1, n_props]`` holds the numeric property columns
    named by :func:`cdvae_property_columns` (an empty cell becomes NaN); the other text columns
    (formula, elements, ...) and the index column are kept in ``info['csv']``.
    The structure is kept as in the CIF (CDVAE's ``Structure.from_str(cif, fmt='cif')``); ``primitive``
    and ``niggli`` apply pymatgen's reductions, as CDVAE's preprocessing options do.
    """
    path = Path(path)
    properties = cdvae_property_columns(path)
    with open_text(path) as handle:
        reader = csv.reader(handle)
        header = next(reader)
        if "cif" not in header:
            raise InputError(path, "not a CDVAE CSV file: no 'cif' column")
        cif_col = header.index("cif")
        id_col = header.index("material_id") if "material_id" in header else None
        prop_cols = [header.index(name) for name in properties]
        text_cols = [i for i, col in enumerate(header) if i != cif_col and i != id_col and i not in prop_cols]
        row_number = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise InputError(path, f"CSV is malformed after row {row_number}: {exc}") from None
            row_number += 1
            if not row:
                continue
            material_id = row[id_col] if id_col is not None and id_col < len(row) else str(row_number)
            where = f"{material_id} (row {row_number})"
            if len(row) != len(header):
                policy.fail(InputError(path, f"{len(row)} fields but the header has {len(header)}", record=where))
                continue
            try:
                y = [float(row[i]) if row[i].strip() != "" else math.nan for i in prop_cols]
            except ValueError:
                bad = next(header[i] for i in prop_cols if row[i].strip() and not _is_number(row[i]))
                reason = f"property {bad} = {row[header.index(bad)]!r} is not a number"
                policy.fail(InputError(path, reason, record=where))
                continue
            try:
                record = _record_from_cif_text(row[cif_col], material_id, primitive=primitive, niggli=niggli)
            except (CifBlockError, ValueError) as exc:
                policy.fail(InputError(path, f"cif column: {exc}", record=where))
                continue
            if prop_cols:
                record[K.PROPERTIES] = torch.tensor([y], dtype=torch.float32)  # [1, n_props]
            record[K.INFO] = {"csv": {header[i] or "index": row[i] for i in text_cols}}
            yield record


def read_ase_db(path: Path, policy: ReadPolicy) -> Iterator[Data]:
    """Records of an ASE database (``ase.db.connect``), one per row, in row-id order.

    Rows with a cell and any periodic direction give periodic records. The name is the row's
    ``name`` key when present, else ``id=<row id>``; the row's key-value pairs and id are kept in
    ``info['ase_db']``.
    """
    import ase.db

    from molgen.data.convert.ase_atoms import record_from_ase

    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        db = ase.db.connect(str(path), type="db", create_indices=False)
        rows = list(db.select())
    except Exception as exc:  # sqlite3.DatabaseError and friends for files that are not ASE databases
        raise InputError(path, f"not a readable ASE database: {exc}") from None
    for row in rows:
        where = f"id={row.id}"
        try:
            atoms = row.toatoms()
            name = str(row.get("name", where))
            record = record_from_ase(atoms, name=name)
        except Exception as exc:
            policy.fail(InputError(path, f"row cannot be converted: {exc}", record=where))
            continue
        info = dict(record[K.INFO]) if K.INFO in record else {}
        info["ase_db"] = {"id": int(row.id), **dict(row.key_value_pairs)}
        record[K.INFO] = info
        yield record


__all__ = [
    "CifBlockError",
    "cdvae_property_columns",
    "read_ase_db",
    "read_cdvae_csv",
    "read_cif",
    "split_cif_blocks",
    "structure_from_cif_block",
]
