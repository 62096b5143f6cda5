"""The Lightning module: a thin shell around :func:`molgen.diffusion.losses.diffusion_loss`.

:class:`DiffusionModule` owns the denoiser, its EMA copy and the :class:`~molgen.training.fields.FieldSet`;
the math (corruption, loss) lives in :mod:`molgen.diffusion`. What the module adds:

- AdamW with a learning-rate schedule (``optim.scheduler``: constant / cosine / exponential / step + warmup);
- EMA weights (``ema_denoiser``, a parameter-for-parameter copy kept in the state dict, so it is saved in every
  checkpoint); validation and sampling use them;
- gradient clipping at ``min(global_norm, time-dependent threshold)`` where the time-dependent threshold falls
  inversely with the SNR of the batch's sampled times (:func:`molgen.training.optim.clip_threshold`);
- a NaN guard: a batch whose loss or gradients are not finite is skipped (no parameter, moment or EMA update)
  and counted in ``n_skipped`` (saved, logged as ``train/skipped``); in DDP the decision is all-reduced so every
  rank skips together;
- condition dropout for classifier-free guidance (``diffusion.conditioning.dropout``).

Checkpoints hold only tensors and plain containers (config and dataset statistics are stored as plain dicts in
the hyper-parameters; the LR schedule is a closure, whose state is just its step), so they load with
``torch.load(path, weights_only=True)``: see :func:`molgen.training.checkpoint.load_model`.
"""

from __future__ import annotations

import copy

import lightning as L
import torch
from torch import Tensor

from molgen import __version__
from molgen import keys as K
from molgen.data.statistics import DatasetStatistics
from molgen.diffusion.losses import LossOutput, diffusion_loss
from molgen.training.fields import POS, FieldSet
from molgen.training.optim import clip_threshold, ema_decay, grads_finite, lr_lambda, update_ema

__all__ = ["DiffusionModule"]


