"""Loading trained models safely.

A molgen checkpoint is a Lightning checkpoint whose content is only tensors, numbers, strings, lists and dicts:
the config and the dataset statistics are plain dicts in ``hyper_parameters``; weights and EMA weights are in
``state_dict``; optimizer, LR-schedule, loop and callback states are Lightning's plain state dicts. So it loads
with ``torch.load(path, weights_only=True)``, which refuses to unpickle arbitrary objects: a checkpoint from the
internet cannot run code. Nothing here ever loads with ``weights_only=False``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from molgen.errors import InputError

__all__ = ["read_checkpoint", "load_model", "load_predictor", "checkpoint_task"]


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The raw checkpoint dict, loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint file does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError for unsafe content, others for corrupt files
        raise InputError(path, f"not a safe molgen checkpoint: {exc}") from None
    hparams = checkpoint.get("hyper_parameters", {})
    if "config" not in hparams or "statistics" not in hparams or "state_dict" not in checkpoint:
        raise InputError(path, "not a molgen checkpoint (no config / statistics / state_dict)")
    return checkpoint


def load_model(path: str | Path, map_location: str | torch.device = "cpu"):
    """A :class:`~molgen.training.module.DiffusionModule` in eval mode with the checkpoint's weights.

    Use ``module.inference_denoiser`` (EMA weights when trained with EMA), ``module.fields`` (encoding,
    conditioning, :meth:`~molgen.training.fields.FieldSet.model_fn`) and ``module.process`` (the corruptions).
    """
    from molgen.training.module import DiffusionModule

    checkpoint = read_checkpoint(path, map_location)
    hparams = checkpoint["hyper_parameters"]
    if checkpoint_task(checkpoint) != "denoiser":
        raise InputError(path, "a property-predictor checkpoint, not a diffusion model (use it for classifier "
                               "guidance: molgen sample --classifier PATH)")
    module = DiffusionModule(hparams["config"], hparams["statistics"])
    module.load_state_dict(checkpoint["state_dict"])
    module.global_step_loaded = int(checkpoint.get("global_step", 0))
    return module.eval().to(map_location)


def checkpoint_task(checkpoint: dict) -> str:
    """``"denoiser"`` or ``"property_predictor"`` (checkpoints from before the ``task`` key are denoisers)."""
    return str(checkpoint["hyper_parameters"]["config"].get("task", "denoiser"))


def load_predictor(path: str | Path, map_location: str | torch.device = "cpu"):
    """A :class:`~molgen.training.predictor_module.PropertyPredictorModule` in eval mode with the weights of a
    ``task: property_predictor`` checkpoint (loaded with ``weights_only=True``).

    ``module.predictor`` is the :class:`~molgen.sampling.guidance.NoisyPropertyPredictor` for
    :class:`~molgen.sampling.guidance.ClassifierGuidance`; ``module.fields`` its field encoding and process.
    """
    from molgen.training.predictor_module import PropertyPredictorModule

    checkpoint = read_checkpoint(path, map_location)
    if checkpoint_task(checkpoint) != "property_predictor":
        raise InputError(path, "not a property-predictor checkpoint (train one with `task: property_predictor`)")
    hparams = checkpoint["hyper_parameters"]
    module = PropertyPredictorModule(hparams["config"], hparams["statistics"])
    module.load_state_dict(checkpoint["state_dict"])
    module.global_step_loaded = int(checkpoint.get("global_step", 0))
    return module.eval().to(map_location)
