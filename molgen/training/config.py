"""Training configuration: YAML files over defaults, dotted ``key=value`` overrides, validation.

The tree mirrors the objects built from it::

    name, seed, output_dir, resume, init_from, task
    data        -> molgen.data.datamodule.StructureDataModule
    model       -> molgen.model.denoiser.build_denoiser
    diffusion   -> molgen.diffusion (one entry per field under ``fields``; conditioning)
    optim       -> AdamW, learning-rate schedule, EMA, gradient clipping
    trainer     -> lightning.Trainer (devices, num_nodes, strategy, precision, ...)
    checkpoint  -> lightning ModelCheckpoint
    logging     -> CSV / TensorBoard loggers
    predictor   -> molgen.sampling.guidance.NoisyPropertyPredictor (only with ``task: property_predictor``)

``task`` picks what ``molgen train`` trains: ``denoiser`` (the diffusion model, the default) or
``property_predictor`` (a :class:`~molgen.sampling.guidance.NoisyPropertyPredictor` for classifier guidance,
trained on structures noised by the process described by ``diffusion``, which must therefore match the
denoiser's ``diffusion.fields``; ``model`` is then unused and the network sizes come from ``predictor.network``).

Every key a user writes must exist in :data:`DEFAULTS`, except inside the *open* sections (``model``, whose
keys the network's ``build_denoiser`` checks, and the noise-schedule parameters, whose keys depend on the
schedule's name and are checked when the schedule is built).
An unknown key raises :class:`~molgen.errors.ConfigError` naming it.

>>> cfg = load_config(None, ["trainer.max_steps=50", "optim.lr=3e-4"])
>>> cfg["trainer"]["max_steps"], cfg["optim"]["lr"]
(50, 0.0003)
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Iterable

import yaml

from molgen.errors import ConfigError

class _Loader(yaml.SafeLoader):
    """Safe YAML loader that also reads ``1e-4`` (no dot) as a float, as people write it."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def read_yaml(text: str):
    """Parse YAML safely (no object construction), reading ``1e-4`` as a float."""
    return yaml.load(text, Loader=_Loader)


__all__ = ["DEFAULTS", "OPEN_SECTIONS", "load_config", "apply_overrides", "merge", "parse_override", "dump_config", "read_yaml"]

_SCHEDULE_POS = {"name": "polynomial", "power": 2.0, "precision": 1.0e-5}
_SCHEDULE_CAT = {"name": "cosine"}

