"""Validation protocols for molecules: where bonds come from, which valences count as stable, how validity is judged.

Every figure molgen reports names its protocol, because published numbers are not comparable across them:

``edm``
    Exactly EDM's QM9 evaluation (ehoogeboom/e3_diffusion_for_molecules, ``qm9/analyze.py`` and
    ``qm9/rdkit_functions.py``): bond orders from distances with EDM's tables (:mod:`.bonds`), an atom is
    stable when its summed bond order equals EDM's allowed value (H 1, C 4, N 3, O 2, F 1, ...; no charges),
    validity is RDKit sanitization of a molecule built from the same bonds (implicit hydrogens allowed,
    formal charges ignored), the SMILES kept is that of the largest fragment.
``edm-geom``
    EDM's GEOM-drugs variant: the same stability, but validity is judged on a molecule built with every
    perceived bond as a single bond (EDM's ``limit_bonds_to_one=True``).
``charged``
    Charge-aware: bonds as given in the file (SDF) when present, otherwise from the EDM distance tables
    (``--bonds`` chooses: ``edm``, ``file``, ``rdkit`` or ``auto``); an atom is stable when its summed bond
    order is allowed for its formal charge (:data:`CHARGED_VALENCES`). When the input carries no formal
    charges, an atom is stable if its valence is allowed for charge 0 or for one of the listed charged states,
    a molecule is stable only if those implied charges can be chosen to sum to zero (generated molecules are
    taken as neutral: a lone three-bonded carbon is not a stable molecule, a nitro group N+/O- is), and
    validity places those charges (e.g. a four-bonded N becomes N+). Validity: RDKit sanitization with
    the formal charges, largest-fragment SMILES. Looser than ``edm``: always report which one a figure uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from molgen.validation.bonds import EDM_ALLOWED_BONDS

# Allowed summed bond orders per element and formal charge for the ``charged`` protocol. Neutral values
# are the common valences of the element (those RDKit's periodic table also allows); charged states are
# the usual ones of organic chemistry (ammonium/nitro N+, oxonium O+, alkoxide O-, amide N-, carbanion/
# carbocation, borate B-, sulfonium S+, phosphonium P+).
CHARGED_VALENCES: dict[str, dict[int, tuple[int, ...]]] = {
    "H": {0: (1,)},
    "B": {0: (3,), -1: (4,)},
    "C": {0: (4,), 1: (3,), -1: (3,)},
    "N": {0: (3,), 1: (4,), -1: (2,)},
    "O": {0: (2,), 1: (3,), -1: (1,)},
    "F": {0: (1,)},
    "Al": {0: (3,), -1: (4,)},
    "Si": {0: (4,)},
    "P": {0: (3, 5), 1: (4,), -1: (2,)},
    "S": {0: (2, 4, 6), 1: (3,), -1: (1,)},
    "Cl": {0: (1,)},
    "As": {0: (3, 5), 1: (4,)},
    "Se": {0: (2, 4, 6)},
    "Br": {0: (1,)},
    "I": {0: (1, 3, 5)},
    "Hg": {0: (1, 2)},
    "Bi": {0: (3, 5)},
}

PROTOCOL_NAMES = ("edm", "edm-geom", "charged")
BOND_SOURCES = ("auto", "edm", "file", "rdkit")


@dataclass(frozen=True)
class Protocol:
    """How bonds are perceived and atoms and molecules are judged.

    Attributes
    ----------
    name : ``edm``, ``edm-geom`` or ``charged``.
    bonds : where bonds come from: ``edm`` (distance tables), ``file`` (bonds in the input; structures
        without them fail), ``rdkit`` (rdDetermineBonds with the total charge, capped in time) or ``auto``
        (file bonds when present, else ``edm``).
    single_bonds_for_validity : build the RDKit molecule with all bonds single (EDM's GEOM setting).
    use_charges : place formal charges on the RDKit atoms and judge valences per charge.
    """

    name: str
    bonds: str = "edm"
    single_bonds_for_validity: bool = False
    use_charges: bool = False

    def allowed(self, symbol: str, charge: int | None) -> tuple[int, ...]:
        """Allowed summed bond orders of an atom (empty: never stable)."""
        if not self.use_charges:
            value = EDM_ALLOWED_BONDS.get(symbol)
            if value is None:
                return ()
            return (value,) if isinstance(value, int) else tuple(value)
        states = CHARGED_VALENCES.get(symbol, {})
        if charge is None:
            return tuple(sorted({v for values in states.values() for v in values}))
        return states.get(int(charge), ())

    def charge_options(self, symbol: str, valence: float) -> tuple[int, ...]:
        """Formal charges under which ``valence`` is allowed for ``symbol`` (``charged`` protocol; empty: none)."""
        rounded = int(round(valence))
        if abs(valence - rounded) > 1e-6:
            return ()
        return tuple(sorted(c for c, values in CHARGED_VALENCES.get(symbol, {}).items() if rounded in values))

    def implied_charge(self, symbol: str, valence: float) -> int:
        """Charge that makes ``valence`` allowed when the input has no charges (0 if neutral works or nothing does;
        the first listed state in :data:`CHARGED_VALENCES` when several do)."""
        options = self.charge_options(symbol, valence)
        if not options or 0 in options:
            return 0
        return next(charge for charge in CHARGED_VALENCES[symbol] if charge in options)


def charges_can_sum_to(options: list[tuple[int, ...]], total: int = 0) -> bool:
    """Whether one charge per atom, each from its ``options``, can add up to ``total``.

    An atom with no options (unstable whatever its charge) counts as neutral here; its instability is judged
    elsewhere. Exact: the set of reachable sums is built atom by atom.
    """
    reachable = {0}
    for choices in options:
        choices = choices or (0,)
        reachable = {r + c for r in reachable for c in choices}
    return total in reachable


def get_protocol(name: str, bonds: str | None = None) -> Protocol:
    """The protocol called ``name``; ``bonds`` overrides the bond source of ``charged`` only.

    The EDM protocols always perceive bonds from distances: any other choice would not be EDM's figure.
    """
    from molgen.errors import ConfigError

    if name not in PROTOCOL_NAMES:
        raise ConfigError(f"unknown protocol '{name}'; choose one of {', '.join(PROTOCOL_NAMES)}")
    if bonds is not None and bonds not in BOND_SOURCES:
        raise ConfigError(f"unknown bond source '{bonds}'; choose one of {', '.join(BOND_SOURCES)}")
    if name == "edm":
        if bonds not in (None, "edm"):
            raise ConfigError("--protocol edm perceives bonds from distances only; use --protocol charged with --bonds")
        return Protocol("edm")
    if name == "edm-geom":
        if bonds not in (None, "edm"):
            raise ConfigError("--protocol edm-geom perceives bonds from distances only")
        return Protocol("edm-geom", single_bonds_for_validity=True)
    return Protocol("charged", bonds=bonds or "auto", use_charges=True)
