"""Starting a training run from another run's weights (fine-tuning), config key ``init_from``.

``resume`` continues *the same* run (weights, optimizer, schedule, step). ``init_from: PATH`` starts a *new*
run — new optimizer, schedule, step 0 — whose network begins with the weights of the molgen checkpoint at
``PATH`` (or of a shipped model, by the name ``molgen sample --model`` lists, e.g. ``init_from: qm9``). The
typical use is adding a property condition to a trained unconditional model (classifier-free guidance): the
condition embedding is new, everything else is copied.

Rules (:func:`initialise_from`):

- The source's EMA weights are used when it has them (they are the weights the source samples with); they are
  copied into both the trained weights and the EMA copy of the new run.
- A tensor is copied when the new module has one of the same name; tensors only the new module has keep
  their fresh initialisation and are reported (the denoiser zero-initialises the condition embedding's output, so
  the fine-tuned model starts out as exactly the source model).
- Same name, different shape, or a different atom-type / charge vocabulary: :class:`ConfigError` naming the
  tensor, since the two models do not describe the same thing.
- A conditional source given to an unconditional run (say ``init_from: qm9_gap`` for the unconditional ``qm9``
  model) starts that run as the source's *unconditional mode*: the embedding of the dropped condition is a
  constant, folded into the time embedding's bias (:func:`~molgen.model.denoiser.fold_dropped_condition`).
- Training counters (skipped batches, EMA updates) start from zero.

When ``resume`` finds a checkpoint, ``init_from`` is ignored: a resumed run already holds its weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from molgen.errors import ConfigError

__all__ = ["InitReport", "initialise_from", "resolve_source", "COUNTERS"]

# buffers that count training events; a new run counts its own
COUNTERS = ("n_skipped", "n_ema_updates")
_EMA_PREFIX = "ema_"
_DENOISER_CONDITION = "denoiser.embed_condition.0.weight"


@dataclass
class InitReport:
    """What :func:`initialise_from` did: tensor names copied, kept fresh, and present only in the source."""

    source: Path
    copied: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    from_ema: bool = False
    folded: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"init_from {self.source}: {len(self.copied)} tensors copied"
                f"{' (from its EMA weights)' if self.from_ema else ''}, {len(self.fresh)} newly initialised")
        if self.fresh:
            text += f" ({', '.join(_short(self.fresh))})"
        if self.folded:
            text += "; the source's condition embedding folded in (its unconditional mode)"
        if self.unused:
            text += f"; {len(self.unused)} source tensors unused ({', '.join(_short(self.unused))})"
        return text


def _short(names: list[str], limit: int = 4) -> list[str]:
    return names[:limit] + ([f"... {len(names) - limit} more"] if len(names) > limit else [])


def _trained_name(name: str) -> str:
    """``ema_denoiser.x`` -> ``denoiser.x``: the trained network's name of an EMA tensor (others unchanged)."""
    return name[len(_EMA_PREFIX):] if name.startswith(_EMA_PREFIX) else name


def _source_tensors(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], bool]:
    """The source's tensors by the name the *trained* network uses, EMA weights preferred over trained ones."""
    ema = {_trained_name(name): value for name, value in state.items() if name.startswith(_EMA_PREFIX)}
    tensors = {name: value for name, value in state.items() if not name.startswith(_EMA_PREFIX)}
    tensors.update(ema)  # ema_denoiser.x -> denoiser.x
    return {k: v for k, v in tensors.items() if k not in COUNTERS}, bool(ema)


def _check_vocabulary(source_stats: dict, target_stats: dict, path: Path) -> None:
    from molgen.data.statistics import DatasetStatistics

    source, target = DatasetStatistics.from_dict(source_stats), DatasetStatistics.from_dict(target_stats)
    for what, a, b in (("elements", source.elements, target.elements),
                       ("formal charges", sorted(source.charge_counts), sorted(target.charge_counts))):
        if list(a) != list(b):
            raise ConfigError(f"config key 'init_from': {path} was trained on {what} {list(a)}, this run's data has "
                              f"{list(b)}; the atom encodings differ, so its weights do not apply")


def resolve_source(source: str | Path) -> Path:
    """The checkpoint file ``init_from`` names: a path, else the name of a shipped model."""
    path = Path(source)
    if path.is_file():
        return path
    from molgen.sampling.registry import list_models

    shipped = {m.name: m.checkpoint for m in list_models()}
    if str(source) in shipped:
        return shipped[str(source)]
    raise ConfigError(f"config key 'init_from': checkpoint {path} does not exist and is not a shipped model "
                      f"(shipped: {', '.join(shipped) or 'none'})")


def initialise_from(module: torch.nn.Module, path: str | Path, statistics: dict | None = None) -> InitReport:
    """Copy the weights of the molgen checkpoint at ``path`` (or the shipped model of that name) into ``module``
    (in place) and report what was done.

    ``module`` is a freshly built :class:`~molgen.training.module.DiffusionModule` or
    :class:`~molgen.training.predictor_module.PropertyPredictorModule`; ``statistics`` this run's dataset
    statistics (plain dict), checked against the source's atom vocabulary when given.
    """
    from molgen.training.checkpoint import checkpoint_task, read_checkpoint

    path = resolve_source(path)
    checkpoint = read_checkpoint(path)
    target_task = getattr(module, "config", {}).get("task", "denoiser")
    if checkpoint_task(checkpoint) != target_task:
        raise ConfigError(f"config key 'init_from': {path} is a {checkpoint_task(checkpoint)} checkpoint; this run "
                          f"trains a {target_task}")
    if statistics is not None:
        _check_vocabulary(checkpoint["hyper_parameters"]["statistics"], statistics, path)
    source, from_ema = _source_tensors(checkpoint["state_dict"])
    report = InitReport(source=path, from_ema=from_ema)
    target = module.state_dict()
    if _DENOISER_CONDITION not in target:
        from molgen.model.denoiser import fold_dropped_condition

        report.folded = fold_dropped_condition(source, prefix="denoiser.")
    used: set[str] = set()
    with torch.no_grad():
        for name, tensor in target.items():
            if name in COUNTERS:
                continue
            trained_name = _trained_name(name)
            if trained_name not in source:
                report.fresh.append(name)
                continue
            value = source[trained_name]
            if value.shape != tensor.shape:
                raise ConfigError(f"config key 'init_from': tensor {trained_name!r} has shape {tuple(value.shape)} "
                                  f"in {path} but {tuple(tensor.shape)} here; the architectures differ (compare "
                                  f"the 'model' sections)")
            tensor.copy_(value.to(tensor.dtype))
            report.copied.append(name)
            used.add(trained_name)
    if not report.copied:
        raise ConfigError(f"config key 'init_from': no tensor of {path} matches this model")
    report.unused = sorted(set(source) - used)
    return report
