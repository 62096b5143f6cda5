"""QM9 in its three common layouts, with the 12 standard properties in one set of units.

Layouts
-------
- **qm9pack** (:func:`read_qm9pack_csv`, :func:`load_qm9pack_arrays`): the CSV files shipped in
  the ``qm9pack`` package (``pip install "molgen[qm9]"``), 130,831 molecules (the 3,054
  "uncharacterized" ones already removed), one row per molecule, sorted by GDB index.
- **raw** (:func:`read_qm9_raw_xyz`): the original ``dsgdb9nsd_NNNNNN.xyz`` files of
  Ramakrishnan et al. (2014), numbers possibly in Mathematica form (``1.5*^-6``).
- **EDM npz** (:func:`read_edm_npz`): the padded arrays of EDM / Cormorant
  (``positions``, ``charges`` = atomic numbers, ``num_atoms``, one array per property).

Properties and units
--------------------
Every reader stores the 12 standard properties of :data:`QM9_PROPERTIES` as ``y [1, 12]`` in
the order and units below, the units PyTorch Geometric's ``QM9`` uses and EDM's property
conditioning sees after its Hartree -> eV conversion: energies in **eV** (converted from
Hartree with 1 Ha = 27.211386246 eV, CODATA 2018), the rest as QM9 gives them.

====== =============================================== ============
name   meaning                                          unit stored
====== =============================================== ============
mu     dipole moment                                    D
alpha  isotropic polarizability                         a0^3 (bohr^3)
homo   HOMO energy                                      eV
lumo   LUMO energy                                      eV
gap    HOMO-LUMO gap                                    eV
r2     electronic spatial extent                        a0^2 (bohr^2)
zpve   zero-point vibrational energy                    eV
U0     internal energy at 0 K                           eV
U      internal energy at 298.15 K                      eV
H      enthalpy at 298.15 K                             eV
G      free energy at 298.15 K                          eV
Cv     heat capacity at 298.15 K                        cal/(mol K)
====== =============================================== ============

Properties are kept in float32 (as ``y`` always is); total energies of ~ -10^4 eV then keep a
resolution of about 1 meV.

The EDM split
-------------
:func:`edm_split_indices` reproduces the split of EDM (Hoogeboom et al. 2022), taken from
Cormorant: over the 130,831 molecules in GDB-index order, ``np.random.seed(0)``,
``perm = np.random.permutation(130831)``; train = ``perm[:100000]``, valid =
``perm[100000:117748]``, test = ``perm[117748:]`` (Ntest = int(0.1 n) = 13,083,
Nvalid = n - 100,000 - 13,083 = 17,748). Indices are positions in qm9pack row order.
"""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from torch_geometric.data import Data

from molgen.data.readers.base import ReadPolicy, open_binary, read_text
from molgen.data.record import RecordError, make_record
from molgen.elements import SYMBOLS, UnknownElementError, atomic_number
from molgen.errors import InputError, MissingDependencyError

HARTREE_TO_EV = 27.211386246  # CODATA 2018


@dataclass(frozen=True)
class QM9Property:
    """One of the 12 standard QM9 properties.

    ``unit`` is the unit molgen stores; ``factor`` converts the value as QM9 publishes it
    (``raw_unit``) into ``unit``; ``qm9pack_column`` names the qm9pack CSV column.
    """

    name: str
    description: str
    unit: str
    raw_unit: str
    factor: float
    qm9pack_column: str


