"""Records <-> pymatgen Structure (periodic) and Molecule (non-periodic)."""

from __future__ import annotations

import numpy as np
from pymatgen.core import Lattice, Molecule, Structure
from torch_geometric.data import Data

from molgen import keys as K
from molgen.data.record import make_record


def record_from_pymatgen(obj: Structure | Molecule, name: str | None = None) -> Data:
    """Record of a pymatgen Structure (periodic) or Molecule.

    Disordered sites (partial occupancies) are rejected: a record has one element per site.
    Site property ``formal_charge`` (if present) becomes the formal charges.
    """
    if not obj.is_ordered:
        raise ValueError("structure has partially occupied sites; order it first (e.g. OrderDisorderedStructureTransformation)")
    numbers = [site.specie.Z for site in obj]
    charges = obj.site_properties.get("formal_charge")
    if isinstance(obj, Structure):
        lattice = obj.lattice.matrix  # [3, 3] rows
        positions = obj.cart_coords  # [n_atoms, 3]
        return make_record(
            positions, numbers, formal_charges=charges, cell=lattice, pbc=list(obj.lattice.pbc), name=name,
            info={"pymatgen": dict(obj.properties)} if getattr(obj, "properties", None) else None,
        )
    return make_record(obj.cart_coords, numbers, formal_charges=charges, name=name)


def record_to_pymatgen(data: Data) -> Structure | Molecule:
    """pymatgen Structure for a periodic record (exact fractional coordinates), Molecule otherwise."""
    species = data[K.ATOMIC_NUMBERS].tolist()
    site_properties = {"formal_charge": data[K.FORMAL_CHARGES].tolist()} if K.FORMAL_CHARGES in data else None
    if K.CELL in data:
        pbc = tuple(bool(p) for p in data[K.PBC].reshape(3).tolist()) if K.PBC in data else (True, True, True)
        lattice = Lattice(data[K.CELL].reshape(3, 3).double().numpy(), pbc=pbc)
        return Structure(
            lattice, species, data[K.FRAC_POS].double().numpy(), coords_are_cartesian=False,
            site_properties=site_properties,
        )
    charge = int(np.sum(site_properties["formal_charge"])) if site_properties else 0
    return Molecule(species, data[K.POS].double().numpy(), charge=charge, site_properties=site_properties)
