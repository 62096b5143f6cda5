"""Writers: records -> files that open in RDKit, ASE, pymatgen, PyMOL and VMD without conversion."""

from molgen.export.writers import FORMATS, format_of, write_structures

__all__ = ["FORMATS", "format_of", "write_structures"]
