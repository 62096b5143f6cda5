"""Write the protein atoms of a complex (pocket) record as a PDB file for PyMOL / VMD / RDKit."""

from __future__ import annotations

import os
from pathlib import Path

from torch_geometric.data import Data

from molgen import keys as K
from molgen.elements import symbol


def pocket_residues(record: Data) -> list[str]:
    """``chain:RES number`` of every pocket residue, in file order (e.g. ``A:LEU 36``)."""
    protein = record[K.INFO]["protein"]
    seen: dict[str, None] = {}
    for chain, name, number, icode in zip(
        protein["chain_ids"], protein["residue_names"], protein["residue_numbers"], protein["insertion_codes"]
    ):
        seen[f"{chain}:{name} {number}{icode}"] = None
    return list(seen)


def encode_pocket_pdb(record: Data) -> str:
    """PDB text (ATOM/HETATM records, then END) of the protein atoms of a complex record."""
    protein = record[K.INFO]["protein"]
    mask = record[K.IS_PROTEIN]
    positions = record[K.POS][mask].double().tolist()
    numbers = record[K.ATOMIC_NUMBERS][mask].tolist()
    lines = []
    for serial, ((x, y, z), number, atom, res, resnum, icode, chain, het) in enumerate(
        zip(positions, numbers, protein["atom_names"], protein["residue_names"], protein["residue_numbers"],
            protein["insertion_codes"], protein["chain_ids"], protein["hetero"]),
        start=1,
    ):
        element = symbol(number).upper()
        name = atom if len(atom) >= 4 or len(element) == 2 else f" {atom}"
        record_name = "HETATM" if het else "ATOM  "
        lines.append(
            f"{record_name}{serial % 100000:5d} {name:<4} {res:>3} {chain[:1] or ' '}{int(resnum) % 10000:4d}"
            f"{(icode or ' ')[:1]}   {x:8.3f}{y:8.3f}{z:8.3f}{1.0:6.2f}{0.0:6.2f}          {element:>2}"
        )
    lines.append("END")
    return "\n".join(lines) + "\n"


def write_pocket_pdb(record: Data, path: str | Path) -> None:
    """Write :func:`encode_pocket_pdb` atomically to ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(encode_pocket_pdb(record))
    os.replace(tmp, path)
