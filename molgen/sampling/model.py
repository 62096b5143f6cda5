"""A trained model as the samplers see it, and the generation of one batch of structures.

:class:`SamplingModel` wraps a denoiser network with the :class:`~molgen.training.fields.FieldSet` it was
trained with (fields, vocabularies, condition encoding) into a :data:`~molgen.sampling.samplers.DenoiseFn`.
It loads from a training checkpoint (``torch.load(..., weights_only=True)``, EMA weights when the run kept them)
or from a shipped model name (:mod:`molgen.sampling.registry`).

:func:`generate_batch` is the whole path from sizes to structure records: layout (with fixed atoms first),
prior draw, reverse process (with optional guidance), decoding to atomic numbers and charges, and the frame
origin added back.

Conditions: ``SamplingContext.condition`` carries property targets ``[n_graphs, n_props]`` in dataset units (the
order of ``model.condition_names``), or ``None`` for unconditional denoising; the model encodes them with
:meth:`FieldSet.make_condition` (normalised values and a "present" flag, the encoding trained with condition
dropout). A row with a NaN is treated as unconditional.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import Tensor
from torch_geometric.data import Data

from molgen import keys as K
from molgen.diffusion.process import JointDiffusion, NoisyFields
from molgen.errors import ConfigError
from molgen.diffusion.corruptions import graph_mean
from molgen.sampling.inpainting import INPAINT_MODES, FixedAtoms, ReplacementInpainting, batch_layout
from molgen.sampling.samplers import Sampler, SamplingContext

if TYPE_CHECKING:  # pragma: no cover
    from molgen.sampling.guidance import Guidance

__all__ = ["SamplingModel", "generate_batch", "load_sampling_model", "PRECISIONS", "check_precision"]

#: network precision -> autocast dtype (None: plain float32)
AUTOCAST_DTYPES = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}
PRECISIONS = tuple(AUTOCAST_DTYPES)


def check_precision(precision: str) -> str:
    """``precision`` as a key of :data:`AUTOCAST_DTYPES` (``"32"``, ``"bf16"``, ``"16"``), or a ConfigError."""
    value = str(precision).lower().replace("-mixed", "").replace("-true", "").replace("bfloat16", "bf16")
    value = {"fp32": "32", "float32": "32", "fp16": "16", "float16": "16"}.get(value, value)
    if value not in AUTOCAST_DTYPES:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return value


class SamplingModel:
    """A denoiser with its field encoding, callable as ``model(x_t, t, context) -> predictions``.

    Parameters
    ----------
    denoiser : ``DenoiserInput -> DenoiserOutput`` network (e.g. the EMA copy of a trained module).
    fields : the :class:`~molgen.training.fields.FieldSet` the network was trained with.
    name : label used in messages and output metadata.
    precision : ``"32"`` (float32 network) or ``"bf16"`` / ``"16"``: the network runs under
        ``torch.autocast`` in bfloat16 / float16 (its predictions come back as float32 and the sampler's state
        stays float32). bf16 is about twice as fast on CPU and is the precision molgen trains in
        (``trainer.precision=bf16-mixed``); ``benchmarks/sampling.md`` compares sample quality of both.
    """

    def __init__(self, denoiser: torch.nn.Module, fields, name: str = "model", metadata: dict | None = None,
                 precision: str = "32"):
        self.denoiser = denoiser.eval()
        self.fields = fields
        self.name = name
        self.metadata = dict(metadata or {})
        self.precision = precision  # validated by the setter

    # --- construction --------------------------------------------------------------------
    @classmethod
    def from_module(cls, module, name: str = "model") -> "SamplingModel":
        """From a :class:`~molgen.training.module.DiffusionModule` (its inference, i.e. EMA, weights)."""
        meta = {"global_step": int(getattr(module, "global_step_loaded", 0) or getattr(module, "global_step", 0))}
        return cls(module.inference_denoiser, module.fields, name=name, metadata=meta)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "SamplingModel":
        """From a molgen training checkpoint (loaded with ``weights_only=True``)."""
        from molgen.training.checkpoint import load_model

        module = load_model(path, map_location=device)
        model = cls.from_module(module, name=Path(path).stem)
        model.metadata["checkpoint"] = str(path)
        return model

    # --- properties ----------------------------------------------------------------------
    @property
    def process(self) -> JointDiffusion:
        return self.fields.process

    @property
    def statistics(self):
        return self.fields.statistics

    @property
    def precision(self) -> str:
        """The network's precision: ``"32"``, ``"bf16"`` or ``"16"`` (aliases such as ``"bf16-mixed"`` accepted)."""
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        self._precision = check_precision(value)

    @property
    def condition_names(self) -> list[str]:
        return list(self.fields.condition_names)

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def to(self, device: str | torch.device) -> "SamplingModel":
        self.denoiser.to(device)
        return self

    # --- the DenoiseFn -------------------------------------------------------------------
    def encode_condition(self, condition: Tensor | None, n_graphs: int, device) -> Tensor | None:
        if not self.condition_names:
            if condition is not None:
                raise ConfigError(f"model {self.name!r} was trained without conditioning: drop --condition")
            return None
        if condition is None:
            return self.fields.make_condition(None, n_graphs, device=device)
        condition = condition.to(device)
        present = ~torch.isnan(condition).any(-1)
        values = torch.nan_to_num(condition, nan=0.0)
        return self.fields.make_condition(values, n_graphs, present=present, device=device)

    def __call__(self, x_t: dict[str, Tensor], t: Tensor, context: SamplingContext) -> dict[str, Tensor]:
        device = context.batch.device
        condition = self.encode_condition(context.condition, context.n_graphs, device)
        fn = self.fields.model_fn(self.denoiser, context.batch, context.n_graphs, context.fixed, condition)
        dtype = AUTOCAST_DTYPES[self.precision]
        if dtype is None:
            return fn(NoisyFields(x0={}, x_t=x_t, targets={}, t=t))
        with torch.autocast(device.type, dtype=dtype):
            out = fn(NoisyFields(x0={}, x_t=x_t, targets={}, t=t))
        return {name: value.float() if value.is_floating_point() else value for name, value in out.items()}

    def condition_tensor(self, condition: dict[str, float] | None, n_graphs: int) -> Tensor | None:
        """``{"gap": 0.25}`` -> ``[n_graphs, n_props]`` targets (missing properties: error)."""
        if not condition:
            return None
        unknown = [k for k in condition if k not in self.condition_names]
        if unknown:
            raise ConfigError(f"--condition {unknown[0]}: the model is conditioned on "
                              f"{self.condition_names or 'nothing'}")
        missing = [k for k in self.condition_names if k not in condition]
        if missing:
            raise ConfigError(f"--condition: give a value for every conditioned property; missing {missing}")
        row = torch.tensor([float(condition[k]) for k in self.condition_names], dtype=torch.float32)
        return row.expand(n_graphs, -1).clone()