QM9_PROPERTIES: tuple[QM9Property, ...] = (
    QM9Property("mu", "dipole moment", "D", "D", 1.0, "Dipole_debye"),
    QM9Property("alpha", "isotropic polarizability", "bohr^3", "bohr^3", 1.0, "Polarizability_bohr3"),
    QM9Property("homo", "HOMO energy", "eV", "Ha", HARTREE_TO_EV, "HOMO_au"),
    QM9Property("lumo", "LUMO energy", "eV", "Ha", HARTREE_TO_EV, "LUMO_au"),
    QM9Property("gap", "HOMO-LUMO gap", "eV", "Ha", HARTREE_TO_EV, "HOMO_LUMO_gap_au"),
    QM9Property("r2", "electronic spatial extent", "bohr^2", "bohr^2", 1.0, "R2_bohr2"),
    QM9Property("zpve", "zero-point vibrational energy", "eV", "Ha", HARTREE_TO_EV, "ZPVE_au"),
    QM9Property("U0", "internal energy at 0 K", "eV", "Ha", HARTREE_TO_EV, "InternalEnergy_0K_au"),
    QM9Property("U", "internal energy at 298.15 K", "eV", "Ha", HARTREE_TO_EV, "InternalEnergy_298K_au"),
    QM9Property("H", "enthalpy at 298.15 K", "eV", "Ha", HARTREE_TO_EV, "Enthalphy_298K_au"),
    QM9Property("G", "free energy at 298.15 K", "eV", "Ha", HARTREE_TO_EV, "GibbsFreeEnergy_298K_au"),
    QM9Property("Cv", "heat capacity at 298.15 K", "cal/(mol K)", "cal/(mol K)", 1.0, "Heatcapacity_Cv_cal_mol_K"),
)
QM9_PROPERTY_NAMES: tuple[str, ...] = tuple(p.name for p in QM9_PROPERTIES)
QM9_PROPERTY_UNITS: tuple[str, ...] = tuple(p.unit for p in QM9_PROPERTIES)
_FACTORS = np.array([p.factor for p in QM9_PROPERTIES], dtype=np.float64)  # [12]

N_QM9 = 130_831  # molecules in qm9pack / EDM's QM9
QM9PACK_COLUMNS = (
    "XYZ_file", "Index", "SMILES", "InChi", "N_atoms", "Stoichiometry", "Elements", "XYZ_Ang", "Mulliken_pop",
    "Harmonic_Freq_cmi", "RotA_GHz", "RotB_GHz", "RotC_GHz", "Dipole_debye", "Polarizability_bohr3", "HOMO_au",
    "LUMO_au", "HOMO_LUMO_gap_au", "R2_bohr2", "ZPVE_au", "InternalEnergy_0K_au", "InternalEnergy_298K_au",
    "Enthalphy_298K_au", "GibbsFreeEnergy_298K_au", "Heatcapacity_Cv_cal_mol_K",
)
_READER_COLUMNS = ("XYZ_file", "Index", "SMILES", "N_atoms", "Elements", "XYZ_Ang") + tuple(
    p.qm9pack_column for p in QM9_PROPERTIES
)


