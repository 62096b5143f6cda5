"""Fixed atoms (inpainting): generate the rest of a structure around atoms that are kept exactly.

A fragment or scaffold (any file :func:`molgen.data.readers.read_all` reads: SDF, XYZ, PDB, ...) becomes
:class:`FixedAtoms`. Every generated structure of a batch then starts with the fragment's atoms, marked
``fixed``, followed by its free atoms (:func:`batch_layout`). The mechanism is the one the forward process
already defines (:class:`~molgen.diffusion.PositionCorruption`): fixed atoms are never noised, the frame of a
graph with fixed atoms is centred on them, free atoms start from isotropic noise around that centre, and every
sampler restores the fixed values after each step (bit for bit, in process space). At the end the fragment's
original coordinates (float64, as read) are written back exactly and the free atoms are shifted by the same
frame origin, so the output holds the fragment unchanged. Protein pockets use the same path with the pocket's
atoms as the fixed context (``count="free"``: sizes then count only generated atoms).

Two modes (``mode`` of :func:`molgen.sampling.model.generate_batch`, ``--inpaint`` on the command line):

- ``"context"`` (above): for models trained with ``fixed`` masks (pockets, scaffold-conditioned training), which
  see the clean context and the fixed flag.
- ``"replace"``: for models trained without fixed atoms (the default QM9 model). The network sees every atom as
  free in the zero-centre-of-mass frame it was trained in; after every step the fragment's atoms are replaced by a
  fresh draw of the forward process at the new time, ``alpha_s x0_frag + sigma_s eps`` (the replacement method
  of Lugmayr et al. 2022, RePaint, without resampling; EDM's substructure inpainting), the whole structure is
  re-centred and the fragment's clean coordinates follow the shift (divided by ``alpha_s``). On the last step
  the fragment's clean values go in; the output again holds the fragment exactly as read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from molgen import keys as K
from molgen.errors import ConfigError, InputError

__all__ = ["FixedAtoms", "read_fragment", "batch_layout", "ReplacementInpainting", "INPAINT_MODES"]

INPAINT_MODES = ("context", "replace")


@dataclass
class FixedAtoms:
    """Context atoms shared by every structure of a run.

    Attributes
    ----------
    z : ``[m]`` long atomic numbers.
    pos : ``[m, 3]`` float64 positions in Å (copied to the output unchanged).
    charges : ``[m]`` long formal charges (zeros when unknown).
    name : where they came from.
    """

    z: Tensor
    pos: Tensor
    charges: Tensor
    name: str = "fragment"

    def __len__(self) -> int:
        return int(self.z.numel())

    @classmethod
    def from_record(cls, record, name: str | None = None) -> "FixedAtoms":
        """From a structure record (all of its atoms are fixed)."""
        z = record[K.ATOMIC_NUMBERS].long()
        charges = record[K.FORMAL_CHARGES].long() if K.FORMAL_CHARGES in record else torch.zeros_like(z)
        rec_name = record[K.NAME] if K.NAME in record else None
        return cls(z=z.clone(), pos=record[K.POS].double().clone(), charges=charges.clone(),
                   name=name or rec_name or "fragment")


def read_fragment(path: str | Path, index: int = 0) -> FixedAtoms:
    """The ``index``-th structure of a file as :class:`FixedAtoms`."""
    from molgen.data.readers import read_all

    records = read_all(path)
    if not records:
        raise InputError(path, "holds no structure to use as a fragment")
    if not 0 <= index < len(records):
        raise InputError(path, f"has {len(records)} structures; fragment index {index} is out of range")
    return FixedAtoms.from_record(records[index], name=Path(path).name)


def batch_layout(sizes: Tensor, fixed_atoms: FixedAtoms | None, count: str = "total") -> tuple[Tensor, Tensor, Tensor]:
    """Atom layout of a batch.

    Parameters
    ----------
    sizes : ``[n_graphs]`` drawn sizes.
    fixed_atoms : context put first in every graph, or ``None``.
    count : ``"total"``: ``sizes`` count all atoms (must exceed the fragment's); ``"free"``: only generated atoms.

    Returns
    -------
    batch ``[n_atoms]`` graph index, fixed ``[n_atoms]`` bool, fixed_index ``[n_atoms]`` long (index into the
    fragment's atoms for fixed atoms, -1 for free ones).
    """
    m = 0 if fixed_atoms is None else len(fixed_atoms)
    sizes = sizes.long()
    if count == "total":
        if m and bool((sizes <= m).any()):
            raise ConfigError(f"structures of {int(sizes.min())} atoms cannot hold the {m}-atom fragment and "
                              "new atoms: choose larger --num-atoms")
        free = sizes - m
    elif count == "free":
        free = sizes
    else:
        raise ValueError(f"count must be 'total' or 'free', got {count!r}")
    total = free + m
    n_graphs = len(sizes)
    batch = torch.arange(n_graphs).repeat_interleave(total)
    # position of each atom inside its graph
    offsets = torch.cumsum(total, 0) - total
    local = torch.arange(int(total.sum())) - offsets[batch]
    fixed = local < m
    fixed_index = torch.where(fixed, local, torch.full_like(local, -1))
    return batch, fixed, fixed_index


class ReplacementInpainting:
    """The ``after_step`` hook of replacement inpainting (see the module docstring).

    Parameters
    ----------
    process : the joint process (Gaussian fields are replaced; categorical fields get a draw of ``q(x_s | x0)``).
    known : clean values of every field in process space ``[n_atoms, d]`` (only rows of ``mask`` are used);
        positions in any frame (they are re-centred here).
    mask : ``[n_atoms]`` bool, the fragment's atoms.
    batch, n_graphs : the batch layout.
    """

    def __init__(self, process, known: dict[str, Tensor], mask: Tensor, batch: Tensor, n_graphs: int):
        from molgen.diffusion.corruptions import graph_mean

        self.process, self.mask, self.batch, self.n_graphs = process, mask, batch, n_graphs
        self.known = {name: value.clone() for name, value in known.items()}
        pos = self.known[K.POS]
        self.known[K.POS] = pos - graph_mean(pos, batch, n_graphs, mask)[batch]

    def __call__(self, x: dict[str, Tensor], s: float, generator: torch.Generator | None) -> dict[str, Tensor]:
        from molgen.diffusion.corruptions import CategoricalCorruption, GaussianCorruption, graph_mean

        rows = self.mask.unsqueeze(-1)
        out = dict(x)
        t = torch.full((self.n_graphs,), s, dtype=torch.float64, device=self.batch.device)
        alpha_pos = None
        for name, corruption in self.process.items():
            known = self.known[name].to(x[name].dtype)
            if s == 0.0:
                noisy = known
            elif isinstance(corruption, GaussianCorruption):
                alpha, sigma = corruption.coefficients(t)
                a = alpha.to(known)[self.batch].unsqueeze(-1)
                noise = torch.randn(known.shape, generator=generator, dtype=known.dtype, device=known.device)
                noisy = a * known + sigma.to(known)[self.batch].unsqueeze(-1) * noise
                if name == K.POS:
                    alpha_pos = a
            elif isinstance(corruption, CategoricalCorruption):
                noisy, _ = corruption.sample_marginal(known, t, self.batch, self.n_graphs, generator=generator)
            else:  # pragma: no cover
                raise TypeError(f"field {name!r}: replacement inpainting cannot handle {type(corruption).__name__}")
            out[name] = torch.where(rows, noisy, x[name])
        shift = graph_mean(out[K.POS], self.batch, self.n_graphs)[self.batch]  # back to zero centre of mass
        out[K.POS] = out[K.POS] - shift
        clean_shift = shift if alpha_pos is None else shift / alpha_pos  # x_s moved by d: x0 moved by d / alpha_s
        self.known[K.POS] = self.known[K.POS] - clean_shift.to(self.known[K.POS])
        return out
