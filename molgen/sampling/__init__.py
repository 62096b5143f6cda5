"""Sampling: reverse-process samplers, sizes, guidance, fixed atoms, batch-by-batch and distributed runs.

Public API:

- :func:`generate` (``molgen.sampling.api``): structures in memory as records, RDKit, ASE or pymatgen objects;
- :class:`SampleRun` (``molgen.sampling.runner``): the crash-safe, resumable run behind ``molgen sample``;
- samplers (``molgen.sampling.samplers``): :func:`build_sampler` over ``ddpm``, ``ddim``, ``dpm`` (= ``ode``),
  ``heun``, all with ``sample(model, process, x_init, context, generator, callback)``;
- :class:`Guidance`, :class:`ConstraintGuidance`, :class:`ClassifierGuidance`, :class:`NoisyPropertyPredictor`;
- :class:`FixedAtoms` / :func:`read_fragment` (inpainting), size distributions (``molgen.sampling.sizes``).

The generic parts (samplers, guidance) import no chemistry; records and bond perception come in only where
structures are written.
"""

from molgen.sampling.api import generate, make_guidance
from molgen.sampling.guidance import (
    ClassifierGuidance,
    ConstraintGuidance,
    Guidance,
    NoisyPropertyPredictor,
    predictor_loss,
    train_property_predictor,
)
from molgen.sampling.inpainting import FixedAtoms, batch_layout, read_fragment
from molgen.sampling.model import SamplingModel, generate_batch, load_sampling_model
from molgen.sampling.registry import list_models, model_path
from molgen.sampling.runner import SampleRun, batch_seed, iter_batches
from molgen.sampling.samplers import SAMPLERS, Sampler, SamplingContext, build_sampler, time_grid
from molgen.sampling.sizes import FixedSize, HistogramSizes, RangeSizes, parse_num_atoms, size_distribution

__all__ = [
    "generate", "make_guidance", "ClassifierGuidance", "ConstraintGuidance", "Guidance", "NoisyPropertyPredictor",
    "predictor_loss", "train_property_predictor", "FixedAtoms", "batch_layout", "read_fragment", "SamplingModel",
    "generate_batch", "load_sampling_model", "list_models", "model_path", "SampleRun", "batch_seed",
    "iter_batches", "SAMPLERS", "Sampler", "SamplingContext", "build_sampler", "time_grid", "FixedSize",
    "HistogramSizes", "RangeSizes", "parse_num_atoms", "size_distribution",
]
