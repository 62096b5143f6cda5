"""Protein receptors and ligands -> pocket records.

A pocket needs two files (a receptor and a ligand), so this module is not in
:data:`molgen.data.readers.READERS`; call its functions directly:

- :func:`read_protein`: a PDB or mmCIF file (optionally ``.gz``) -> one receptor record;
- :func:`pocket_from_ligand` / :func:`pocket_from_center`: the whole residues near a ligand or a point;
- :func:`read_pocket`: receptor file + ligand SDF -> one complex record (ligand atoms first);
- :func:`iter_crossdocked`, :func:`iter_pdbbind`: complex records of the CrossDocked2020 and PDBbind layouts.

PDB files are parsed here, by columns, rather than by a library: the parser must name the line of
a bad record (a garbage line, an ATOM line whose coordinates are not numbers), and libraries skip or
repair such lines quietly. mmCIF files are parsed with ``gemmi`` (first model, author chain names and
residue numbers); both paths produce the same atom table and go through the same selection.

What the receptor keeps (all choices are keyword options of :func:`read_protein`):

- **polymer atoms**: every ``ATOM`` record, and ``HETATM`` records of common modified amino acids
  (:data:`MODIFIED_AMINO_ACIDS`, e.g. selenomethionine MSE) or of residue names given in ``keep_hetero``;
  residue names not among the 20 standard amino acids get ``residue_type = -1``;
- **waters** (HOH, WAT, ...): dropped; ``keep_waters=True`` keeps them;
- **ions** (single-atom metal or halide residues such as ZN, MG, CL): dropped by default, because the
  pocket featurisations of TargetDiff, Pocket2Mol and DiffSBDD (and the CrossDocked ``pocket10`` files)
  hold amino-acid atoms only, so a default pocket matches what those models see; ``keep_ions=True``
  keeps them as fixed context atoms with ``residue_type = -1``, which matters for metalloenzymes;
- **other HETATM residues** (ligands, buffer molecules such as GOL, SO4): dropped; ``ligand_residues``
  names residues to drop even when they are written as ``ATOM`` records;
- **alternate locations**: one conformer per residue: the altloc label with the highest summed
  occupancy in that residue (the first label on ties); an atom that lacks that label keeps its own
  highest-occupancy position;
- **hydrogens**: kept when the file has them; ``keep_hydrogens=False`` drops H and D;
- **models**: only the first model of a multi-model (NMR) file.

Nothing is dropped silently: the counts of dropped atoms per reason are in ``info['excluded']``.

Record fields of a receptor (``n`` atoms): ``pos [n, 3]``, ``z [n]``, ``charges [n]`` (PDB charge
column, 0 when blank), ``fixed [n]`` (all True), ``is_protein [n]`` (True), ``residue_type [n]``
(index into :data:`molgen.elements.AMINO_ACIDS`, -1 otherwise), ``residue_index [n]`` (0, 1, ... in
file order), ``is_backbone [n]`` (N, CA, C, O of an amino acid). ``info`` holds per-atom lists for
export: ``atom_names``, ``residue_names``, ``residue_numbers`` (author numbers as text, e.g. ``"36"``),
``insertion_codes``, ``chain_ids``, ``hetero`` (HETATM or not), plus ``excluded`` and ``source``.
"""

from __future__ import annotations

import math
import pickle
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch_geometric.data import Data

from molgen import keys as K
from molgen.data.readers.base import ReadPolicy, logical_suffix, open_binary, open_text
from molgen.data.record import RecordError, make_record
from molgen.elements import AMINO_ACIDS, BACKBONE_ATOM_NAMES, UnknownElementError, atomic_number, residue_type_index
from molgen.errors import InputError

WATER_NAMES = frozenset({"HOH", "WAT", "H2O", "DOD", "D2O", "SOL", "TIP", "TIP3", "TIP4", "SPC", "T3P"})
MODIFIED_AMINO_ACIDS = frozenset(
    {"MSE", "SEP", "TPO", "PTR", "CSO", "CSD", "OCS", "HYP", "MLY", "KCX", "LLP", "PCA", "CME", "SEC", "PYL"}
)
# elements whose single-atom residues count as ions (metals and halides)
_NON_METALS = frozenset({1, 2, 5, 6, 7, 8, 10, 14, 15, 16, 18, 33, 34, 36, 52, 54, 86})
_HALOGENS = frozenset({9, 17, 35, 53})

