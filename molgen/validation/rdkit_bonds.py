"""Bond perception with RDKit's ``rdDetermineBonds.DetermineBonds``, capped in time.

``DetermineBonds`` (connectivity from distances, then bond orders and formal charges from the total charge)
needs explicit hydrogens and the right total charge, and it can run for minutes or hang on some inputs
(nitro- or phosphate-rich molecules). It therefore runs in worker processes: each request gets ``timeout``
seconds, after which the worker is killed, the molecule is reported as a failure ("timed out") and a fresh
worker takes the next molecule. The total charge is the sum of the formal charges when the input has them,
else 0.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass
class DeterminedBonds:
    """Bonds from rdDetermineBonds: ``pairs [n_bonds, 2]`` (i < j), SDF ``codes [n_bonds]``, ``charges [n_atoms]``."""

    pairs: np.ndarray
    codes: np.ndarray
    charges: np.ndarray | None
    error: str | None = None


def _determine(z: list[int], pos: list[list[float]], charge: int) -> tuple:
    """In the worker: (pairs, codes, charges) or ('error', message)."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdDetermineBonds

    RDLogger.DisableLog("rdApp.*")
    lines = [str(len(z)), ""] + [
        f"{Chem.GetPeriodicTable().GetElementSymbol(int(n))} {x:.6f} {y:.6f} {w:.6f}" for n, (x, y, w) in zip(z, pos)
    ]
    mol = Chem.MolFromXYZBlock("\n".join(lines) + "\n")
    if mol is None:
        return ("error", "RDKit cannot read the atoms")
    try:
        rdDetermineBonds.DetermineBonds(mol, charge=int(charge))
    except (ValueError, RuntimeError) as exc:
        return ("error", f"rdDetermineBonds failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    codes = {Chem.BondType.SINGLE: 1, Chem.BondType.DOUBLE: 2, Chem.BondType.TRIPLE: 3, Chem.BondType.AROMATIC: 4}
    pairs, types = [], []
    for bond in mol.GetBonds():
        i, j = sorted((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()))
        pairs.append((i, j))
        types.append(codes.get(bond.GetBondType(), 1))
    charges = [a.GetFormalCharge() for a in mol.GetAtoms()]
    return (pairs, types, charges)


def _serve(connection) -> None:
    while True:
        try:
            request = connection.recv()
        except EOFError:
            return
        if request is None:
            return
        try:
            connection.send(_determine(*request))
        except Exception as exc:  # report, never die silently
            connection.send(("error", f"rdDetermineBonds failed: {exc}"))


class _Lane:
    """One worker process; restarted after a timeout."""

    def __init__(self) -> None:
        methods = multiprocessing.get_all_start_methods()
        self._context = multiprocessing.get_context("fork" if "fork" in methods else None)
        self._process = None
        self._conn = None

    def _start(self) -> None:
        parent, child = self._context.Pipe()
        self._process = self._context.Process(target=_serve, args=(child,), daemon=True)
        self._process.start()
        child.close()
        self._conn = parent

    def run(self, request: tuple, timeout: float) -> tuple:
        if self._process is None or not self._process.is_alive():
            self._start()
        self._conn.send(request)
        if self._conn.poll(timeout):
            try:
                return self._conn.recv()
            except EOFError:
                self._stop()
                return ("error", "rdDetermineBonds worker crashed")
        self._stop()
        return ("error", f"rdDetermineBonds timed out after {timeout:g} s")

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join()
        self._process = None
        self._conn = None

    def close(self) -> None:
        if self._process is not None and self._process.is_alive():
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self._process.join(timeout=2)
        self._stop()


def determine_bonds_many(molecules: Sequence, timeout: float = 10.0, workers: int | None = None) -> list[DeterminedBonds]:
    """rdDetermineBonds for each molecule (objects with ``z``, ``pos``, ``charges``), ``timeout`` s each."""
    from molgen.validation.rdkit_validity import default_workers

    workers = max(1, min(default_workers() if workers is None else workers, len(molecules) or 1))
    lanes = [_Lane() for _ in range(workers)]
    free = list(lanes)
    lock = threading.Lock()

    def one(molecule) -> DeterminedBonds:
        charge = int(np.sum(molecule.charges)) if molecule.charges is not None else 0
        request = (np.asarray(molecule.z).tolist(), np.asarray(molecule.pos, dtype=np.float64).tolist(), charge)
        with lock:
            lane = free.pop()
        try:
            answer = lane.run(request, timeout)
        finally:
            with lock:
                free.append(lane)
        if answer[0] == "error":
            return DeterminedBonds(np.zeros((0, 2), np.int64), np.zeros(0, np.int64), None, answer[1])
        pairs, codes, charges = answer
        return DeterminedBonds(np.asarray(pairs, dtype=np.int64).reshape(-1, 2), np.asarray(codes, dtype=np.int64),
                               np.asarray(charges, dtype=np.int64))

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, molecules))
    finally:
        for lane in lanes:
            lane.close()
