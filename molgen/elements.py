"""Element symbols, atomic numbers and amino-acid names.

>>> atomic_number("C"), symbol(8)
(6, 'O')
"""

from __future__ import annotations

from ase.data import atomic_masses as _ASE_MASSES
from ase.data import chemical_symbols as _ASE_SYMBOLS

SYMBOLS: tuple[str, ...] = tuple(_ASE_SYMBOLS)  # index = atomic number; SYMBOLS[0] = "X"
MAX_ATOMIC_NUMBER = len(SYMBOLS) - 1
_NUMBER_OF = {s.lower(): i for i, s in enumerate(SYMBOLS) if i > 0}

AMINO_ACIDS: tuple[str, ...] = (
    "ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE",
    "LEU", "LYS", "MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL",
)
BACKBONE_ATOM_NAMES = frozenset({"N", "CA", "C", "O"})


class UnknownElementError(ValueError):
    """A symbol or number that is not a chemical element."""


def atomic_number(symbol_or_number: str | int) -> int:
    """Atomic number of an element symbol (case-insensitive) or a number given as text.

    Raises :class:`UnknownElementError` for anything that is not an element 1..118.
    """
    if isinstance(symbol_or_number, (int,)) and not isinstance(symbol_or_number, bool):
        if 1 <= symbol_or_number <= MAX_ATOMIC_NUMBER:
            return int(symbol_or_number)
        raise UnknownElementError(f"atomic number {symbol_or_number} is not an element (1..{MAX_ATOMIC_NUMBER})")
    text = str(symbol_or_number).strip()
    if text.isdigit():
        return atomic_number(int(text))
    try:
        return _NUMBER_OF[text.lower()]
    except KeyError:
        raise UnknownElementError(f"unknown element symbol '{text}'") from None


def symbol(number: int) -> str:
    """Element symbol of an atomic number 1..118."""
    if not 1 <= int(number) <= MAX_ATOMIC_NUMBER:
        raise UnknownElementError(f"atomic number {number} is not an element (1..{MAX_ATOMIC_NUMBER})")
    return SYMBOLS[int(number)]


def atomic_mass(number: int) -> float:
    """Standard atomic mass in u."""
    return float(_ASE_MASSES[int(number)])


def residue_type_index(residue_name: str) -> int:
    """Index of a three-letter residue name in :data:`AMINO_ACIDS`, or -1 for anything else."""
    try:
        return AMINO_ACIDS.index(residue_name.strip().upper())
    except ValueError:
        return -1