# per-atom lists in a record's info (kept in step with the atoms when a subset is taken)
PER_ATOM_INFO = (K.ATOM_NAMES, "residue_names", "residue_numbers", "insertion_codes", "chain_ids", "hetero")
_PER_ATOM_FIELDS = (
    K.POS, K.ATOMIC_NUMBERS, K.FORMAL_CHARGES, K.FIXED, K.IS_PROTEIN, K.RESIDUE_TYPE, K.RESIDUE_INDEX, K.IS_BACKBONE,
)

# record names of the wwPDB format (v3.3) and common legacy/tool records; anything else is a garbage line
PDB_RECORD_NAMES = frozenset(
    """HEADER OBSLTE TITLE SPLIT CAVEAT COMPND SOURCE KEYWDS EXPDTA NUMMDL MDLTYP AUTHOR REVDAT SPRSDE JRNL
    REMARK DBREF DBREF1 DBREF2 SEQADV SEQRES MODRES HET HETNAM HETSYN FORMUL HELIX SHEET SSBOND LINK CISPEP
    SITE CRYST1 ORIGX1 ORIGX2 ORIGX3 SCALE1 SCALE2 SCALE3 MTRIX1 MTRIX2 MTRIX3 MODEL ATOM ANISOU TER HETATM
    ENDMDL CONECT MASTER END SIGATM SIGUIJ TVECT USER FTNOTE HYDBND SLTBRG TURN LINKR""".split()
)


# --------------------------------------------------------------------------- atom tables


class _Atoms:
    """Column lists of the atoms read from a file, before selection."""

    def __init__(self) -> None:
        self.hetero: list[bool] = []
        self.name: list[str] = []
        self.altloc: list[str] = []
        self.resname: list[str] = []
        self.chain: list[str] = []
        self.resseq: list[str] = []
        self.icode: list[str] = []
        self.xyz: list[tuple[float, float, float]] = []
        self.occupancy: list[float] = []
        self.z: list[int] = []
        self.charge: list[int] = []

    def __len__(self) -> int:
        return len(self.name)

    def residue_key(self, i: int) -> tuple[str, str, str, str]:
        return (self.chain[i], self.resseq[i], self.icode[i], self.resname[i])


def _element_number(symbol: str) -> int:
    symbol = symbol.strip()
    if symbol.upper() == "D":  # deuterium, as written in neutron structures
        return 1
    return atomic_number(symbol.capitalize())


def _element_from_name(name_field: str, hetero: bool) -> str:
    """Element guessed from the 4-column PDB atom name when the element columns are blank."""
    if name_field[:1] in (" ", "") or name_field[:1].isdigit():
        return name_field[1:2]
    letters = re.sub(r"[^A-Za-z]", "", name_field)
    if not hetero:  # amino-acid atom names: one-letter elements (C, N, O, S, H), e.g. 'HD21'
        return letters[:1]
    two = letters[:2].capitalize()
    try:
        atomic_number(two)
        return two
    except UnknownElementError:
        return letters[:1]


def _parse_pdb(path: Path, strict: bool = True) -> _Atoms:
    atoms = _Atoms()
    seen_model_end = False
    with open_text(path) as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            record = line[:6].strip().upper()
            if record not in PDB_RECORD_NAMES:
                head = record.split()[0] if record.split() else record
                if head not in PDB_RECORD_NAMES:
                    if not strict:
                        continue
                    raise InputError(
                        path, f"line {number} is not a PDB record: {line[:60]!r}", record=f"line {number}"
                    )
                record = head
            if record == "ENDMDL":
                seen_model_end = True
                continue
            if record not in ("ATOM", "HETATM") or seen_model_end:
                continue
            _parse_atom_line(path, number, line, record == "HETATM", atoms)
    return atoms


