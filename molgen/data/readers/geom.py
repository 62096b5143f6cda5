"""GEOM-drugs (and GEOM-QM9) in the standard pickled RDKit-conformer layout.

The GEOM ``rdkit_folder`` release holds one pickle per molecule (``drugs/<smiles>.pickle``),
each a dict with the molecule's ``smiles``, ``charge``, ``uniqueconfs``, ensemble
energies, ... and ``conformers``: a list of dicts, each with an RDKit molecule ``rd_mol``
(explicit hydrogens, bonds, one 3D conformer), ``boltzmannweight``, ``totalenergy``
(Hartree), ``relativeenergy`` (kcal/mol), ``degeneracy`` and ``geom_id``. A
``summary_drugs.json`` maps each SMILES to its ``pickle_path`` and the same summary numbers.

Security: a pickle can run arbitrary code when it is loaded. GEOM is only distributed as
pickles, so these files must come from a source you trust. As a second line of defence this
reader refuses any pickle that refers to something other than the plain containers,
numbers, strings, RDKit molecules and NumPy scalars/arrays the GEOM layout consists of.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any, Iterator

from torch_geometric.data import Data

from molgen import keys as K
from molgen.data.readers.base import ReadPolicy, open_binary, read_text
from molgen.data.record import RecordError
from molgen.errors import InputError

# None = every conformer; an integer k = the k conformers of highest Boltzmann weight.
# read_geom_pickle (the reader chosen for .pickle/.pkl files) uses this module-level default.
DEFAULT_MAX_CONFORMERS: int | None = None

# the only globals a GEOM pickle needs: RDKit molecules and NumPy numbers/arrays
_ALLOWED_GLOBALS = {
    ("rdkit.Chem.rdchem", "Mol"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("collections", "OrderedDict"),
}
# per-conformer metadata kept in info
_CONFORMER_KEYS = ("geom_id", "boltzmannweight", "totalenergy", "relativeenergy", "degeneracy", "set")


class _RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a class or function outside the GEOM layout."""


class _GeomUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals of the GEOM layout."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise _RefusedGlobal(
            f"the pickle refers to '{module}.{name}', which is not part of the GEOM layout; refusing to load it"
        )


