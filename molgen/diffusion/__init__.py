"""Generic diffusion math: noise schedules, one forward process (corruption) per field, losses.

Nothing here imports chemistry libraries; fields are named tensors with a per-atom graph index.
"""

from molgen.diffusion.corruptions import (
    CategoricalCorruption,
    Corruption,
    GaussianCorruption,
    PositionCorruption,
    Posterior,
    graph_mean,
    remove_mean,
)
from molgen.diffusion.losses import LossOutput, diffusion_loss, graph_average, weighted_field_loss
from molgen.diffusion.process import JointDiffusion, NoisyFields
from molgen.diffusion.schedules import (
    CosineSchedule,
    DiscreteSchedule,
    ExponentialSchedule,
    LinearSchedule,
    NoiseSchedule,
    PolynomialSchedule,
    build_schedule,
)

__all__ = [
    "CategoricalCorruption", "Corruption", "GaussianCorruption", "PositionCorruption", "Posterior",
    "graph_mean", "remove_mean", "LossOutput", "diffusion_loss", "graph_average", "weighted_field_loss",
    "JointDiffusion", "NoisyFields", "CosineSchedule", "DiscreteSchedule", "ExponentialSchedule",
    "LinearSchedule", "NoiseSchedule", "PolynomialSchedule", "build_schedule",
]