def load_sampling_model(source: "str | Path | SamplingModel | Any",
                        device: str | torch.device = "cpu") -> SamplingModel:
    """A :class:`SamplingModel` from a model, a DiffusionModule, a checkpoint path or a shipped model name."""
    if isinstance(source, SamplingModel):
        return source.to(device)
    if hasattr(source, "inference_denoiser") and hasattr(source, "fields"):
        return SamplingModel.from_module(source).to(device)
    path = Path(str(source))
    if path.suffix in (".ckpt", ".pt", ".pth") or path.exists():
        return SamplingModel.load(path, device)
    from molgen.sampling.registry import model_path

    model = SamplingModel.load(model_path(str(source)), device)
    model.name = str(source)
    return model


@torch.no_grad()
def generate_batch(model: SamplingModel, sizes: Tensor, sampler: Sampler, generator: torch.Generator | None = None,
                   *, condition: Tensor | None = None, guidance: "Guidance | None" = None,
                   fixed_atoms: FixedAtoms | None = None, count: str = "total", first_index: int = 0,
                   inpaint: str = "context", callback=None) -> list[Data]:
    """Generate one batch of structures.

    Parameters
    ----------
    model : the trained model.
    sizes : ``[n_graphs]`` atoms per structure (see ``count`` when ``fixed_atoms`` is given).
    sampler : the reverse-process sampler.
    generator : source of every random number (on the model's device).
    condition : ``[n_graphs, n_props]`` property targets (dataset units) or ``None``.
    guidance : wraps the model's predictions (:mod:`molgen.sampling.guidance`).
    fixed_atoms : context atoms put first in every structure and kept exactly.
    count : ``"total"`` or ``"free"`` (what ``sizes`` count when there are fixed atoms).
    first_index : global index of the first structure (names are ``molgen_<index>``).
    inpaint : ``"context"`` (fixed atoms are clean context the network sees as fixed; models trained with fixed
        atoms) or ``"replace"`` (replacement inpainting for models trained without; see
        :mod:`molgen.sampling.inpainting`).

    Returns
    -------
    Records with ``pos`` (float64, Å), ``z``, ``charges``, ``fixed`` and a ``name``; conditioned runs carry
    the targets as ``y``.
    """
    fields, process = model.fields, model.process
    device = model.device
    batch, fixed, fixed_index = batch_layout(sizes, fixed_atoms, count)
    batch, fixed = batch.to(device), fixed.to(device)
    n_graphs, n_atoms = len(sizes), len(batch)
    has_fixed = fixed_atoms is not None and len(fixed_atoms) > 0

    # raw values of the fixed atoms (free atoms get placeholders that the prior overwrites)
    z = torch.full((n_atoms,), fields.elements[0], dtype=torch.long, device=device)
    pos = torch.zeros(n_atoms, 3, device=device)
    charges = torch.zeros(n_atoms, dtype=torch.long, device=device)
    if has_fixed:
        where = fixed_index.to(device)[fixed]
        z[fixed] = fixed_atoms.z.to(device)[where]
        pos[fixed] = fixed_atoms.pos.to(device=device, dtype=pos.dtype)[where]
        charges[fixed] = fixed_atoms.charges.to(device)[where]
    raw = fields.raw_fields({K.POS: pos, K.ATOMIC_NUMBERS: z, K.FORMAL_CHARGES: charges})
    if inpaint not in INPAINT_MODES:
        raise ConfigError(f"inpainting mode must be one of {', '.join(INPAINT_MODES)}, got {inpaint!r}")
    replace = has_fixed and inpaint == "replace"
    mask = fixed if has_fixed else None
    context = SamplingContext(batch=batch, n_graphs=n_graphs, fixed=None if replace else mask,
                              condition=None if condition is None else condition.to(device))
    hook = None
    if replace:
        hook = ReplacementInpainting(process, process.prepare(raw, batch, n_graphs, mask), fixed, batch, n_graphs)
        context.after_step = hook
        like = process.prepare(raw, batch, n_graphs, None)
    else:
        like = process.prepare(raw, batch, n_graphs, mask)
    x_init = process.prior_sample(like, batch, n_graphs, context.fixed, generator)
    denoise = guidance.wrap(model, process) if guidance is not None else model
    x0 = sampler.sample(denoise, process, x_init, context, generator=generator, callback=callback)
    decoded = fields.decode(process.finalize(x0))

    out_pos = decoded[K.POS].double()
    if has_fixed:  # the frame back onto the fragment's coordinates
        frame = hook.known[K.POS].double() if replace else out_pos
        exact = torch.zeros(n_atoms, 3, dtype=torch.float64, device=device)
        exact[fixed] = fixed_atoms.pos.to(device)[fixed_index.to(device)[fixed]]
        origin = graph_mean(exact, batch, n_graphs, fixed) - graph_mean(frame, batch, n_graphs, fixed)
        out_pos = out_pos + origin[batch]
    out_z, out_q = decoded[K.ATOMIC_NUMBERS], decoded[K.FORMAL_CHARGES]
    # a Gaussian charge field is decoded by rounding; keep it inside the training charges' range
    known = list(getattr(fields, "charge_values", [0])) or [0]
    out_q = out_q.clamp(min(known), max(known))
    if has_fixed:  # the fragment exactly as read
        where = fixed_index.to(device)[fixed]
        out_pos[fixed] = fixed_atoms.pos.to(device)[where]
        out_z[fixed] = fixed_atoms.z.to(device)[where]
        out_q[fixed] = fixed_atoms.charges.to(device)[where]
    return _records(out_pos.cpu(), out_z.cpu(), out_q.cpu(), fixed.cpu(), batch.cpu(), n_graphs, first_index,
                    condition, model.condition_names)


def _records(pos: Tensor, z: Tensor, charges: Tensor, fixed: Tensor, batch: Tensor, n_graphs: int, first: int,
             condition: Tensor | None, names: Sequence[str]) -> list[Data]:
    counts = torch.bincount(batch, minlength=n_graphs).tolist()
    out = []
    start = 0
    for g, n in enumerate(counts):
        sl = slice(start, start + n)
        data = Data(pos=pos[sl].clone(), z=z[sl].clone(), fixed=fixed[sl].clone())
        data[K.FORMAL_CHARGES] = charges[sl].clone()
        data[K.NAME] = f"molgen_{first + g}"
        if condition is not None:
            data[K.PROPERTIES] = condition[g:g + 1].float().cpu().clone()
        out.append(data)
        start += n
    return out