def load_geom_pickle(path: str | Path) -> dict:
    """The dict of one GEOM molecule pickle, loaded with the restricted unpickler.

    Only load files from a source you trust (see the module documentation).
    Raises :class:`InputError` naming the file when it is not a GEOM pickle.
    """
    path = Path(path)
    try:
        with open_binary(path) as handle:
            content = _GeomUnpickler(handle).load()
    except _RefusedGlobal as exc:
        raise InputError(path, f"not a GEOM pickle: {exc}") from None
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, AttributeError, ImportError, IndexError) as exc:
        raise InputError(path, f"not a readable GEOM pickle (truncated or damaged?): {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # RDKit raises its own errors for a damaged molecule inside the pickle
        raise InputError(path, f"a molecule inside the pickle cannot be rebuilt: {exc}") from None
    if not isinstance(content, dict) or not isinstance(content.get("conformers"), list):
        raise InputError(path, "not in the GEOM layout: expected a dict with a 'conformers' list")
    return content


def iter_geom_conformers(
    path: str | Path, max_conformers: int | None = None, policy: ReadPolicy | None = None
) -> Iterator[Data]:
    """One record per conformer of a GEOM molecule pickle.

    Parameters
    ----------
    path : a ``<smiles>.pickle`` file of the GEOM ``rdkit_folder`` layout (gzip allowed).
    max_conformers : keep only this many conformers, those of highest ``boltzmannweight``,
        yielded by decreasing weight (ties in file order); ``None`` keeps all, in file order.
    policy : error handling for bad conformers (default: raise).

    Each record: positions ``[n_atoms, 3]`` (Å), atomic numbers, formal charges and bonds from
    ``rd_mol``; ``name`` = ``<smiles>`` plus the conformer's position in the file
    (``"CCO conformer 3"``, from 0); ``info`` = the molecule's ``smiles``, ``charge`` and the
    conformer's ``geom_id``, ``boltzmannweight``, ``totalenergy`` (Ha), ``relativeenergy``
    (kcal/mol), ``degeneracy`` and ``set`` when present.
    """
    from molgen.data.convert.rdkit_mol import record_from_rdkit

    path = Path(path)
    policy = policy or ReadPolicy()
    if max_conformers is not None and max_conformers < 1:
        raise ValueError(f"max_conformers must be at least 1 or None, got {max_conformers}")
    content = load_geom_pickle(path)
    smiles = str(content.get("smiles", ""))
    conformers = list(enumerate(content["conformers"]))
    if max_conformers is not None:
        conformers = sorted(conformers, key=lambda item: -_weight(item[1]))[:max_conformers]  # stable: ties keep file order
    for position, conformer in conformers:
        label = f"conformer {position}"
        if not isinstance(conformer, dict) or "rd_mol" not in conformer:
            policy.fail(InputError(path, "conformer entry has no 'rd_mol' molecule", record=label))
            continue
        mol = conformer["rd_mol"]
        if mol is None or not hasattr(mol, "GetNumConformers"):
            policy.fail(InputError(path, "'rd_mol' is not an RDKit molecule", record=label))
            continue
        info = {"smiles": smiles}
        if "charge" in content:
            info["charge"] = _plain(content["charge"])
        info.update({key: _plain(conformer[key]) for key in _CONFORMER_KEYS if key in conformer})
        try:
            record = record_from_rdkit(mol, name=f"{smiles} {label}" if smiles else label)
        except (RecordError, ValueError) as exc:
            policy.fail(InputError(path, str(exc), record=label))
            continue
        record[K.INFO] = {**(record[K.INFO] if K.INFO in record else {}), **info}
        yield record


def read_geom_pickle(path: Path, policy: ReadPolicy) -> Iterator[Data]:
    """Reader for ``.pickle`` / ``.pkl`` files: :func:`iter_geom_conformers` with
    :data:`DEFAULT_MAX_CONFORMERS` conformers per molecule (default: all)."""
    yield from iter_geom_conformers(path, DEFAULT_MAX_CONFORMERS, policy)


def read_geom_summary(path: str | Path) -> dict[str, dict]:
    """The ``summary_drugs.json`` (or ``summary_qm9.json``) of a GEOM ``rdkit_folder``: SMILES -> summary."""
    path = Path(path)
    try:
        summary = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON: {exc}") from None
    if not isinstance(summary, dict):
        raise InputError(path, "not a GEOM summary: expected a JSON object mapping SMILES to summaries")
    return summary


def geom_pickle_paths(summary_path: str | Path, root: str | Path | None = None) -> list[Path]:
    """Pickle files listed in a GEOM summary, in the summary's order.

    ``pickle_path`` entries are relative to ``root`` (default: the summary's folder, which in
    the ``rdkit_folder`` release holds ``summary_drugs.json`` beside ``drugs/``). Molecules
    without a ``pickle_path`` (GEOM lists a few without conformers) are left out.
    """
    summary_path = Path(summary_path)
    base = Path(root) if root is not None else summary_path.parent
    return [
        base / entry["pickle_path"]
        for entry in read_geom_summary(summary_path).values()
        if isinstance(entry, dict) and entry.get("pickle_path")
    ]


def _weight(conformer: Any) -> float:
    try:
        return float(conformer.get("boltzmannweight", 0.0))
    except (AttributeError, TypeError, ValueError):
        return 0.0


def _plain(value: Any) -> Any:
    """NumPy scalars -> Python numbers, so info stays JSON-friendly."""
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value


__all__ = [
    "DEFAULT_MAX_CONFORMERS", "geom_pickle_paths", "iter_geom_conformers", "load_geom_pickle",
    "read_geom_pickle", "read_geom_summary",
]
