"""A wall-clock limit for one ``molgen train`` invocation (config key ``time_limit``).

Lightning's own ``max_time`` counts the training time of every run that led to a checkpoint: resuming a run
that stopped on its limit stops again at once. ``time_limit`` counts from the start of this invocation
only, so a long schedule can be trained in time-limited jobs (queue slots, borrowed GPUs), each resuming the
last checkpoint with the same limit. When the limit passes, training stops after the current batch and the
final checkpoint is saved as on a normal end.
"""

from __future__ import annotations

import time

import lightning as L

from molgen.errors import ConfigError

__all__ = ["WallClockLimit", "parse_duration"]


def parse_duration(value, key: str = "time_limit") -> float:
    """Seconds in ``value``: a number of seconds, or ``"HH:MM:SS"`` / ``"DD:HH:MM:SS"`` / ``"MM:SS"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            parts = [float(p) for p in value.strip().split(":")]
        except ValueError:
            raise ConfigError(f"config key '{key}': {value!r} is not seconds or [DD:]HH:MM:SS") from None
        if not 1 <= len(parts) <= 4:
            raise ConfigError(f"config key '{key}': {value!r} is not seconds or [DD:]HH:MM:SS")
        seconds = 0.0
        for part, unit in zip(reversed(parts), (1, 60, 3600, 86400)):
            seconds += part * unit
    else:
        raise ConfigError(f"config key '{key}': expected seconds or [DD:]HH:MM:SS, got {value!r}")
    if seconds <= 0:
        raise ConfigError(f"config key '{key}': the limit must be positive, got {value!r}")
    return seconds


class WallClockLimit(L.Callback):
    """Stop training once ``seconds`` of wall-clock time have passed since fitting started.

    Checked after every training batch; under DDP the ranks agree (any rank over the limit stops all),
    so no rank waits on a collective the others have left.
    """

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self._start: float | None = None
        self.stopped_at_step: int | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        over = self._start is not None and time.monotonic() - self._start >= self.seconds
        if trainer.strategy.reduce_boolean_decision(over, all=False):
            trainer.should_stop = True
            if self.stopped_at_step is None:
                self.stopped_at_step = trainer.global_step
                if trainer.is_global_zero:
                    print(f"molgen train: time limit of {self.seconds:.0f} s reached at step {trainer.global_step}; "
                          "saving the checkpoint and stopping", flush=True)