def convert_raw_properties(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """The 12 properties ``[..., 12]`` in QM9's published units -> molgen's units (eV for energies)."""
    return np.asarray(values, dtype=np.float64) * _FACTORS


# ----------------------------------------------------------------------------------------
# qm9pack
# ----------------------------------------------------------------------------------------
def qm9pack_files() -> list[Path]:
    """The three CSV files of the installed ``qm9pack`` package, in GDB-index order.

    The package is located without importing it (its ``__init__`` needs ``pkg_resources``).
    Raises :class:`MissingDependencyError` when it is not installed.
    """
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("qm9pack", "The full QM9 data set", 'pip install "molgen[qm9]"')
    root = Path(list(spec.submodule_search_locations)[0]) / "data"
    files = [root / f"qm9_part{i}.csv" for i in (1, 2, 3)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise InputError(root, f"qm9pack is installed but lacks {', '.join(missing)}; reinstall it: "
                         'pip install --force-reinstall "molgen[qm9]"')
    return files


def read_qm9pack_csv(path: Path, policy: ReadPolicy) -> Iterator[Data]:
    """Records of a CSV file in the qm9pack layout (also the bundled ``data/qm9/qm9_sample.csv.gz``).

    Each record: positions (Å), atomic numbers, ``y [1, 12]`` (:data:`QM9_PROPERTIES`, molgen
    units), ``name`` = ``gdb_<index>`` (``gdb_1`` for ``dsgdb9nsd_000001.xyz``), ``info`` =
    ``gdb_index`` and ``smiles``. No formal charges (QM9 does not give them) and no bonds.

    A row whose atom list, coordinates, atom count or properties disagree or cannot be read is
    reported naming the row (from 1, header excluded) and its XYZ file name.
    """
    import pandas as pd

    path = Path(path)
    _check_qm9pack_header(path)
    row_number = 0
    try:
        chunks = pd.read_csv(
            path, usecols=list(_READER_COLUMNS), dtype=str, keep_default_na=False, chunksize=5000,
            compression="infer",
        )
        for chunk in chunks:
            for row in chunk.itertuples(index=False):
                row_number += 1
                values = row._asdict()
                label = _row_label(row_number, values.get("XYZ_file", ""))
                try:
                    record = _qm9pack_record(values)
                except (ValueError, RecordError, UnknownElementError) as exc:
                    policy.fail(InputError(path, str(exc), record=label))
                    continue
                yield record
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise InputError(path, f"CSV cannot be parsed after row {row_number}: {exc}") from None


def _check_qm9pack_header(path: Path) -> list[str]:
    from molgen.data.readers.tables import csv_columns

    columns = csv_columns(path)
    missing = [c for c in _READER_COLUMNS if c not in columns]
    if missing:
        raise InputError(path, f"not in the qm9pack layout: missing column(s) {', '.join(missing)}")
    return columns


def _row_label(row_number: int, xyz_file: str) -> str:
    return f"{row_number} ({xyz_file})" if xyz_file else str(row_number)


_NUMBER_LIST_DROP = str.maketrans("", "", "[] \t\n\"'")


def _float_list(text: str, what: str) -> np.ndarray:
    body = text.translate(_NUMBER_LIST_DROP)
    if not body:
        raise ValueError(f"{what} is empty")
    try:
        return np.array([float(v) for v in body.split(",")], dtype=np.float64)
    except ValueError:
        raise ValueError(f"{what} is not a list of numbers: '{text[:60]}'") from None


def _symbol_list(text: str) -> list[str]:
    body = text.translate(_NUMBER_LIST_DROP)
    return body.split(",") if body else []


def _qm9pack_record(values: dict) -> Data:
    symbols = _symbol_list(values["Elements"])
    try:
        n_atoms = int(values["N_atoms"])
    except ValueError:
        raise ValueError(f"N_atoms is not an integer: '{values['N_atoms']}'") from None
    if len(symbols) != n_atoms:
        raise ValueError(f"wrong atom count: N_atoms is {n_atoms} but Elements lists {len(symbols)} atoms")
    numbers = [atomic_number(s) if s.isalpha() else _bad_symbol(s) for s in symbols]
    xyz = _float_list(values["XYZ_Ang"], "XYZ_Ang")
    if xyz.size != 3 * n_atoms:
        raise ValueError(f"wrong atom count: XYZ_Ang holds {xyz.size} numbers, expected 3 x {n_atoms}")
    raw = []
    for prop in QM9_PROPERTIES:
        text = values[prop.qm9pack_column]
        try:
            raw.append(float(text))
        except ValueError:
            raise ValueError(f"property {prop.qm9pack_column} is not a number: '{text}'") from None
    props = convert_raw_properties(raw)
    if not np.isfinite(props).all():
        bad = QM9_PROPERTIES[int(np.flatnonzero(~np.isfinite(props))[0])].qm9pack_column
        raise ValueError(f"property {bad} is not finite")
    try:
        gdb_index = int(values["Index"])
    except ValueError:
        raise ValueError(f"Index is not an integer: '{values['Index']}'") from None
    return make_record(
        xyz.reshape(n_atoms, 3), numbers, properties=props, name=f"gdb_{gdb_index}",
        info={"gdb_index": gdb_index, "smiles": values["SMILES"]},
    )


def _bad_symbol(symbol: str) -> int:
    raise UnknownElementError(f"unknown element symbol '{symbol}'")


def iter_qm9pack(policy: ReadPolicy | None = None) -> Iterator[Data]:
    """Records of all 130,831 molecules of the installed qm9pack, one at a time (see :func:`read_qm9pack_csv`).

    For building a dataset, :func:`load_qm9pack_arrays` is much faster.
    """
    policy = policy or ReadPolicy()
    for file in qm9pack_files():
        yield from read_qm9pack_csv(file, policy)


@dataclass
class QM9Arrays:
    """QM9 molecules as flat arrays, ready to be packed into a dataset.

    Attributes
    ----------
    positions : ``[n_atoms_total, 3]`` float32, Å, molecules one after the other.
    atomic_numbers : ``[n_atoms_total]`` int8.
    sizes : ``[n_molecules]`` int64, atoms per molecule (offsets: ``np.concatenate([[0], np.cumsum(sizes)])``).
    properties : ``[n_molecules, 12]`` float32, :data:`QM9_PROPERTIES` in molgen units.
    gdb_index : ``[n_molecules]`` int64, the QM9 (GDB) index of each molecule, 1-based.
    smiles : ``n_molecules`` SMILES strings as given by the source.
    property_names / property_units : names and units of the ``properties`` columns.
    """

    positions: np.ndarray
    atomic_numbers: np.ndarray
    sizes: np.ndarray
    properties: np.ndarray
    gdb_index: np.ndarray
    smiles: list[str]
    property_names: tuple[str, ...] = field(default=QM9_PROPERTY_NAMES)
    property_units: tuple[str, ...] = field(default=QM9_PROPERTY_UNITS)

    def __len__(self) -> int:
        return len(self.sizes)

    @property
    def offsets(self) -> np.ndarray:
        """``[n_molecules + 1]`` start of each molecule in the flat atom arrays."""
        return np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)


def load_qm9pack_arrays(paths: Sequence[str | Path] | None = None) -> QM9Arrays:
    """All molecules of qm9pack (default: the installed package's three files) as flat arrays.

    Parsing is vectorised over whole columns, so the 130,831 molecules load in seconds rather
    than minutes; ``paths`` may also name other files in the qm9pack layout (gzip allowed),
    such as the bundled ``data/qm9/qm9_sample.csv.gz``. Any inconsistency (atom counts,
    unreadable numbers, unknown elements) raises :class:`InputError` naming the file and row.
    """
    files = [Path(p) for p in paths] if paths is not None else qm9pack_files()
    parts = [_load_qm9pack_file(f) for f in files]
    if not parts:
        raise InputError(None, "no qm9pack files given")
    return QM9Arrays(
        positions=np.concatenate([p.positions for p in parts]),
        atomic_numbers=np.concatenate([p.atomic_numbers for p in parts]),
        sizes=np.concatenate([p.sizes for p in parts]),
        properties=np.concatenate([p.properties for p in parts]),
        gdb_index=np.concatenate([p.gdb_index for p in parts]),
        smiles=[s for p in parts for s in p.smiles],
    )


_Z_OF_SYMBOL = {s: z for z, s in enumerate(SYMBOLS) if z > 0}


def _load_qm9pack_file(path: Path) -> QM9Arrays:
    import pandas as pd

    _check_qm9pack_header(path)
    prop_columns = [p.qm9pack_column for p in QM9_PROPERTIES]
    try:
        table = pd.read_csv(
            path, usecols=list(_READER_COLUMNS), compression="infer", keep_default_na=False,
            dtype={"XYZ_file": str, "SMILES": str, "Elements": str, "XYZ_Ang": str, "N_atoms": str, "Index": str},
        )
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError, ValueError) as exc:
        raise InputError(path, f"CSV cannot be parsed: {exc}") from None

    def row_error(row: int, message: str) -> InputError:
        return InputError(path, message, record=_row_label(row + 1, str(table["XYZ_file"].iloc[row])))

    for column in ("N_atoms", "Index"):
        numeric = pd.to_numeric(table[column], errors="coerce")
        if numeric.isna().any():
            row = int(np.flatnonzero(numeric.isna().to_numpy())[0])
            raise row_error(row, f"{column} is not an integer: '{table[column].iloc[row]}'")
        table[column] = numeric.astype(np.int64)
    sizes = table["N_atoms"].to_numpy(np.int64)  # [n_mol]
    if (sizes < 1).any():
        raise row_error(int(np.flatnonzero(sizes < 1)[0]), "N_atoms must be at least 1")

    # element symbols: one split over the whole column
    n_symbols = table["Elements"].str.count(",").to_numpy() + 1
    if (n_symbols != sizes).any():
        row = int(np.flatnonzero(n_symbols != sizes)[0])
        raise row_error(row, f"wrong atom count: N_atoms is {sizes[row]} but Elements lists {n_symbols[row]} atoms")
    symbols = ",".join(table["Elements"]).translate(_NUMBER_LIST_DROP).split(",")
    unique, inverse = np.unique(np.asarray(symbols), return_inverse=True)
    lookup = np.array([_Z_OF_SYMBOL.get(s, 0) for s in unique], dtype=np.int64)
    if (lookup == 0).any():
        bad = str(unique[int(np.flatnonzero(lookup == 0)[0])])
        atom = int(np.flatnonzero(np.asarray(symbols) == bad)[0])
        raise row_error(int(np.searchsorted(np.cumsum(sizes), atom, side="right")), f"unknown element symbol '{bad}'")
    numbers = lookup[inverse].astype(np.int8)  # [n_atoms_total]

    # coordinates: one parse over the whole column
    n_numbers = table["XYZ_Ang"].str.count(",").to_numpy() + 1
    if (n_numbers != 3 * sizes).any():
        row = int(np.flatnonzero(n_numbers != 3 * sizes)[0])
        raise row_error(row, f"wrong atom count: XYZ_Ang holds {n_numbers[row]} numbers, expected 3 x {sizes[row]}")
    text = ",".join(table["XYZ_Ang"]).translate(_NUMBER_LIST_DROP)
    try:
        coords = np.array(text.split(","), dtype=np.float64)
    except ValueError:
        for row, cell in enumerate(table["XYZ_Ang"]):  # find the row to name
            try:
                _float_list(cell, "XYZ_Ang")
            except ValueError as exc:
                raise row_error(row, str(exc)) from None
        raise InputError(path, "XYZ_Ang column holds unreadable numbers") from None
    positions = coords.reshape(-1, 3)
    if not np.isfinite(positions).all():
        atom = int(np.flatnonzero(~np.isfinite(positions).all(axis=1))[0])
        raise row_error(int(np.searchsorted(np.cumsum(sizes), atom, side="right")), "non-finite coordinate")

    raw = table[prop_columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)  # [n_mol, 12]
    if not np.isfinite(raw).all():
        row, col = (int(v[0]) for v in np.nonzero(~np.isfinite(raw)))
        raise row_error(row, f"property {prop_columns[col]} is not a finite number: '{table[prop_columns[col]].iloc[row]}'")
    return QM9Arrays(
        positions=positions.astype(np.float32),
        atomic_numbers=numbers,
        sizes=sizes,
        properties=convert_raw_properties(raw).astype(np.float32),
        gdb_index=table["Index"].to_numpy(np.int64),
        smiles=table["SMILES"].tolist(),
    )


