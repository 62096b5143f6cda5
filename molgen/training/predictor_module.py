"""The Lightning module of ``task: property_predictor``: a noisy-structure property predictor for classifier guidance.

:class:`PropertyPredictorModule` wraps a :class:`~molgen.sampling.guidance.NoisyPropertyPredictor` and trains it
with :func:`~molgen.sampling.guidance.predictor_loss` (mean squared error in normalised units) on structures noised
by the forward process of the config's ``diffusion`` section, through the same
:class:`~molgen.training.fields.FieldSet` as :class:`~molgen.training.module.DiffusionModule`: the same encoding,
the same schedules, hence the same noise levels the sampler shows the predictor during guidance (so the
``diffusion.fields`` of the predictor's config must be those of the denoiser it guides; the sampling loader checks).

Optimisation: AdamW with the ``optim`` learning-rate schedule and plain global-norm clipping
(``optim.clip.global_norm``); no EMA (``optim.ema`` is ignored). Validation uses fixed times and noise per
batch, so ``val/loss`` values are comparable between evaluations.

Checkpoints are written by the same trainer (step checkpoints, ``last.ckpt``, resume) and hold only tensors and
plain containers (config and statistics as plain dicts), so they load with ``torch.load(..., weights_only=True)``:
see :func:`molgen.training.checkpoint.load_predictor`.
"""

from __future__ import annotations

import lightning as L
import torch

from molgen import __version__
from molgen.data.statistics import DatasetStatistics
from molgen.training.fields import FieldSet
from molgen.training.optim import lr_lambda

__all__ = ["PropertyPredictorModule", "TASK"]

TASK = "property_predictor"


class PropertyPredictorModule(L.LightningModule):
    """Training of a :class:`~molgen.sampling.guidance.NoisyPropertyPredictor` on noisy structures.

    Parameters
    ----------
    config : the resolved training config (plain dict) with ``task: property_predictor``.
    statistics : the training set's statistics, as :meth:`DatasetStatistics.to_dict` (plain dict).
    """

    def __init__(self, config: dict, statistics: dict):
        super().__init__()
        from molgen.sampling.guidance import NoisyPropertyPredictor

        self.save_hyperparameters({"config": config, "statistics": statistics})
        self.config = config
        self.statistics = DatasetStatistics.from_dict(statistics)
        self.fields = FieldSet(config["diffusion"], self.statistics)
        self.process = self.fields.process
        spec = config["predictor"]
        try:
            self.predictor = NoisyPropertyPredictor(self.fields, list(spec["properties"]), dict(spec["network"]))
        except ValueError as exc:  # a property missing from the dataset
            from molgen.errors import ConfigError

            raise ConfigError(f"config key 'predictor.properties': {exc}") from None
        self.max_time = float(spec["max_time"])

    @property
    def property_names(self) -> list[str]:
        return list(self.predictor.property_names)

    def compute_loss(self, batch, generator: torch.Generator | None = None, t=None) -> torch.Tensor:
        """Mean squared error (normalised units) on ``batch`` noised at random (or given) times."""
        return _predictor_loss(self.predictor, batch, generator, t, self.max_time)

    def training_step(self, batch, batch_idx: int):
        loss = self.compute_loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=int(batch.num_graphs))
        return loss

    def validation_step(self, batch, batch_idx: int):
        generator = torch.Generator(device=batch.batch.device).manual_seed(1_000_003 * (batch_idx + 1))
        with torch.no_grad():
            loss = self.compute_loss(batch, generator)
        self.log("val/loss", loss, prog_bar=True, batch_size=int(batch.num_graphs), sync_dist=True)
        return loss

    def configure_optimizers(self):
        opt = self.config["optim"]
        optimizer = torch.optim.AdamW(self.predictor.parameters(), lr=float(opt["lr"]), betas=tuple(opt["betas"]),
                                      eps=float(opt["eps"]), weight_decay=float(opt["weight_decay"]))
        total = None
        if opt["scheduler"]["name"] == "cosine" and not opt["scheduler"].get("total_steps"):
            total = int(self.trainer.estimated_stepping_batches)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(opt["scheduler"], total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        global_norm = self.config["optim"]["clip"]["global_norm"]
        if global_norm is None:
            return
        norm = torch.nn.utils.clip_grad_norm_(self.predictor.parameters(), float(global_norm))
        self.log("train/grad_norm", norm, batch_size=1)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["molgen"] = {"version": __version__, "format": 1, "task": TASK}


def _predictor_loss(predictor, batch, generator, t, max_time):
    from molgen.sampling.guidance import predictor_loss

    return predictor_loss(predictor, batch, generator, t=t, max_time=max_time)
