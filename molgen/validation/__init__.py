"""Validators and metrics: which generated structures are chemically valid, and how they compare with data.

Network-free: nothing here imports the model or diffusion code. One module per job:

- :mod:`.bonds`: EDM's bond-length tables (data) and vectorised distance-based bond orders;
- :mod:`.protocols`: the named protocols (``edm``, ``edm-geom``, ``charged``) and their valence tables;
- :mod:`.molecule_metrics`: stability, validity, connectivity, uniqueness, novelty of molecules;
- :mod:`.rdkit_validity`: RDKit sanitization and SMILES in worker processes;
- :mod:`.rdkit_bonds`: rdDetermineBonds with a time cap per molecule;
- :mod:`.distributions`: atom-type, size, bond-length and bond-angle distances to a reference;
- :mod:`.reference`: reference sets (QM9 training split or files), cached on disk;
- :mod:`.posebusters_checks` / :mod:`.complex_checks`: PoseBusters intramolecular and pocket checks;
- :mod:`.crystal_metrics`: CDVAE/DiffCSP structural and SMACT compositional validity, StructureMatcher metrics,
  COV-R / COV-P;
- :mod:`.screening`: QED, SA score, rule filters and structural alerts for ``molgen screen``;
- :mod:`.inputs` and :mod:`.report`: reading inputs (bad records become reported failures) and writing reports.

Typical use::

    from molgen.validation.molecule_metrics import Molecule, evaluate_molecules
    report = evaluate_molecules([Molecule(z, pos) for z, pos in samples], "edm")
    report.metrics["mol_stability"]
"""
