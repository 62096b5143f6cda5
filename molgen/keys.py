"""Field names of a molgen structure record, defined once.

A structure record is a :class:`torch_geometric.data.Data`. Every field the
package reads or writes is named here; code uses these constants instead of
string literals. Shapes use the project's vocabulary (``n_atoms``, ``n_bonds``,
``n_graphs``); after batching, per-structure fields gain ``n_graphs`` rows.
"""

POS = "pos"  # [n_atoms, 3] float, Cartesian positions in Å
ATOMIC_NUMBERS = "z"  # [n_atoms] long, atomic numbers (1 = H)
FORMAL_CHARGES = "charges"  # [n_atoms] long, formal charges (only when known)
FIXED = "fixed"  # [n_atoms] bool, context atoms that are never noised or generated

CELL = "cell"  # [1, 3, 3] float, lattice vectors as rows, in Å (periodic only)
FRAC_POS = "frac_pos"  # [n_atoms, 3] float, fractional coordinates in [0, 1) (periodic only)
PBC = "pbc"  # [1, 3] bool, periodic directions (periodic only)

BOND_INDEX = "bond_index"  # [2, n_bonds] long, each bond once with i < j
BOND_TYPE = "bond_type"  # [n_bonds] long, 1 single, 2 double, 3 triple, 4 aromatic (SDF codes)

PROPERTIES = "y"  # [1, n_props] float, per-structure properties (names held by the dataset)
NAME = "name"  # str, identifier of the record (file name, title line, dataset id)
INFO = "info"  # dict, free-form metadata (SDF tags, extxyz info) kept for lossless export

# protein / pocket features, present when a record holds protein atoms
RESIDUE_TYPE = "residue_type"  # [n_atoms] long, index into molgen.elements.AMINO_ACIDS (-1 = not a residue)
RESIDUE_INDEX = "residue_index"  # [n_atoms] long, residue number within the record (-1 = not a residue)
IS_BACKBONE = "is_backbone"  # [n_atoms] bool, N, CA, C, O of an amino acid
IS_PROTEIN = "is_protein"  # [n_atoms] bool, atom belongs to the receptor (not the ligand)
ATOM_NAMES = "atom_names"  # list[str] per atom, PDB atom names (kept in ``info`` for proteins)

# batching
BATCH = "batch"  # [n_atoms] long, graph index of each atom
PTR = "ptr"  # [n_graphs + 1] long, atom offsets of each graph

# constants of the bond-type code
BOND_SINGLE, BOND_DOUBLE, BOND_TRIPLE, BOND_AROMATIC = 1, 2, 3, 4