def edm_split_indices(n: int = N_QM9) -> dict[str, np.ndarray]:
    """EDM's (Cormorant's) QM9 split: positions into the molecule order (qm9pack rows).

    ``np.random.seed(0); perm = np.random.permutation(n)``; with ``n_test = int(0.1 n)`` and
    ``n_valid = n - 100000 - n_test``: train = ``perm[:100000]``, valid = the next ``n_valid``,
    test = the last ``n_test``. For ``n = 130831``: 100,000 / 17,748 / 13,083. The global NumPy
    random state is left as it was.

    >>> {k: len(v) for k, v in edm_split_indices().items()}
    {'train': 100000, 'valid': 17748, 'test': 13083}
    """
    n_train = 100_000
    n_test = int(0.1 * n)
    n_valid = n - n_train - n_test
    if n_valid < 0:
        raise ValueError(f"EDM's split needs more than {n_train + n_test} molecules, got {n}")
    perm = np.random.RandomState(0).permutation(n)  # identical stream to np.random.seed(0); permutation(n)
    return {
        "train": perm[:n_train],
        "valid": perm[n_train : n_train + n_valid],
        "test": perm[n_train + n_valid : n_train + n_valid + n_test],
    }


# ----------------------------------------------------------------------------------------
# raw dsgdb9nsd_*.xyz
# ----------------------------------------------------------------------------------------
_RAW_PROPERTY_ORDER = ("A", "B", "C", "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv")


