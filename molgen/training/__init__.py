"""Training: config loading, the Lightning module (EMA, clipping, NaN guard), trainer construction, checkpoints.

Public API: :func:`load_config`, :class:`DiffusionModule`, :class:`FieldSet`, :func:`train`,
:func:`build_trainer`, :func:`load_model`, :func:`read_checkpoint`.
"""

from molgen.training.checkpoint import load_model, read_checkpoint
from molgen.training.config import DEFAULTS, load_config
from molgen.training.fields import FieldSet
from molgen.training.trainer import build_trainer, train


def __getattr__(name):  # the Lightning module imports the network lazily
    if name == "DiffusionModule":
        from molgen.training.module import DiffusionModule

        return DiffusionModule
    raise AttributeError(name)


__all__ = ["DEFAULTS", "load_config", "FieldSet", "train", "build_trainer", "load_model", "read_checkpoint",
           "DiffusionModule"]