def _parse_atom_line(path: Path, number: int, line: str, hetero: bool, atoms: _Atoms) -> None:
    where = f"line {number}"
    if len(line) < 54:
        raise InputError(path, f"{where}: {line[:6].strip()} record is cut short ({len(line)} columns, need 54)", where)
    try:
        xyz = (float(line[30:38]), float(line[38:46]), float(line[46:54]))
    except ValueError:
        raise InputError(path, f"{where}: unparseable coordinates {line[30:54]!r} (columns 31-54)", where) from None
    if not all(math.isfinite(v) for v in xyz):
        raise InputError(path, f"{where}: non-finite coordinates {line[30:54]!r}", where)
    occupancy_text = line[54:60].strip()
    try:
        occupancy = float(occupancy_text) if occupancy_text else 1.0
    except ValueError:
        raise InputError(path, f"{where}: unparseable occupancy {occupancy_text!r} (columns 55-60)", where) from None
    name_field = line[12:16]
    element_text = line[76:78].strip() if len(line) > 76 else ""
    symbol = element_text or _element_from_name(name_field, hetero)
    try:
        z = _element_number(symbol)
    except UnknownElementError:
        reason = f"{where}: unknown element symbol {symbol!r} for atom {name_field.strip()!r}"
        raise InputError(path, reason, where) from None
    charge_text = line[78:80].strip() if len(line) > 78 else ""
    charge = 0
    if charge_text:
        match = re.fullmatch(r"(\d)([+-])|([+-])(\d)", charge_text)
        if match is None:
            raise InputError(path, f"{where}: unparseable charge {charge_text!r} (columns 79-80)", where)
        digit = match.group(1) or match.group(4)
        sign = match.group(2) or match.group(3)
        charge = int(digit) * (1 if sign == "+" else -1)
    atoms.hetero.append(hetero)
    atoms.name.append(name_field.strip())
    atoms.altloc.append(line[16].strip())
    atoms.resname.append(line[17:21].strip().upper())
    atoms.chain.append(line[21].strip())
    atoms.resseq.append(line[22:26].strip())
    atoms.icode.append(line[26].strip() if len(line) > 26 else "")
    atoms.xyz.append(xyz)
    atoms.occupancy.append(occupancy)
    atoms.z.append(z)
    atoms.charge.append(charge)


def _parse_mmcif(path: Path) -> _Atoms:
    import gemmi

    try:
        if path.suffix.lower() == ".gz":
            with open_text(path) as handle:
                document = gemmi.cif.read_string(handle.read())
        else:
            document = gemmi.cif.read(str(path))
        structure = gemmi.make_structure_from_block(document.sole_block())
    except (RuntimeError, ValueError) as exc:
        raise InputError(path, f"not a readable mmCIF file: {exc}") from None
    if len(structure) == 0:
        raise InputError(path, "mmCIF file has no model (no _atom_site records)")
    atoms = _Atoms()
    for chain in structure[0]:
        for residue in chain:
            for atom in residue:
                seqid = f"{residue.seqid.num}{residue.seqid.icode.strip()}"
                where = f"chain {chain.name} residue {residue.name} {seqid} atom {atom.name}"
                if atom.element.atomic_number == 0:
                    raise InputError(path, f"unknown element symbol for atom {atom.name}", record=where)
                xyz = (atom.pos.x, atom.pos.y, atom.pos.z)
                if not all(math.isfinite(v) for v in xyz):
                    raise InputError(path, "non-finite coordinates", record=where)
                atoms.hetero.append(residue.het_flag == "H")
                atoms.name.append(atom.name)
                atoms.altloc.append(atom.altloc.strip("\0 "))
                atoms.resname.append(residue.name.upper())
                atoms.chain.append(chain.name)
                atoms.resseq.append(str(residue.seqid.num))
                atoms.icode.append(residue.seqid.icode.strip())
                atoms.xyz.append(xyz)
                atoms.occupancy.append(float(atom.occ))
                atoms.z.append(int(atom.element.atomic_number))
                atoms.charge.append(int(atom.charge))
    return atoms


# --------------------------------------------------------------------------- selection


def _select_altlocs(atoms: _Atoms) -> tuple[np.ndarray, int]:
    """Mask keeping one alternate location per residue (see the module notes) and the count dropped."""
    keep = np.ones(len(atoms), dtype=bool)
    groups: dict[tuple, dict[str, list[int]]] = {}
    for i, label in enumerate(atoms.altloc):
        if label:
            residue = (atoms.chain[i], atoms.resseq[i], atoms.icode[i])
            groups.setdefault(residue, {}).setdefault(atoms.name[i], []).append(i)
    for by_name in groups.values():
        weight: dict[str, float] = {}
        for indices in by_name.values():
            for i in indices:
                weight[atoms.altloc[i]] = weight.get(atoms.altloc[i], 0.0) + atoms.occupancy[i]
        best = max(weight, key=lambda label: weight[label])  # first label on ties (dicts keep order)
        for indices in by_name.values():
            chosen = [i for i in indices if atoms.altloc[i] == best]
            pick = chosen[0] if chosen else max(indices, key=lambda i: atoms.occupancy[i])
            for i in indices:
                keep[i] = i == pick
    return keep, int((~keep).sum())


def _is_ion(z: int, n_heavy: int) -> bool:
    return n_heavy == 1 and (z in _HALOGENS or z not in _NON_METALS)


