"""molgen: diffusion models that generate 3D molecules, crystals and ligands in protein pockets.

The package is laid out as the data flow: ``data`` (readers, records, datasets) -> ``model``
(equivariant denoiser) -> ``diffusion`` (forward processes, losses) -> ``training`` (Lightning)
-> ``sampling`` (reverse processes, guidance) -> ``validation`` (metrics) -> ``export`` (writers).
"""

__version__ = "0.1.0"