def _qm9_float(text: str) -> float:
    """A number of the raw files, which may use Mathematica's ``*^`` exponent (``1.2*^-6``)."""
    return float(text.replace("*^", "e"))


def read_qm9_raw_xyz(path: Path, policy: ReadPolicy) -> Iterator[Data]:
    """The one molecule of a raw QM9 ``dsgdb9nsd_NNNNNN.xyz`` file.

    Layout: atom count; ``gdb <index>`` and 15 numbers (rotational constants A, B, C in GHz,
    then mu, alpha, homo, lumo, gap, r2, zpve, U0, U, H, G, Cv in QM9's units); one line per
    atom ``symbol x y z mulliken_charge``; harmonic frequencies; GDB-17 and relaxed SMILES;
    InChI strings. Numbers may use Mathematica's ``*^`` exponent.

    The record: positions (Å), atomic numbers, ``y [1, 12]`` in molgen units (as
    :func:`read_qm9pack_csv`), ``name`` = ``gdb_<index>``, ``info`` = ``gdb_index``,
    ``smiles``, ``smiles_relaxed``, ``inchi``, ``rotational_constants_ghz`` and
    ``mulliken_charges``.
    """
    path = Path(path)
    lines = read_text(path).splitlines()
    name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    name = name[:-4] if name.lower().endswith(".xyz") else name
    try:
        record = _raw_record(lines)
    except (ValueError, RecordError) as exc:
        policy.fail(InputError(path, str(exc), record=name))
        return
    yield record