def read_protein(
    path: str | Path,
    *,
    keep_waters: bool = False,
    keep_ions: bool = False,
    keep_hydrogens: bool = True,
    ligand_residues: Iterable[str] = (),
    keep_hetero: Iterable[str] = (),
    strict: bool = True,
) -> Data:
    """Receptor record of a PDB or mmCIF file (``.pdb``, ``.ent``, ``.cif``, ``.mmcif``, optionally ``.gz``).

    Parameters
    ----------
    path : the receptor file.
    keep_waters : keep water molecules (dropped by default).
    keep_ions : keep single-atom metal and halide ions (dropped by default; see the module notes).
    keep_hydrogens : keep H/D atoms present in the file.
    ligand_residues : residue names to strip from the receptor, in ATOM or HETATM records.
    keep_hetero : HETATM residue names to keep as receptor atoms (cofactors, modified residues).
    strict : a PDB line that is not a PDB record is an error (default); ``False`` ignores such lines
        (e.g. the score table Rosetta appends). ATOM/HETATM lines are always checked.

    Returns
    -------
    A record whose atoms are all ``fixed`` and ``is_protein``; fields and ``info`` as in the module notes.

    Raises
    ------
    InputError naming the file and line (PDB) or atom (mmCIF): garbage lines, unparseable coordinates,
    unknown elements, or a receptor with no atoms left.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    suffix = logical_suffix(path)
    atoms = _parse_mmcif(path) if suffix in (".cif", ".mmcif") else _parse_pdb(path, strict)
    if len(atoms) == 0:
        raise InputError(path, "no ATOM or HETATM records")
    strip = {name.strip().upper() for name in ligand_residues}
    hetero_kept = {name.strip().upper() for name in keep_hetero} | MODIFIED_AMINO_ACIDS

    keep, n_altloc = _select_altlocs(atoms)
    heavy_per_residue = Counter(atoms.residue_key(i) for i in range(len(atoms)) if keep[i] and atoms.z[i] != 1)
    excluded: Counter = Counter()
    if n_altloc:
        excluded["alternate locations"] = n_altloc
    for i in range(len(atoms)):
        if not keep[i]:
            continue
        resname = atoms.resname[i]
        reason = None
        if resname in strip:
            reason = f"ligand {resname}"
        elif resname in WATER_NAMES:
            reason = None if keep_waters else "waters"
        elif atoms.hetero[i] and _is_ion(atoms.z[i], heavy_per_residue[atoms.residue_key(i)]):
            reason = None if keep_ions else "ions"
        elif atoms.hetero[i] and resname not in hetero_kept:
            reason = f"HETATM {resname}"
        if reason is None and not keep_hydrogens and atoms.z[i] == 1:
            reason = "hydrogens"
        if reason is not None:
            keep[i] = False
            excluded[reason] += 1
    index = np.flatnonzero(keep)
    if len(index) == 0:
        raise InputError(path, f"no receptor atoms left after excluding {dict(excluded)}")

    residue_index, residue_of = [], {}
    for i in index:
        key = atoms.residue_key(i)
        residue_index.append(residue_of.setdefault(key, len(residue_of)))
    residue_type = [residue_type_index(atoms.resname[i]) for i in index]
    is_amino = [atoms.resname[i] in AMINO_ACIDS or atoms.resname[i] in MODIFIED_AMINO_ACIDS for i in index]
    is_backbone = [amino and atoms.name[i] in BACKBONE_ATOM_NAMES for amino, i in zip(is_amino, index)]
    n = len(index)
    info = {
        K.ATOM_NAMES: [atoms.name[i] for i in index],
        "residue_names": [atoms.resname[i] for i in index],
        "residue_numbers": [atoms.resseq[i] for i in index],
        "insertion_codes": [atoms.icode[i] for i in index],
        "chain_ids": [atoms.chain[i] for i in index],
        "hetero": [atoms.hetero[i] for i in index],
        "excluded": dict(excluded),
        "source": str(path),
    }
    try:
        return make_record(
            np.asarray([atoms.xyz[i] for i in index], dtype=np.float64),
            [atoms.z[i] for i in index],
            formal_charges=[atoms.charge[i] for i in index],
            fixed=np.ones(n, dtype=bool),
            name=path.name.split(".")[0],
            info=info,
            **{
                K.IS_PROTEIN: torch.ones(n, dtype=torch.bool),
                K.RESIDUE_TYPE: torch.tensor(residue_type, dtype=torch.long),
                K.RESIDUE_INDEX: torch.tensor(residue_index, dtype=torch.long),
                K.IS_BACKBONE: torch.tensor(is_backbone, dtype=torch.bool),
            },
        )
    except RecordError as exc:
        raise InputError(path, str(exc)) from None


# --------------------------------------------------------------------------- pockets


def select_atoms(record: Data, mask: Any) -> Data:
    """A copy of a protein or complex record with the atoms of a boolean mask ``[n_atoms]``.

    Per-atom tensors and the per-atom lists of ``info`` follow the mask; residue indices of
    protein atoms are renumbered 0, 1, ... in order. Records with bonds are not supported here.
    """
    mask = torch.as_tensor(np.asarray(mask, dtype=bool))
    if K.BOND_INDEX in record:
        raise ValueError("select_atoms does not renumber bonds; use it on receptor records")
    out = Data()
    for key in record.keys():
        value = record[key]
        if key in _PER_ATOM_FIELDS:
            out[key] = value[mask]
        elif key == K.INFO:
            keep = mask.tolist()
            info = dict(value)
            for name in PER_ATOM_INFO:
                if name in info:
                    info[name] = [item for item, k in zip(info[name], keep) if k]
            out[key] = info
        else:
            out[key] = value
    if K.RESIDUE_INDEX in out:
        residues = out[K.RESIDUE_INDEX]
        valid = residues >= 0
        if bool(valid.any()):
            # residue indices grow in file order, so sorted unique values keep that order
            _, renumbered = torch.unique(residues[valid], sorted=True, return_inverse=True)
            residues = residues.clone()
            residues[valid] = renumbered
            out[K.RESIDUE_INDEX] = residues
    return out


def _residues_near(protein: Data, points: np.ndarray, radius: float) -> torch.Tensor:
    """Mask ``[n_atoms]`` of the whole residues with any atom within ``radius`` Å of any point ``[m, 3]``."""
    pos = protein[K.POS].double()
    query = torch.as_tensor(np.asarray(points, dtype=np.float64)).reshape(-1, 3)
    near = torch.zeros(pos.shape[0], dtype=torch.bool)
    for start in range(0, pos.shape[0], 4096):  # chunks keep memory flat for large receptors
        near[start : start + 4096] = (torch.cdist(pos[start : start + 4096], query) <= radius).any(dim=1)
    residues = protein[K.RESIDUE_INDEX]
    chosen = torch.unique(residues[near])
    return torch.isin(residues, chosen)


def pocket_from_ligand(protein: Data, ligand: Data, radius: float = 10.0) -> Data:
    """The residues of ``protein`` with any atom within ``radius`` Å of any ligand atom (whole residues).

    ``info['pocket']`` records the criterion. The pocket may be empty (zero atoms is not a valid
    record): :class:`ValueError` then.
    """
    mask = _residues_near(protein, ligand[K.POS].double().numpy(), radius)
    if not bool(mask.any()):
        raise ValueError(f"no receptor atom lies within {radius} Å of the ligand (are both in the same frame?)")
    pocket = select_atoms(protein, mask)
    criterion = {"radius": float(radius), "criterion": "any atom near any ligand atom"}
    pocket[K.INFO] = {**pocket[K.INFO], "pocket": criterion}
    return pocket


def pocket_from_center(protein: Data, center: Sequence[float], radius: float = 10.0) -> Data:
    """The residues of ``protein`` with any atom within ``radius`` Å of ``center`` (whole residues)."""
    center = np.asarray(center, dtype=np.float64).reshape(1, 3)
    mask = _residues_near(protein, center, radius)
    if not bool(mask.any()):
        raise ValueError(f"no receptor atom lies within {radius} Å of {center.ravel().tolist()}")
    pocket = select_atoms(protein, mask)
    pocket[K.INFO] = {**pocket[K.INFO], "pocket": {"radius": float(radius), "center": center.ravel().tolist()}}
    return pocket


def read_ligand(path: str | Path, index: int = 0) -> Data:
    """Molecule number ``index`` (from 0) of a ligand file, read by the molecule readers (SDF, MOL, XYZ)."""
    from molgen.data.readers import reader_for

    path = Path(path)
    if not path.exists():
        raise InputError(path, "ligand file not found")
    for number, record in enumerate(reader_for(path)(path, ReadPolicy("raise"))):
        if number == index:
            return record
    raise InputError(path, f"ligand file has no molecule {index + 1} (counted from 1)")


def _drop_hydrogens(record: Data) -> Data:
    keep = record[K.ATOMIC_NUMBERS] != 1
    if bool(keep.all()):
        return record
    new_index = torch.full((keep.shape[0],), -1, dtype=torch.long)
    new_index[keep] = torch.arange(int(keep.sum()))
    kwargs: dict[str, Any] = {}
    if K.BOND_INDEX in record:
        bonds = record[K.BOND_INDEX]
        both = keep[bonds[0]] & keep[bonds[1]]
        kwargs["bonds"] = new_index[bonds[:, both]].t().numpy()
        kwargs["bond_types"] = record[K.BOND_TYPE][both].numpy()
    return make_record(
        record[K.POS][keep].numpy(),
        record[K.ATOMIC_NUMBERS][keep].numpy(),
        formal_charges=record[K.FORMAL_CHARGES][keep].numpy() if K.FORMAL_CHARGES in record else None,
        name=record[K.NAME] if K.NAME in record else None,
        info=record[K.INFO] if K.INFO in record else None,
        **kwargs,
    )


def complex_record(ligand: Data, pocket: Data, name: str | None = None) -> Data:
    """One record of a ligand (atoms first, ``fixed=False``) and a pocket (after it, ``fixed=True``).

    Shapes (``n = n_ligand + n_pocket``): ``pos [n, 3]``, ``z [n]``, ``charges [n]``, ``fixed [n]``,
    ``is_protein [n]``, ``residue_type [n]`` / ``residue_index [n]`` (-1 on ligand atoms),
    ``is_backbone [n]``; the ligand's bonds ``bond_index [2, n_bonds]`` keep their indices.
    ``info['protein']`` holds the pocket's per-atom lists (atom ``n_ligand + k`` is entry ``k``),
    ``info['ligand']`` the ligand's own info, ``info['n_ligand_atoms']`` the split point.
    """
    n_lig = int(ligand[K.POS].shape[0])
    n_poc = int(pocket[K.POS].shape[0])
    lig_charges = ligand[K.FORMAL_CHARGES] if K.FORMAL_CHARGES in ligand else torch.zeros(n_lig, dtype=torch.long)
    poc_charges = pocket[K.FORMAL_CHARGES] if K.FORMAL_CHARGES in pocket else torch.zeros(n_poc, dtype=torch.long)
    minus_one = torch.full((n_lig,), -1, dtype=torch.long)
    no = torch.zeros(n_lig, dtype=torch.bool)
    bonds = {}
    if K.BOND_INDEX in ligand:
        bonds = {"bonds": ligand[K.BOND_INDEX].t().numpy(), "bond_types": ligand[K.BOND_TYPE].numpy()}
    pocket_info = dict(pocket[K.INFO]) if K.INFO in pocket else {}
    return make_record(
        torch.cat([ligand[K.POS].double(), pocket[K.POS].double()]).numpy(),
        torch.cat([ligand[K.ATOMIC_NUMBERS], pocket[K.ATOMIC_NUMBERS]]).numpy(),
        formal_charges=torch.cat([lig_charges, poc_charges]).numpy(),
        fixed=np.concatenate([np.zeros(n_lig, dtype=bool), np.ones(n_poc, dtype=bool)]),
        name=name if name is not None else (ligand[K.NAME] if K.NAME in ligand else None),
        info={
            "n_ligand_atoms": n_lig,
            "ligand": dict(ligand[K.INFO]) if K.INFO in ligand else {},
            "ligand_name": ligand[K.NAME] if K.NAME in ligand else None,
            "protein": pocket_info,
        },
        **bonds,
        **{
            K.IS_PROTEIN: torch.cat([no, torch.ones(n_poc, dtype=torch.bool)]),
            K.RESIDUE_TYPE: torch.cat([minus_one, pocket[K.RESIDUE_TYPE]]),
            K.RESIDUE_INDEX: torch.cat([minus_one, pocket[K.RESIDUE_INDEX]]),
            K.IS_BACKBONE: torch.cat([no, pocket[K.IS_BACKBONE]]),
        },
    )


def read_pocket(
    protein_path: str | Path,
    ligand_path: str | Path,
    radius: float | None = 10.0,
    *,
    ligand_index: int = 0,
    keep_hydrogens: bool = True,
    name: str | None = None,
    clash_distance: float = 0.5,
    **protein_options: Any,
) -> Data:
    """Complex record of a receptor file and a ligand file (see :func:`complex_record` for the fields).

    Parameters
    ----------
    protein_path : PDB or mmCIF receptor (a whole protein or an already cropped pocket).
    ligand_path : SDF/MOL file of the ligand; molecule ``ligand_index`` (from 0) is used. Bonds,
        including aromatic bonds written as order 4, are kept as written.
    radius : pocket = residues with any atom within ``radius`` Å of any ligand atom;
        ``None`` keeps the whole receptor file (for files that are already pockets).
    keep_hydrogens : keep H atoms of receptor and ligand.
    clash_distance : a receptor atom closer than this to a ligand atom means the ligand is still in
        the receptor file (as ATOM records or a kept HETATM residue): InputError, name it in ``ligand_residues``.
    protein_options : passed to :func:`read_protein` (keep_waters, keep_ions, ligand_residues, keep_hetero).
    """
    protein_path, ligand_path = Path(protein_path), Path(ligand_path)
    ligand = read_ligand(ligand_path, ligand_index)
    if not keep_hydrogens:
        ligand = _drop_hydrogens(ligand)
    protein = read_protein(protein_path, keep_hydrogens=keep_hydrogens, **protein_options)
    if radius is None:
        pocket = protein
    else:
        try:
            pocket = pocket_from_ligand(protein, ligand, radius)
        except ValueError as exc:
            raise InputError(protein_path, f"{exc}; ligand {ligand_path}") from None
    distances = torch.cdist(ligand[K.POS].double(), pocket[K.POS].double())  # [n_ligand, n_pocket]
    closest = float(distances.min())
    if closest < clash_distance:
        k = int(distances.min(dim=0).values.argmin())
        info = pocket[K.INFO]
        residue = f"{info['residue_names'][k]} {info['chain_ids'][k]}{info['residue_numbers'][k]}"
        where = f"{residue} atom {info[K.ATOM_NAMES][k]}"
        raise InputError(
            protein_path,
            f"receptor atom {where} is {closest:.2f} Å from a ligand atom of {ligand_path.name}: the ligand seems to "
            "be part of the receptor file; strip it with ligand_residues=[...]",
        )
    default_name = f"{protein_path.name.split('.')[0]}|{ligand_path.name.split('.')[0]}"
    return complex_record(ligand, pocket, name=name or default_name)


# --------------------------------------------------------------------------- dataset layouts


class _OnlyPlainData(pickle.Unpickler):
    """Unpickler for index files: lists, tuples, strings and numbers only; any class is refused."""

    def find_class(self, module: str, name: str):  # noqa: D102
        raise pickle.UnpicklingError(f"index file refers to {module}.{name}; only plain lists/tuples are allowed")


def load_crossdocked_index(path: str | Path) -> list[tuple]:
    """Entries ``(pocket_fn, ligand_fn, protein_fn, rmsd)`` of a TargetDiff/Pocket2Mol ``index.pkl``.

    Loaded without running code: the pickle may contain only plain lists, tuples, strings, numbers and None.
    """
    path = Path(path)
    try:
        with open_binary(path) as handle:
            entries = _OnlyPlainData(handle).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise InputError(path, f"not a CrossDocked index pickle: {exc}") from None
    if not isinstance(entries, (list, tuple)):
        raise InputError(path, f"index must be a list of tuples, got {type(entries).__name__}")
    for number, entry in enumerate(entries):
        if not isinstance(entry, (list, tuple)) or len(entry) < 2:
            raise InputError(path, f"entry is not a (pocket_fn, ligand_fn, ...) tuple: {entry!r}", record=number)
    return [tuple(entry) for entry in entries]


def load_crossdocked_split(path: str | Path) -> dict[str, list[tuple[str, str]]]:
    """The ``split_by_name.pt`` mapping ``{'train': [(pocket_fn, ligand_fn), ...], 'test': [...]}``.

    Loaded with ``torch.load(weights_only=True)``: a file containing anything but plain containers and
    strings is refused.
    """
    path = Path(path)
    try:
        split = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError, RuntimeError, EOFError for bad or unsafe files
        raise InputError(path, f"not a safe CrossDocked split file (torch.load weights_only): {exc}") from None
    if not isinstance(split, dict) or not all(isinstance(v, (list, tuple)) for v in split.values()):
        raise InputError(path, "split file must map split names to lists of (pocket_fn, ligand_fn) pairs")
    return {str(k): [tuple(pair) for pair in v] for k, v in split.items()}


def iter_crossdocked(
    root: str | Path,
    index_file: str | Path | None = None,
    split_file: str | Path | None = None,
    split: str | None = None,
    policy: ReadPolicy | None = None,
    radius: float | None = 10.0,
    **pocket_options: Any,
) -> Iterator[Data]:
    """Complex records of a CrossDocked2020 folder (TargetDiff/Pocket2Mol layout).

    Parameters
    ----------
    root : folder the file names of the index/split are relative to (``crossdocked_v1.1_rmsd1.0_pocket10``).
    index_file : ``index.pkl`` with ``(pocket_fn, ligand_fn, protein_fn, rmsd)`` entries (default:
        ``root/index.pkl`` when neither file is given); entries whose
        pocket file is None (failed crops in TargetDiff's index) are logged in the skip log, never raised.
    split_file : ``split_by_name.pt``; with ``split`` ('train' / 'test') only that split's pairs are read.
        When both files are given, the split selects among the index entries.
    radius : re-crop the pocket file around the ligand (``None``: use the pocket file as it is).
        The ``pocket10`` files are cut by residue centre of mass, so re-cropping at 10 Å with the
        any-atom rule keeps them whole.
    policy : a complex that cannot be read raises (default) or, in skip mode, is logged with its
        ligand file name and skipped.

    Record names are the ligand file names relative to ``root``.
    """
    root = Path(root)
    policy = policy or ReadPolicy()
    if index_file is None and split_file is None:
        if not (root / "index.pkl").exists():
            raise InputError(root, "give an index file (index.pkl) or a split file (split_by_name.pt)")
        index_file = root / "index.pkl"
    pairs: list[tuple[Any, Any]]
    if index_file is not None:
        pairs = [(entry[0], entry[1]) for entry in load_crossdocked_index(index_file)]
    if split_file is not None:
        splits = load_crossdocked_split(split_file)
        if split is None:
            raise InputError(split_file, f"choose a split: {sorted(splits)}")
        if split not in splits:
            raise InputError(split_file, f"no split '{split}' (has {sorted(splits)})")
        chosen = [tuple(pair[:2]) for pair in splits[split]]
        if index_file is not None:
            wanted = set(chosen)
            pairs = [pair for pair in pairs if pair in wanted]
        else:
            pairs = chosen
    for pocket_fn, ligand_fn in pairs:
        if pocket_fn is None or ligand_fn is None:
            entry = InputError(index_file, "index entry without a pocket or ligand file", record=str(ligand_fn))
            policy.skipped.add(entry)
            continue
        try:
            yield read_pocket(root / pocket_fn, root / ligand_fn, radius, name=str(ligand_fn), **pocket_options)
        except InputError as exc:
            policy.fail(_in_complex(exc, str(ligand_fn)))


def _in_complex(error: InputError, complex_id: str) -> InputError:
    """The same error with the complex named in its record."""
    record = f"complex {complex_id}" + (f", {error.record}" if error.record is not None else "")
    return InputError(error.path, error.reason, record=record)


_PDB_ID = re.compile(r"^[0-9][A-Za-z0-9]{3}$")


def iter_pdbbind(
    root: str | Path,
    policy: ReadPolicy | None = None,
    radius: float | None = 10.0,
    use_pocket_file: bool = False,
    ids: Iterable[str] | None = None,
    **pocket_options: Any,
) -> Iterator[Data]:
    """Complex records of a PDBbind folder: ``<root>/<id>/<id>_protein.pdb`` + ``<id>_ligand.sdf``.

    Folders whose name is not a 4-character PDB id (``index``, ``readme``) are ignored. With
    ``use_pocket_file=True`` the optional ``<id>_pocket.pdb`` is the receptor when present (faster;
    PDBbind cuts it at 10 Å). A complex with missing or bad files raises (default) or, in skip mode,
    is logged with its id and skipped. Record names are the PDB ids.
    """
    root = Path(root)
    policy = policy or ReadPolicy()
    if not root.is_dir():
        raise InputError(root, "PDBbind root folder not found")
    if ids is not None:
        names = sorted(ids)
    else:
        names = sorted(p.name for p in root.iterdir() if p.is_dir() and _PDB_ID.match(p.name))
    if not names:
        raise InputError(root, "no <id>/ folders with PDBbind complexes found")
    for pdb_id in names:
        folder = root / pdb_id
        protein = folder / f"{pdb_id}_protein.pdb"
        pocket = folder / f"{pdb_id}_pocket.pdb"
        ligand = folder / f"{pdb_id}_ligand.sdf"
        if use_pocket_file and pocket.exists():
            protein = pocket
        missing = [p.name for p in (protein, ligand) if not p.exists()]
        if missing:
            policy.fail(InputError(folder, f"missing {', '.join(missing)}", record=f"complex {pdb_id}"))
            continue
        try:
            yield read_pocket(protein, ligand, radius, name=pdb_id, **pocket_options)
        except InputError as exc:
            policy.fail(_in_complex(exc, pdb_id))


__all__ = [
    "MODIFIED_AMINO_ACIDS",
    "WATER_NAMES",
    "complex_record",
    "iter_crossdocked",
    "iter_pdbbind",
    "load_crossdocked_index",
    "load_crossdocked_split",
    "pocket_from_center",
    "pocket_from_ligand",
    "read_ligand",
    "read_pocket",
    "read_protein",
    "select_atoms",
]
