"""Drug-likeness screening with RDKit: properties, rule filters, structural alerts, deduplication.

Per molecule: QED (Bickerton et al. 2012, ``rdkit.Chem.QED``), SA score (Ertl & Schuffenhauer 2009, the
``sascorer`` RDKit ships in ``Contrib/SA_Score``; 1 easy .. 10 hard), Crippen logP, molecular weight,
H-bond donors / acceptors (Lipinski definitions), rotatable bonds, TPSA, the Lipinski rule-of-five violations
(MW > 500, logP > 5, HBD > 5, HBA > 10), Veber's rule (rotatable bonds <= 10 and TPSA <= 140 Å^2), and the
PAINS (A, B, C) and Brenk structural alerts of RDKit's ``FilterCatalog``. Duplicates are found by canonical
SMILES without hydrogens; the first occurrence is kept.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

from molgen.errors import MissingDependencyError

_SASCORER = None
_CATALOGS: dict[str, Any] = {}


def sa_scorer():
    """RDKit's contributed ``sascorer`` module (``RDConfig.RDContribDir/SA_Score``)."""
    global _SASCORER
    if _SASCORER is None:
        from rdkit import RDConfig

        path = os.path.join(RDConfig.RDContribDir, "SA_Score", "sascorer.py")
        if not os.path.exists(path):
            raise MissingDependencyError("rdkit", "the SA score (RDKit's Contrib/SA_Score/sascorer.py)",
                                         "install an RDKit build that ships Contrib (the PyPI 'rdkit' wheel does)")
        spec = importlib.util.spec_from_file_location("molgen_sascorer", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _SASCORER = module
    return _SASCORER


def _catalog(name: str):
    if name not in _CATALOGS:
        from rdkit.Chem.FilterCatalog import FilterCatalog, FilterCatalogParams

        params = FilterCatalogParams()
        params.AddCatalog(getattr(FilterCatalogParams.FilterCatalogs, name))
        _CATALOGS[name] = FilterCatalog(params)
    return _CATALOGS[name]


def alerts(mol, catalog: str) -> list[str]:
    """Descriptions of the ``PAINS`` or ``BRENK`` alerts a molecule matches."""
    return [entry.GetDescription() for entry in _catalog(catalog).GetMatches(mol)]


def properties(mol) -> dict[str, Any]:
    """Screening properties of a sanitized RDKit molecule (explicit hydrogens allowed)."""
    from rdkit import Chem
    from rdkit.Chem import QED, Crippen, Descriptors, Lipinski, rdMolDescriptors

    heavy = Chem.RemoveHs(mol)  # the molecule is sanitized: this keeps ring and aromaticity information
    logp = Crippen.MolLogP(mol)
    mw = Descriptors.MolWt(mol)
    hbd = Lipinski.NumHDonors(mol)
    hba = Lipinski.NumHAcceptors(mol)
    rotb = rdMolDescriptors.CalcNumRotatableBonds(mol)
    tpsa = rdMolDescriptors.CalcTPSA(mol)
    violations = int(mw > 500) + int(logp > 5) + int(hbd > 5) + int(hba > 10)
    pains = alerts(heavy, "PAINS")
    brenk = alerts(heavy, "BRENK")
    return {
        "smiles": Chem.MolToSmiles(heavy),
        "qed": round(QED.qed(mol), 4),
        "sa_score": round(sa_scorer().calculateScore(heavy), 4),
        "logp": round(logp, 4),
        "mw": round(mw, 3),
        "hbd": hbd,
        "hba": hba,
        "rotatable_bonds": rotb,
        "tpsa": round(tpsa, 2),
        "lipinski_violations": violations,
        "veber": bool(rotb <= 10 and tpsa <= 140),
        "pains": "|".join(pains),
        "brenk": "|".join(brenk),
    }


@dataclass
class ScreenFilters:
    """Thresholds; None means not applied."""

    qed_min: float | None = None
    sa_max: float | None = None
    logp_min: float | None = None
    logp_max: float | None = None
    mw_min: float | None = None
    mw_max: float | None = None
    hbd_max: int | None = None
    hba_max: int | None = None
    rotb_max: int | None = None
    lipinski_max_violations: int | None = None
    veber: bool = False
    reject_pains: bool = False
    reject_brenk: bool = False
    dedup: bool = True

    def reasons(self, p: dict[str, Any]) -> list[str]:
        """Why a molecule with properties ``p`` fails (empty when it passes)."""
        out = []
        checks = (
            (self.qed_min, lambda v: p["qed"] < v, f"QED: {p['qed']:.3f} < {self.qed_min}"),
            (self.sa_max, lambda v: p["sa_score"] > v, f"SA score: {p['sa_score']:.2f} > {self.sa_max}"),
            (self.logp_min, lambda v: p["logp"] < v, f"logP: {p['logp']:.2f} < {self.logp_min}"),
            (self.logp_max, lambda v: p["logp"] > v, f"logP: {p['logp']:.2f} > {self.logp_max}"),
            (self.mw_min, lambda v: p["mw"] < v, f"MW: {p['mw']:.1f} < {self.mw_min}"),
            (self.mw_max, lambda v: p["mw"] > v, f"MW: {p['mw']:.1f} > {self.mw_max}"),
            (self.hbd_max, lambda v: p["hbd"] > v, f"HBD: {p['hbd']} > {self.hbd_max}"),
            (self.hba_max, lambda v: p["hba"] > v, f"HBA: {p['hba']} > {self.hba_max}"),
            (self.rotb_max, lambda v: p["rotatable_bonds"] > v, f"rotatable bonds: {p['rotatable_bonds']} > {self.rotb_max}"),
            (self.lipinski_max_violations, lambda v: p["lipinski_violations"] > v,
             f"Lipinski: {p['lipinski_violations']} violations > {self.lipinski_max_violations}"),
        )
        for threshold, fails, message in checks:
            if threshold is not None and fails(threshold):
                out.append(message)
        if self.veber and not p["veber"]:
            out.append(f"Veber: {p['rotatable_bonds']} rotatable bonds, TPSA {p['tpsa']:.1f}")
        if self.reject_pains and p["pains"]:
            out.append(f"PAINS alert: {p['pains']}")
        if self.reject_brenk and p["brenk"]:
            out.append(f"Brenk alert: {p['brenk']}")
        return out


@dataclass
class ScreenResult:
    rows: list[dict[str, Any]] = field(default_factory=list)  # every molecule, with 'passed' and 'reason'
    passed: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)  # (RDKit mol, properties)


