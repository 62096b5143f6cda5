"""The Python API: generate structures in memory as RDKit molecules, ASE Atoms or pymatgen objects.

>>> from molgen.sampling import generate                                   # doctest: +SKIP
>>> mols = generate("runs/debug/checkpoints/last.ckpt", 8, steps=50, as_="rdkit")  # doctest: +SKIP

Batches and seeds are those of ``molgen sample`` (:mod:`molgen.sampling.runner`): ``generate(model, n,
batch_size=B, seed=S)`` returns the same structures, in the same order, as ``molgen sample -n n --batch-size B
--seed S`` writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from molgen.errors import ConfigError
from molgen.sampling.guidance import (DEFAULT_CLASSIFIER_SCALE, ConstraintGuidance, Guidance, GradientTerm,
                                      classifier_guidance, load_classifier)
from molgen.sampling.inpainting import FixedAtoms, read_fragment
from molgen.sampling.model import SamplingModel, load_sampling_model
from molgen.sampling.runner import iter_batches, perceive_bonds
from molgen.sampling.samplers import Sampler, build_sampler
from molgen.sampling.sizes import SizeDistribution, size_distribution

__all__ = ["generate", "make_guidance", "classifier_setup"]

OUTPUTS = ("records", "rdkit", "ase", "pymatgen")


def make_guidance(guidance: float | None = None, constraint: Callable | None = None, strength: float = 1.0,
                  terms: Sequence[GradientTerm] = ()) -> Guidance | None:
    """A :class:`Guidance` from the common options (``None`` when nothing steers)."""
    all_terms = list(terms)
    if constraint is not None:
        all_terms.append(ConstraintGuidance(constraint, strength))
    result = Guidance(cfg_scale=guidance, terms=all_terms)
    return result if result.active else None


def classifier_setup(model: SamplingModel, classifier: Any, condition: dict[str, float] | None,
                     scale: float = DEFAULT_CLASSIFIER_SCALE) -> tuple[GradientTerm, dict[str, float] | None]:
    """Classifier guidance of ``model`` by ``classifier`` (see :func:`molgen.sampling.guidance.load_classifier`).

    ``condition`` holds the classifier's targets (every property it predicts) and, optionally, values for the
    properties ``model`` itself is conditioned on. Returns the guidance term and the condition to give the model
    (its own properties only; ``None`` for unconditional denoising).
    """
    predictor = load_classifier(classifier, model.fields, model.device)
    term = classifier_guidance(predictor, condition, scale)
    condition = condition or {}
    unknown = [k for k in condition if k not in predictor.property_names and k not in model.condition_names]
    if unknown:
        raise ConfigError(f"--condition {unknown[0]}: neither the classifier ({predictor.property_names}) nor the "
                          f"model ({model.condition_names or 'unconditioned'}) knows it")
    own = {k: v for k, v in condition.items() if k in model.condition_names}
    return term, own or None


def generate(checkpoint_or_model: Any, n: int, *, sampler: str | Sampler = "dpm", steps: int | None = None,
             eta: float | None = None, spacing: str | None = None, batch_size: int = 100, seed: int = 0,
             num_atoms: int | str | SizeDistribution | None = None, condition: dict[str, float] | None = None,
             guidance: float | Guidance | None = None, constraint: Callable | None = None, strength: float = 1.0,
             fragment: str | Path | FixedAtoms | None = None, inpaint: str = "context",
             classifier: Any = None, classifier_scale: float = DEFAULT_CLASSIFIER_SCALE, device: str | torch.device | None = None,
             precision: str | None = None, bonds: bool = True, as_: str = "records") -> list:
    """Generate ``n`` structures.

    Parameters
    ----------
    checkpoint_or_model : a checkpoint path, a shipped model name, a :class:`SamplingModel` or a trained
        :class:`~molgen.training.module.DiffusionModule`.
    n : number of structures.
    sampler, steps, eta, spacing : the reverse process and its time grid
        (:func:`molgen.sampling.samplers.build_sampler`).
    batch_size, seed : batches and their seeds (as ``molgen sample``).
    num_atoms : ``None`` (the training histogram), ``18``, ``"15-20"`` or a :class:`SizeDistribution`.
    condition : property targets ``{"gap": 0.25}`` (the model must be conditioned on them).
    guidance : classifier-free guidance scale, or a ready :class:`Guidance`.
    constraint, strength : a differentiable ``f(pos, types, batch)`` to minimise, and its weight.
    classifier, classifier_scale : classifier guidance by a noisy-structure property predictor (a
        ``task: property_predictor`` checkpoint path or a loaded predictor) towards the ``condition`` values of the
        properties it predicts, with this scale; the model receives only its own conditioned properties.
    fragment : atoms kept exactly (a file or :class:`FixedAtoms`); sizes then count all atoms.
    inpaint : ``"context"`` (models trained with fixed atoms) or ``"replace"`` (models trained without), see
        :mod:`molgen.sampling.inpainting`.
    device : ``"cpu"``, ``"cuda"``... (default: the model's, or CPU for a checkpoint).
    precision : the network's precision, ``"32"``, ``"bf16"`` or ``"16"`` (default: the model's own, ``"32"``
        when loaded from a checkpoint), see :class:`SamplingModel`.
    bonds : perceive bonds (EDM distance tables) on the records (needed for sensible RDKit molecules).
    as_ : ``"records"`` (PyG Data), ``"rdkit"`` (``Chem.Mol``), ``"ase"`` (``ase.Atoms``) or ``"pymatgen"``
        (``Molecule``).
    """
    if as_ not in OUTPUTS:
        raise ConfigError(f"as_ must be one of {', '.join(OUTPUTS)}, got {as_!r}")
    model: SamplingModel = load_sampling_model(checkpoint_or_model, device or "cpu")
    if device is not None:
        model.to(device)
    if precision is not None:
        model.precision = precision
    chosen = sampler if isinstance(sampler, Sampler) else build_sampler(sampler, steps, eta, spacing)
    fixed = read_fragment(fragment) if isinstance(fragment, (str, Path)) else fragment
    min_atoms = len(fixed) + 1 if fixed is not None else 1
    sizes = num_atoms if isinstance(num_atoms, SizeDistribution) else size_distribution(model.statistics, num_atoms,
                                                                                        min_atoms=min_atoms)
    extra: list[GradientTerm] = []
    if classifier is not None:
        term, condition = classifier_setup(model, classifier, condition, classifier_scale)
        extra.append(term)
    if isinstance(guidance, Guidance):
        guide = Guidance(guidance.cfg_scale, [*guidance.terms, *extra])
        if constraint is not None:
            guide = Guidance(guide.cfg_scale, [*guide.terms, ConstraintGuidance(constraint, strength)])
    else:
        guide = make_guidance(guidance, constraint, strength, terms=extra)
    records = []
    for _, batch in iter_batches(model, n, batch_size, seed, chosen, sizes, condition=condition, guidance=guide,
                                 fixed_atoms=fixed, inpaint=inpaint):
        if bonds:
            perceive_bonds(batch)
        records.extend(batch)
    return convert(records, as_)


def convert(records: list, as_: str) -> list:
    """Records -> the requested objects."""
    if as_ == "records":
        return records
    if as_ == "rdkit":
        from molgen.data.convert import record_to_rdkit

        return [record_to_rdkit(r) for r in records]
    if as_ == "ase":
        from molgen.data.convert import record_to_ase

        return [record_to_ase(r) for r in records]
    from molgen.data.convert import record_to_pymatgen

    return [record_to_pymatgen(r) for r in records]