class DiffusionModule(L.LightningModule):
    """Diffusion training of an equivariant denoiser.

    Parameters
    ----------
    config : the resolved training config (plain dict, see :mod:`molgen.training.config`).
    statistics : the training set's statistics, as :meth:`DatasetStatistics.to_dict` (plain dict).
    """

    def __init__(self, config: dict, statistics: dict):
        super().__init__()
        from molgen.model.denoiser import build_denoiser

        self.save_hyperparameters({"config": config, "statistics": statistics})
        self.config = config
        self.statistics = DatasetStatistics.from_dict(statistics)
        self.fields = FieldSet(config["diffusion"], self.statistics)
        self.process = self.fields.process
        self.denoiser = build_denoiser({**config["model"], **self.fields.network_sizes()})
        ema_cfg = config["optim"]["ema"]
        self.use_ema = bool(ema_cfg["enabled"])
        if self.use_ema:
            self.ema_denoiser = copy.deepcopy(self.denoiser)
            self.ema_denoiser.requires_grad_(False)
        self.register_buffer("n_skipped", torch.zeros((), dtype=torch.long))
        self.register_buffer("n_ema_updates", torch.zeros((), dtype=torch.long))
        self._batch_t: Tensor | None = None
        self._loss_finite = True
        self._stepped = False

    # --- the network used for inference --------------------------------------------------
    @property
    def inference_denoiser(self):
        """The EMA weights when enabled, else the trained ones."""
        return self.ema_denoiser if self.use_ema else self.denoiser

    # --- the loss ------------------------------------------------------------------------
    def compute_loss(self, batch, denoiser=None, condition_dropout: float = 0.0,
                     generator: torch.Generator | None = None, t: Tensor | None = None) -> LossOutput:
        """The diffusion loss of a PyG batch (the ``calc_loss`` of the module)."""
        denoiser = denoiser if denoiser is not None else self.denoiser
        n_graphs = int(batch.num_graphs)
        fixed = batch[K.FIXED] if K.FIXED in batch else None
        if fixed is not None and not bool(fixed.any()):
            fixed = None
        condition = self.fields.batch_condition(batch, condition_dropout, generator)
        model_fn = self.fields.model_fn(denoiser, batch.batch, n_graphs, fixed, condition)
        raw = self.fields.raw_fields(batch)
        return diffusion_loss(self.process, model_fn, raw, batch.batch, n_graphs, fixed,
                              weights=self.fields.weights, t=t, generator=generator)

    def training_step(self, batch, batch_idx: int):
        out = self.compute_loss(batch, condition_dropout=self.fields.condition_dropout)
        self._batch_t = out.t.detach()
        self._loss_finite = bool(torch.isfinite(out.loss.detach()))
        n = int(batch.num_graphs)
        if self._loss_finite:
            self.log("train/loss", out.loss, prog_bar=True, batch_size=n)
            for name, value in out.fields.items():
                self.log(f"train/loss_{name}", value, batch_size=n)
        # a non-finite loss is still back-propagated: its gradients are non-finite too, and the guard in
        # on_before_optimizer_step skips the step on every rank together
        return out.loss

    def validation_step(self, batch, batch_idx: int):
        # fixed times and noise per batch: validation losses are comparable between evaluations
        device = batch.batch.device
        generator = torch.Generator(device=device).manual_seed(1_000_003 * (batch_idx + 1))
        with torch.no_grad():
            out = self.compute_loss(batch, denoiser=self.inference_denoiser, generator=generator)
        n = int(batch.num_graphs)
        self.log("val/loss", out.loss, prog_bar=True, batch_size=n, sync_dist=True)
        for name, value in out.fields.items():
            self.log(f"val/loss_{name}", value, batch_size=n, sync_dist=True)
        return out.loss

    # --- optimisation --------------------------------------------------------------------
    def configure_optimizers(self):
        opt = self.config["optim"]
        optimizer = torch.optim.AdamW(self.denoiser.parameters(), lr=float(opt["lr"]), betas=tuple(opt["betas"]),
                                      eps=float(opt["eps"]), weight_decay=float(opt["weight_decay"]))
        total = None
        if opt["scheduler"]["name"] == "cosine" and not opt["scheduler"].get("total_steps"):
            total = int(self.trainer.estimated_stepping_batches)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(opt["scheduler"], total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    def on_before_optimizer_step(self, optimizer) -> None:
        bad = (not self._loss_finite) or (not grads_finite(self.denoiser.parameters()))
        if self.trainer.world_size > 1:
            flag = torch.tensor(float(bad), device=self.device)
            bad = bool(self.trainer.strategy.reduce(flag, reduce_op="sum") > 0)
        self._stepped = not bad
        if bad:
            for p in self.denoiser.parameters():
                p.grad = None  # AdamW skips parameters without gradients: no update, no moment change
            self.n_skipped += 1
        self.log("train/skipped", self.n_skipped.float(), batch_size=1)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        clip = self.config["optim"]["clip"]
        global_norm = clip["global_norm"]
        if global_norm is None or not self._stepped:
            return
        threshold = float(global_norm)
        if clip["time_dependent"] and self._batch_t is not None:
            snr = self.process[POS].schedule.snr(self._batch_t.double())
            threshold = clip_threshold(snr, threshold, clip["snr_ref"], clip["power"], clip["min_factor"],
                                       clip["max_snr"])
        norm = torch.nn.utils.clip_grad_norm_(self.denoiser.parameters(), threshold)
        self.log("train/grad_norm", norm, batch_size=1)
        self.log("train/clip_threshold", threshold, batch_size=1)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if not self.use_ema or not self._stepped:
            return
        cfg = self.config["optim"]["ema"]
        # one update per optimizer step (gradient accumulation calls this hook on every batch)
        if int(self.n_ema_updates) >= self.global_step:
            return
        decay = ema_decay(float(cfg["decay"]), int(self.n_ema_updates), bool(cfg["warmup"]))
        update_ema(self.ema_denoiser, self.denoiser, decay)
        self.n_ema_updates += 1
        self._stepped = False

    # --- checkpoints ---------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["molgen"] = {"version": __version__, "format": 1}