DEFAULTS: dict[str, Any] = {
    "name": "molgen",
    "seed": 0,
    "output_dir": "runs/molgen",
    "resume": None,  # null | "auto" (last checkpoint in output_dir if any) | path to a .ckpt
    "init_from": None,  # a molgen checkpoint whose (EMA) weights start a new run: fine-tuning (ignored on resume)
    "task": "denoiser",  # denoiser | property_predictor (classifier guidance, see `predictor`)
    "time_limit": None,  # wall-clock limit of this invocation (seconds or [DD:]HH:MM:SS); stops and saves a checkpoint
    "data": {
        "source": "qm9_sample",  # dataset name or path (see molgen.data.datasets.open_dataset)
        "batch_size": 64,
        "num_workers": 0,
        "cache_dir": None,
        "max_train": None,  # use only the first N training structures (debugging, overfitting)
    },
    "model": {
        # passed to molgen.model.denoiser.build_denoiser, which checks the keys: preset (small | default |
        # large), hidden_scalars, hidden_vectors, n_layers, n_radial, graph ("fully_connected" or
        # {type: radius, cutoff: 5.0, max_neighbors: null}), message_channels, edge_hidden, lmax, max_radius,
        # avg_neighbors
        "preset": "small",
        "graph": "fully_connected",
    },
    "diffusion": {
        "n_steps": 1000,  # T of the discrete chain (t_k = k / T)
        "time_sampling": "discrete",  # discrete | continuous
        "parameterization": "eps",  # eps | x0 (Gaussian fields)
        "fields": {
            "pos": {"schedule": dict(_SCHEDULE_POS), "weight": 1.0},
            "atom_types": {
                "kind": "gaussian",  # gaussian (EDM: one-hot x scale) | categorical (D3PM)
                "scale": 0.25,
                "limit": "marginal",  # categorical only: uniform | marginal
                "schedule": dict(_SCHEDULE_POS),
                "weight": 1.0,
            },
            "charges": {
                "enabled": False,
                "kind": "gaussian",
                "scale": 0.1,
                "limit": "marginal",
                "schedule": dict(_SCHEDULE_POS),
                "weight": 1.0,
            },
        },
        "conditioning": {
            "properties": [],  # names of per-structure properties (dataset statistics' property_names)
            "dropout": 0.1,  # probability of dropping the condition (classifier-free guidance)
        },
    },
    "optim": {
        "lr": 1.0e-4,
        "weight_decay": 1.0e-12,
        "betas": [0.9, 0.999],
        "eps": 1.0e-8,
        "scheduler": {
            "name": "constant",  # constant | cosine | exponential | step
            "warmup_steps": 0,
            "min_lr_ratio": 0.01,  # cosine: final lr / lr
            "gamma": 0.5,  # exponential: factor per `step_size` steps; step: factor at each boundary
            "step_size": 10000,
            "total_steps": None,  # cosine horizon; default: the trainer's estimated stepping batches
        },
        "ema": {"enabled": True, "decay": 0.999, "warmup": True},
        "clip": {
            "global_norm": 10.0,  # plain clipping of the global gradient norm (null: off)
            "time_dependent": True,  # threshold = global_norm * clamp((snr_ref / mean SNR)^power, min_factor, 1)
            "snr_ref": 1.0,
            "power": 0.5,
            "min_factor": 0.1,
            "max_snr": 1.0e4,  # SNRs above this count as this when averaging over the batch
        },
    },
    "trainer": {
        "max_steps": -1,
        "max_epochs": 100,
        "accelerator": "auto",
        "devices": 1,
        "num_nodes": 1,
        "strategy": "auto",  # auto | ddp | ddp_spawn | ... (SLURM is detected by Lightning)
        "precision": "32-true",
        "accumulate_grad_batches": 1,
        "val_check_interval": 1.0,
        "check_val_every_n_epoch": 1,
        "limit_train_batches": 1.0,
        "limit_val_batches": 1.0,
        "log_every_n_steps": 50,
        "num_sanity_val_steps": 0,
        "enable_progress_bar": True,
        "deterministic": False,
    },
    "checkpoint": {
        "every_n_steps": 1000,
        "keep": 3,  # most recent step checkpoints kept (-1: all); last.ckpt is always written
    },
    "logging": {"csv": True, "tensorboard": True},
    "predictor": {
        # task: property_predictor only. Properties to predict (names in the dataset statistics); the noisy
        # structures come from the `diffusion` section, which must match the guided denoiser's fields.
        "properties": ["gap"],
        # keys of molgen.model.denoiser.build_denoiser (open section: preset, hidden_scalars, hidden_vectors,
        # n_layers, n_radial, lmax, graph, ...); n_node_features / n_scalar_outputs are set from the data
        "network": {"hidden_scalars": 64, "hidden_vectors": 16, "n_layers": 3},
        "max_time": 1.0,  # train on t in (0, max_time] (1: every noise level the sampler visits)
    },
}

# sections whose keys are free (checked by the object built from them)
OPEN_SECTIONS = ("model", "predictor.network", "diffusion.fields.pos.schedule", "diffusion.fields.atom_types.schedule",
                 "diffusion.fields.charges.schedule")