def _raw_record(lines: list[str]) -> Data:
    if len(lines) < 2:
        raise ValueError("truncated raw QM9 file: it ends before the property line")
    try:
        n_atoms = int(lines[0].strip())
    except ValueError:
        raise ValueError(f"first line should be the atom count, found '{lines[0].strip()[:40]}'") from None
    fields = lines[1].split()
    if len(fields) != 17 or fields[0] != "gdb":
        raise ValueError(f"property line should be 'gdb <index>' and 15 numbers, found {len(fields)} fields")
    try:
        gdb_index = int(fields[1])
        raw = [_qm9_float(v) for v in fields[2:]]
    except ValueError:
        raise ValueError(f"property line holds a value that is not a number: '{lines[1].strip()[:80]}'") from None
    values = dict(zip(_RAW_PROPERTY_ORDER, raw))
    props = convert_raw_properties([values[p.name] for p in QM9_PROPERTIES])
    atom_lines = lines[2 : 2 + n_atoms]
    if len(atom_lines) < n_atoms:
        raise ValueError(f"truncated raw QM9 file: atom count is {n_atoms} but only {len(atom_lines)} atom lines follow")
    numbers, positions, mulliken = [], [], []
    for i, line in enumerate(atom_lines, start=1):
        atom = line.split()
        if len(atom) != 5:
            raise ValueError(f"atom line {i} should hold 'symbol x y z charge', found '{line.strip()[:60]}'")
        try:
            numbers.append(atomic_number(atom[0]))
        except UnknownElementError:
            raise ValueError(f"unknown element symbol '{atom[0]}' on atom {i}") from None
        try:
            xyz = [_qm9_float(v) for v in atom[1:4]]
            mulliken.append(_qm9_float(atom[4]))
        except ValueError:
            raise ValueError(f"atom {i} has unreadable numbers: '{line.strip()[:60]}'") from None
        if not all(math.isfinite(v) for v in xyz):
            raise ValueError(f"atom {i} has a non-finite coordinate {xyz}")
        positions.append(xyz)
    tail = lines[2 + n_atoms :]
    if len(tail) < 3:
        raise ValueError("truncated raw QM9 file: frequency, SMILES or InChI line missing after the atoms")
    smiles = tail[1].split()
    inchi = tail[2].split()
    info = {
        "gdb_index": gdb_index,
        "smiles": smiles[0] if smiles else "",
        "smiles_relaxed": smiles[-1] if smiles else "",
        "inchi": inchi[0] if inchi else "",
        "rotational_constants_ghz": [values["A"], values["B"], values["C"]],
        "mulliken_charges": mulliken,
    }
    return make_record(positions, numbers, properties=props, name=f"gdb_{gdb_index}", info=info)


# ----------------------------------------------------------------------------------------
# EDM npz
# ----------------------------------------------------------------------------------------
EDM_ENERGY_UNITS = ("Ha", "eV")


