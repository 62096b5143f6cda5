"""The bridge between PyG batches of structures, the diffusion fields and the denoiser network.

:class:`FieldSet` decides which fields a model diffuses and how they are encoded:

- ``pos``: Cartesian positions ``[n_atoms, 3]`` (Å) -> the network's vector output;
- ``atom_types``: one-hot over the dataset's element vocabulary ``[n_atoms, n_types]`` -> scalar outputs;
- ``charges`` (optional): formal charges, a scalar ``[n_atoms, 1]`` (Gaussian) or a one-hot over the
  dataset's charge vocabulary (categorical) -> scalar outputs.

The network sees the noisy non-position fields concatenated as ``node_features`` (in field order) and predicts
them as consecutive columns of ``scalar``. Samplers use the same object: :meth:`FieldSet.model_fn` wraps a
denoiser into the ``NoisyFields -> predictions`` function of :mod:`molgen.diffusion.losses`, and
:meth:`FieldSet.decode` turns clean field values back into atomic numbers and charges.

Conditioning for classifier-free guidance: the condition passed to the network is
``[normalised properties * present, present]`` (``[n_graphs, n_props + 1]``): the last column is 1 when
the properties are given, 0 when dropped (training dropout, or unconditional sampling); dropped rows are zeros.
Use :meth:`FieldSet.make_condition` to build it at sampling time.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from molgen import keys as K
from molgen.data.statistics import DatasetStatistics
from molgen.diffusion.corruptions import graph_has_fixed, remove_mean
from molgen.diffusion import (
    CategoricalCorruption,
    Corruption,
    GaussianCorruption,
    JointDiffusion,
    NoisyFields,
    PositionCorruption,
    build_schedule,
)
from molgen.errors import ConfigError

__all__ = ["FieldSet", "POS", "ATOM_TYPES", "CHARGES"]

POS, ATOM_TYPES, CHARGES = "pos", "atom_types", "charges"


class FieldSet:
    """Fields, vocabularies and conditioning of one model.

    Parameters
    ----------
    diffusion_config : the ``diffusion`` section of the training config.
    statistics : dataset statistics (element vocabulary, charge vocabulary, property mean / std).
    """

    def __init__(self, diffusion_config: dict, statistics: DatasetStatistics):
        self.config = diffusion_config
        self.statistics = statistics
        self.elements = list(statistics.elements)
        if not self.elements:
            raise ConfigError("the dataset statistics list no elements: cannot build the atom-type vocabulary")
        self.charge_values = sorted(statistics.charge_counts) or [0]
        fields = diffusion_config["fields"]
        self.use_charges = bool(fields["charges"]["enabled"])
        max_z = max(self.elements)
        lookup = torch.full((max_z + 1,), -1, dtype=torch.long)
        lookup[torch.tensor(self.elements)] = torch.arange(len(self.elements))
        self._z_to_index = lookup

        cond = diffusion_config["conditioning"]
        self.condition_names = list(cond["properties"])
        self.condition_dropout = float(cond["dropout"])
        missing = [p for p in self.condition_names if p not in statistics.property_names]
        if missing:
            raise ConfigError(f"config key 'diffusion.conditioning.properties': {missing[0]!r} is not a property "
                              f"of the dataset (have {statistics.property_names})")
        self._cond_index = [statistics.property_names.index(p) for p in self.condition_names]
        self._cond_mean = torch.tensor([statistics.property_mean[i] for i in self._cond_index], dtype=torch.float32)
        self._cond_std = torch.tensor([statistics.property_std[i] or 1.0 for i in self._cond_index],
                                      dtype=torch.float32)
        self.process = self._build_process()

    # --- sizes ---------------------------------------------------------------------------
    @property
    def n_types(self) -> int:
        return len(self.elements)

    @property
    def widths(self) -> dict[str, int]:
        """Width of each non-position field (node feature columns = scalar output columns)."""
        out = {ATOM_TYPES: self.n_types}
        if self.use_charges:
            kind = self.config["fields"][CHARGES]["kind"]
            out[CHARGES] = 1 if kind == "gaussian" else len(self.charge_values)
        return out

    @property
    def n_node_features(self) -> int:
        return sum(self.widths.values())

    @property
    def n_conditions(self) -> int:
        return len(self.condition_names) + 1 if self.condition_names else 0

    def network_sizes(self) -> dict[str, int]:
        """The ``n_node_features`` / ``n_scalar_outputs`` / ``n_conditions`` keys of ``build_denoiser``."""
        return {"n_node_features": self.n_node_features, "n_scalar_outputs": self.n_node_features,
                "n_conditions": self.n_conditions}

    # --- the process ---------------------------------------------------------------------
    def _build_process(self) -> JointDiffusion:
        cfg = self.config
        fields = cfg["fields"]
        param = cfg["parameterization"]
        corruptions: dict[str, Corruption] = {POS: PositionCorruption(build_schedule(fields[POS]["schedule"]), param)}
        corruptions[ATOM_TYPES] = self._scalar_corruption(ATOM_TYPES, self.statistics.element_counts, self.elements)
        if self.use_charges:
            counts = self.statistics.charge_counts or {0: 1}
            corruptions[CHARGES] = self._scalar_corruption(CHARGES, counts, self.charge_values)
        return JointDiffusion(corruptions, n_steps=int(cfg["n_steps"]), time_sampling=cfg["time_sampling"])

    def _scalar_corruption(self, name: str, counts: dict[int, int], vocabulary: list[int]) -> Corruption:
        cfg = self.config["fields"][name]
        schedule = build_schedule(cfg["schedule"])
        if cfg["kind"] == "gaussian":
            return GaussianCorruption(schedule, scale=float(cfg["scale"]), parameterization=self.config["parameterization"])
        if cfg["limit"] == "uniform":
            return CategoricalCorruption.uniform(schedule, len(vocabulary))
        total = sum(counts.get(v, 0) for v in vocabulary)
        limit = torch.tensor([counts.get(v, 0) / total for v in vocabulary], dtype=torch.float64)
        return CategoricalCorruption(schedule, limit)

    @property
    def weights(self) -> dict[str, float]:
        return {name: float(self.config["fields"][name]["weight"]) for name in self.process}

    # --- encoding ------------------------------------------------------------------------
    def type_index(self, z: Tensor) -> Tensor:
        """Atomic numbers ``[n_atoms]`` -> vocabulary indices ``[n_atoms]`` (error on unknown elements)."""
        lookup = self._z_to_index.to(z.device)
        index = torch.where(z <= lookup.numel() - 1, lookup[z.clamp(max=lookup.numel() - 1)], -1)
        if (index < 0).any():
            bad = sorted(set(z[index < 0].tolist()))
            raise ValueError(f"atomic numbers {bad} are not in the model's element vocabulary {self.elements}")
        return index

    def raw_fields(self, batch) -> dict[str, Tensor]:
        """Clean raw field values of a PyG batch."""
        pos = batch[K.POS]
        out = {POS: pos, ATOM_TYPES: F.one_hot(self.type_index(batch[K.ATOMIC_NUMBERS]), self.n_types).to(pos.dtype)}
        if self.use_charges:
            charges = batch[K.FORMAL_CHARGES]
            if self.config["fields"][CHARGES]["kind"] == "gaussian":
                out[CHARGES] = charges.to(pos.dtype).unsqueeze(-1)
            else:
                values = torch.tensor(self.charge_values, device=charges.device)
                index = (charges.unsqueeze(-1) == values).long().argmax(-1)
                out[CHARGES] = F.one_hot(index, len(self.charge_values)).to(pos.dtype)
        return out

    def decode(self, raw: dict[str, Tensor]) -> dict[str, Tensor]:
        """Raw field values (e.g. a sampler's final ``finalize``-d state) -> ``pos``, ``z``, ``charges``."""
        elements = torch.tensor(self.elements, device=raw[POS].device)
        out = {K.POS: raw[POS], K.ATOMIC_NUMBERS: elements[raw[ATOM_TYPES].argmax(-1)]}
        if self.use_charges:
            if raw[CHARGES].shape[-1] == 1:
                # a continuous charge is rounded and clamped to the charges seen in training
                low, high = min(self.charge_values), max(self.charge_values)
                out[K.FORMAL_CHARGES] = raw[CHARGES].squeeze(-1).round().clamp(low, high).long()
            else:
                values = torch.tensor(self.charge_values, device=raw[POS].device)
                out[K.FORMAL_CHARGES] = values[raw[CHARGES].argmax(-1)]
        else:
            out[K.FORMAL_CHARGES] = torch.zeros_like(out[K.ATOMIC_NUMBERS])
        return out

    # --- conditioning --------------------------------------------------------------------
    def make_condition(self, values: Tensor | None, n_graphs: int, present: Tensor | None = None,
                       device=None) -> Tensor | None:
        """Network condition ``[n_graphs, n_props + 1]`` from property values ``[n_graphs, n_props]`` in dataset
        units (order of ``condition_names``), or ``None`` values for the unconditional row. ``None`` when the model
        is unconditional."""
        if not self.condition_names:
            return None
        device = device if device is not None else (values.device if values is not None else None)
        n = len(self.condition_names)
        if values is None:
            return torch.zeros(n_graphs, n + 1, device=device)
        mean, std = self._cond_mean.to(values.device), self._cond_std.to(values.device)
        normalised = (values.float() - mean) / std
        if present is None:
            present = torch.ones(n_graphs, dtype=torch.bool, device=values.device)
        keep = present.float().unsqueeze(-1)
        return torch.cat([normalised * keep, keep], dim=-1)

    def batch_condition(self, batch, dropout: float = 0.0, generator: torch.Generator | None = None) -> Tensor | None:
        """The training condition of a batch, each graph's dropped with probability ``dropout``."""
        if not self.condition_names:
            return None
        y = batch[K.PROPERTIES]
        values = y.reshape(batch.num_graphs, -1)[:, self._cond_index]
        present = torch.ones(batch.num_graphs, dtype=torch.bool, device=y.device)
        if dropout > 0:
            u = torch.rand(batch.num_graphs, generator=generator, device=y.device)
            present = u >= dropout
        return self.make_condition(values, batch.num_graphs, present)

    # --- the network ---------------------------------------------------------------------
    def model_fn(self, denoiser, batch_index: Tensor, n_graphs: int, fixed: Tensor | None = None,
                 condition: Tensor | None = None) -> Callable[[NoisyFields], dict[str, Tensor]]:
        """Wrap ``denoiser`` (``DenoiserInput -> DenoiserOutput``) as ``NoisyFields -> predictions``."""
        from molgen.model.denoiser import DenoiserInput

        names = list(self.widths)

        def fn(noisy: NoisyFields) -> dict[str, Tensor]:
            features = torch.cat([noisy.x_t[name] for name in names], dim=-1)
            out = denoiser(DenoiserInput(pos=noisy.x_t[POS], node_features=features, time=noisy.t.float(),
                                         batch=batch_index, n_graphs=n_graphs, fixed=fixed, condition=condition))
            # the position noise lives in the zero-centre-of-mass subspace for graphs without fixed atoms
            # (EDM's projection); graphs with fixed atoms keep their frame and the network zeroes fixed atoms
            free_graph = ~graph_has_fixed(batch_index, n_graphs, fixed)  # [n_graphs]
            vector = torch.where(free_graph[batch_index].unsqueeze(-1),
                                 remove_mean(out.vector, batch_index, n_graphs), out.vector)  # [n_atoms, 3]
            predictions = {POS: vector}
            start = 0
            for name in names:
                width = self.widths[name]
                predictions[name] = out.scalar[:, start:start + width]
                start += width
            return predictions

        return fn