def merge(base: dict, update: dict, prefix: str = "") -> dict:
    """``base`` updated recursively with ``update``; a key absent from ``base`` raises ConfigError.

    Open sections take any key; given a different ``name`` they are replaced as a whole (so a new schedule
    does not inherit the parameters of the default one), otherwise their keys are updated.
    """
    out = copy.deepcopy(base)
    for key, value in update.items():
        path = f"{prefix}{key}"
        if path in OPEN_SECTIONS:
            if isinstance(value, str):
                value = {"name": value}
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{path}' must be a mapping or a schedule name, got {value!r}")
            # a new name starts from a fresh mapping; parameters alone update the current one
            fresh = "name" in value and value["name"] != out.get(key, {}).get("name")
            out[key] = copy.deepcopy(value) if fresh else {**out.get(key, {}), **copy.deepcopy(value)}
            continue
        if key not in out:
            raise ConfigError(f"unknown config key '{path}'" + _suggest(key, out))
        if isinstance(out[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{path}' is a section; give its keys, not {value!r}")
            out[key] = merge(out[key], value, prefix=f"{path}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def _suggest(key: str, section: dict) -> str:
    import difflib

    close = difflib.get_close_matches(key, [str(k) for k in section], n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(map(str, section))})"


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=3"`` -> ``("a.b", 3)``: the value is read as YAML (numbers, booleans, null, lists)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = read_yaml(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def apply_overrides(config: dict, overrides: Iterable[str]) -> dict:
    """Apply dotted ``key=value`` overrides (unknown keys raise ConfigError naming them)."""
    for text in overrides:
        key, value = parse_override(text)
        nested: Any = value
        for part in reversed(key.split(".")):
            nested = {part: nested}
        config = merge(config, nested)
    return config


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> dict:
    """Defaults, updated by the YAML file at ``path`` (if any), then by the overrides; validated."""
    config = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            raw = read_yaml(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        try:
            config = merge(config, raw)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    config = apply_overrides(config, overrides)
    validate(config)
    return config


_CHOICES = {
    "diffusion.time_sampling": ("discrete", "continuous"),
    "diffusion.parameterization": ("eps", "x0"),
    "diffusion.fields.atom_types.kind": ("gaussian", "categorical"),
    "diffusion.fields.charges.kind": ("gaussian", "categorical"),
    "diffusion.fields.atom_types.limit": ("uniform", "marginal"),
    "diffusion.fields.charges.limit": ("uniform", "marginal"),
    "optim.scheduler.name": ("constant", "cosine", "exponential", "step"),
    "task": ("denoiser", "property_predictor"),
}


def _get(config: dict, path: str) -> Any:
    node = config
    for part in path.split("."):
        node = node[part]
    return node


def validate(config: dict) -> None:
    """Check values that can be checked without building objects."""
    for path, choices in _CHOICES.items():
        value = _get(config, path)
        if value not in choices:
            raise ConfigError(f"config key '{path}' must be one of {list(choices)}, got {value!r}")
    positive = ("data.batch_size", "diffusion.n_steps", "optim.lr")
    for path in positive:
        value = _get(config, path)
        if not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"config key '{path}' must be a positive number, got {value!r}")
    dropout = config["diffusion"]["conditioning"]["dropout"]
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ConfigError(f"config key 'diffusion.conditioning.dropout' must be in [0, 1), got {dropout!r}")
    props = config["diffusion"]["conditioning"]["properties"]
    if not isinstance(props, list) or not all(isinstance(p, str) for p in props):
        raise ConfigError("config key 'diffusion.conditioning.properties' must be a list of property names")
    resume = config["resume"]
    if resume is not None and not isinstance(resume, str):
        raise ConfigError(f"config key 'resume' must be null, 'auto' or a checkpoint path, got {resume!r}")
    init_from = config["init_from"]
    if init_from is not None and not isinstance(init_from, str):
        raise ConfigError(f"config key 'init_from' must be null or a checkpoint path, got {init_from!r}")
    forbidden = {"n_node_features", "n_scalar_outputs", "n_conditions"} & set(config["model"])
    if forbidden:
        raise ConfigError(f"config key 'model.{sorted(forbidden)[0]}' is set from the data and the diffusion fields")
    predictor = config["predictor"]
    props = predictor["properties"]
    if not isinstance(props, list) or not props or not all(isinstance(p, str) for p in props):
        raise ConfigError("config key 'predictor.properties' must be a non-empty list of property names")
    max_time = predictor["max_time"]
    if not isinstance(max_time, (int, float)) or not 0 < max_time <= 1:
        raise ConfigError(f"config key 'predictor.max_time' must be in (0, 1], got {max_time!r}")
    forbidden = {"n_node_features", "n_scalar_outputs", "n_conditions"} & set(predictor["network"])
    if forbidden:
        raise ConfigError(f"config key 'predictor.network.{sorted(forbidden)[0]}' is set from the data")
    for section in ("pos", "atom_types", "charges"):
        schedule = config["diffusion"]["fields"][section]["schedule"]
        if "name" not in schedule:
            raise ConfigError(f"config key 'diffusion.fields.{section}.schedule' needs a 'name'")


def dump_config(config: dict, path: str | Path) -> None:
    """Write the resolved config as YAML (what a run actually used)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(config, sort_keys=False))
