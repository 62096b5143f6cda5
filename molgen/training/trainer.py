"""Building and running a training job from a config: data module, module, loggers, checkpoints, trainer.

:func:`train` is what ``molgen train`` runs. Multi-device and multi-node training go through Lightning:
``trainer.devices`` / ``trainer.num_nodes`` / ``trainer.strategy`` (``ddp``; under SLURM, Lightning reads the
job's environment itself). ``time_limit`` stops this invocation after a wall-clock time and saves the final
checkpoint (:mod:`molgen.training.time_limit`), for schedules trained in time-limited jobs. Resuming:
``resume: auto`` continues from ``<output_dir>/checkpoints/last.ckpt`` when it exists, ``resume: PATH`` from that
checkpoint; both restore weights, EMA, optimizer, LR schedule, step and skip counter, and load with
``weights_only=True``. ``init_from: PATH`` instead starts a new run from another run's weights (fine-tuning,
e.g. adding a condition to an unconditional model; :mod:`molgen.training.init_from`).

``task: property_predictor`` trains a noisy-structure property predictor for classifier guidance
(:class:`~molgen.training.predictor_module.PropertyPredictorModule`) with the same data, trainer, loggers,
checkpoints and resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from molgen.errors import ConfigError
from molgen.training.config import dump_config
from molgen.training.time_limit import WallClockLimit, parse_duration

__all__ = ["build_datamodule", "build_module", "build_trainer", "resolve_resume", "train", "TrainResult", "CHECKPOINT_DIR"]

CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"


@dataclass
class TrainResult:
    """What a finished :func:`train` leaves behind."""

    trainer: L.Trainer
    module: "L.LightningModule"
    output_dir: Path
    last_checkpoint: Path


def build_datamodule(config: dict):
    from molgen.data.datamodule import StructureDataModule

    d = config["data"]
    return StructureDataModule(source=d["source"], batch_size=int(d["batch_size"]), num_workers=int(d["num_workers"]),
                               cache_dir=d["cache_dir"], max_train=d["max_train"], seed=int(config["seed"]))


def resolve_resume(config: dict) -> Path | None:
    """The checkpoint to resume from, or None (``resume: auto`` without a checkpoint starts afresh)."""
    resume = config["resume"]
    if resume is None:
        return None
    if resume == "auto":
        last = Path(config["output_dir"]) / CHECKPOINT_DIR / LAST
        return last if last.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise ConfigError(f"config key 'resume': checkpoint {path} does not exist")
    return path


def build_trainer(config: dict, extra_callbacks=()) -> L.Trainer:
    """A Lightning trainer with CSV / TensorBoard loggers and step checkpoints in ``output_dir``."""
    out = Path(config["output_dir"])
    ck = config["checkpoint"]
    keep = int(ck["keep"])
    callbacks = [
        ModelCheckpoint(dirpath=out / CHECKPOINT_DIR, filename="step{step:08d}", auto_insert_metric_name=False,
                        every_n_train_steps=int(ck["every_n_steps"]), save_top_k=keep, monitor="step", mode="max",
                        save_last=True),
        *extra_callbacks,
    ]
    if config.get("time_limit") is not None:
        callbacks.append(WallClockLimit(parse_duration(config["time_limit"])))
    loggers = []
    if config["logging"]["csv"]:
        loggers.append(CSVLogger(save_dir=str(out), name="csv"))
    if config["logging"]["tensorboard"]:
        loggers.append(TensorBoardLogger(save_dir=str(out), name="tensorboard", default_hp_metric=False))
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    kwargs = dict(config["trainer"])
    try:
        return L.Trainer(default_root_dir=str(out), callbacks=callbacks, logger=loggers or False, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"trainer: {exc}") from None


def build_module(config: dict, statistics: dict) -> L.LightningModule:
    """The Lightning module of the config's ``task``."""
    if config.get("task", "denoiser") == "property_predictor":
        from molgen.training.predictor_module import PropertyPredictorModule

        return PropertyPredictorModule(config, statistics)
    from molgen.training.module import DiffusionModule

    return DiffusionModule(config, statistics)


def train(config: dict, extra_callbacks=(), datamodule=None) -> TrainResult:
    """Run a training job described by a resolved config (see :func:`molgen.training.config.load_config`)."""
    L.seed_everything(int(config["seed"]), workers=True, verbose=False)
    out = Path(config["output_dir"])
    resume = resolve_resume(config)
    datamodule = datamodule if datamodule is not None else build_datamodule(config)
    statistics = datamodule.statistics.to_dict()
    module = build_module(config, statistics)
    trainer = build_trainer(config, extra_callbacks)
    if resume is None and config.get("init_from"):
        from molgen.training.init_from import initialise_from

        report = initialise_from(module, config["init_from"], statistics)
        if trainer.is_global_zero:
            print(report.summary(), flush=True)
    if trainer.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        dump_config(config, out / "config.yaml")
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resume else None,
                weights_only=True if resume else None)
    last = out / CHECKPOINT_DIR / LAST
    if not trainer.interrupted:
        trainer.save_checkpoint(last, weights_only=False)  # the final state, whatever the checkpoint interval
    return TrainResult(trainer=trainer, module=module, output_dir=out, last_checkpoint=last)