def read_edm_npz(path: Path, policy: ReadPolicy, energy_unit: str = "Ha") -> Iterator[Data]:
    """Records of an npz file in EDM's (Cormorant's) padded QM9 layout.

    Arrays: ``positions [n_mol, max_atoms, 3]`` (Å), ``charges [n_mol, max_atoms]`` (atomic
    numbers, 0 = padding), ``num_atoms [n_mol]`` and any of the property arrays ``[n_mol]``
    named as in :data:`QM9_PROPERTY_NAMES`. EDM's files hold the properties in QM9's
    published units (energies in Hartree; EDM converts them when it loads them), so by
    default energies are converted Ha -> eV; pass ``energy_unit="eV"`` for files already in eV.

    ``y`` holds the properties present, in :data:`QM9_PROPERTY_NAMES` order; when some are
    absent, ``info['property_names']`` names the columns. ``name`` is ``<file stem>_<row>``
    (rows from 0, as in the arrays), or ``gdb_<index>`` when an ``index`` array is present.
    """
    path = Path(path)
    if energy_unit not in EDM_ENERGY_UNITS:
        raise ValueError(f"energy_unit must be one of {EDM_ENERGY_UNITS}, got '{energy_unit}'")
    try:
        with open_binary(path) as handle, np.load(handle, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(path, f"not a readable npz file (pickled object arrays are refused): {exc}") from None
    missing = [key for key in ("positions", "charges", "num_atoms") if key not in arrays]
    if missing:
        raise InputError(path, f"not in EDM's npz layout: missing array(s) {', '.join(missing)} "
                               f"(found {', '.join(sorted(arrays)) or 'none'})")
    positions, charges, num_atoms = arrays["positions"], arrays["charges"], arrays["num_atoms"]
    n_mol = len(num_atoms)
    if positions.ndim != 3 or positions.shape[2] != 3 or positions.shape[0] != n_mol:
        raise InputError(path, f"positions must be [n_mol={n_mol}, max_atoms, 3], got {list(positions.shape)}")
    if charges.shape != positions.shape[:2]:
        raise InputError(path, f"charges must be [n_mol, max_atoms] = {list(positions.shape[:2])}, got {list(charges.shape)}")
    names = [p for p in QM9_PROPERTY_NAMES if p in arrays]
    factors = np.array([QM9_PROPERTIES[QM9_PROPERTY_NAMES.index(p)].factor for p in names], dtype=np.float64)
    if energy_unit == "eV":
        factors = np.ones_like(factors)
    table = None
    if names:
        bad = [p for p in names if arrays[p].shape != (n_mol,)]
        if bad:
            raise InputError(path, f"property array(s) {', '.join(bad)} must have shape [{n_mol}]")
        table = np.stack([arrays[p].astype(np.float64) for p in names], axis=1) * factors  # [n_mol, n_props]
    info_names = {"property_names": names} if names and len(names) < len(QM9_PROPERTY_NAMES) else {}
    index = arrays.get("index")
    stem = path.name.split(".")[0]
    for row in range(n_mol):
        name = f"gdb_{int(index[row])}" if index is not None and index.shape == (n_mol,) else f"{stem}_{row}"
        n = int(num_atoms[row])
        z = charges[row].astype(np.int64)
        if not 1 <= n <= positions.shape[1]:
            policy.fail(InputError(path, f"num_atoms is {n}, outside 1..{positions.shape[1]}", record=row))
            continue
        if (z[:n] <= 0).any() or (z[n:] != 0).any():
            policy.fail(InputError(
                path, f"wrong atom count: num_atoms is {n} but charges has {int((z > 0).sum())} atoms "
                      "(atomic numbers first, then zero padding)", record=row,
            ))
            continue
        try:
            record = make_record(
                positions[row, :n], z[:n], properties=None if table is None else table[row], name=name,
                info=dict(info_names) if info_names else None,
            )
        except RecordError as exc:
            policy.fail(InputError(path, str(exc), record=row))
            continue
        yield record


__all__ = [
    "HARTREE_TO_EV", "QM9Property", "QM9_PROPERTIES", "QM9_PROPERTY_NAMES", "QM9_PROPERTY_UNITS", "N_QM9",
    "QM9Arrays", "convert_raw_properties", "edm_split_indices", "iter_qm9pack", "load_qm9pack_arrays",
    "qm9pack_files", "read_edm_npz", "read_qm9_raw_xyz", "read_qm9pack_csv",
]