def _properties_chunk(blocks: list[bytes]) -> list[dict[str, Any] | str]:
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    out: list[dict[str, Any] | str] = []
    for block in blocks:
        mol = Chem.Mol(block)
        try:
            out.append(properties(mol))
        except (ValueError, RuntimeError) as exc:
            out.append(f"properties failed: {exc}")
    return out


def screen(mols: Sequence[Any | None], names: Sequence[str], reasons: Sequence[str | None], filters: ScreenFilters,
           workers: int | None = None) -> ScreenResult:
    """Screen sanitized RDKit molecules; ``mols[i]`` None means it could not be built (``reasons[i]`` says why)."""
    from rdkit import Chem

    from molgen.validation.rdkit_validity import default_workers, run_in_pool

    present = [i for i, m in enumerate(mols) if m is not None]
    blocks = [mols[i].ToBinary() for i in present]  # lossless, unlike a mol block
    workers = default_workers() if workers is None else max(1, workers)
    chunks = [blocks[i:i + 200] for i in range(0, len(blocks), 200)]
    if workers > 1 and len(chunks) > 1:
        computed = [p for part in run_in_pool(_properties_chunk, chunks, workers) for p in part]
    else:
        computed = [p for chunk in chunks for p in _properties_chunk(chunk)]
    props: dict[int, dict[str, Any] | str] = dict(zip(present, computed))
    result = ScreenResult()
    seen: dict[str, str] = {}
    for index in range(len(mols)):
        row: dict[str, Any] = {"index": index, "name": names[index]}
        p = props.get(index, reasons[index] or "could not be built")
        if isinstance(p, str):
            row.update({"passed": False, "reason": p})
            result.rows.append(row)
            continue
        row.update(p)
        why = filters.reasons(p)
        if filters.dedup:
            if p["smiles"] in seen:
                why.append(f"duplicate: same SMILES as {seen[p['smiles']]}")
            else:
                seen[p["smiles"]] = names[index]
        row["passed"] = not why
        row["reason"] = "; ".join(why)
        result.rows.append(row)
        if not why:
            result.passed.append((mols[index], p))
    return result


def write_sdf(path: str, passed: Sequence[tuple[Any, dict[str, Any]]]) -> None:
    """Passing molecules with their properties as SD tags."""
    from pathlib import Path

    from rdkit import Chem

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    writer = Chem.SDWriter(str(path))
    try:
        for mol, p in passed:
            mol = Chem.Mol(mol)
            for key, value in p.items():
                if key == "smiles":
                    mol.SetProp("SMILES", str(value))
                elif isinstance(value, bool):
                    mol.SetProp(key, str(value))
                elif isinstance(value, int):
                    mol.SetIntProp(key, value)
                elif isinstance(value, float):
                    mol.SetDoubleProp(key, value)
                elif value:
                    mol.SetProp(key, str(value))
            writer.write(mol)
    finally:
        writer.close()
