"""The equivariant denoiser network and the graph builders it runs on.

Public API: :class:`DenoiserInput`, :class:`DenoiserOutput`, :class:`EquivariantDenoiser`,
:func:`build_denoiser`, :func:`count_parameters`, :data:`PRESETS`; graph builders
:class:`FullyConnectedGraph`, :class:`RadiusGraph`, :class:`Edges`, :func:`build_graph`.
"""

from molgen.model.denoiser import (
    PRESETS,
    DenoiserInput,
    DenoiserOutput,
    EquivariantDenoiser,
    build_denoiser,
    count_parameters,
)
from molgen.model.graph import Edges, FullyConnectedGraph, GraphBuilder, RadiusGraph, build_graph

__all__ = [
    "PRESETS",
    "DenoiserInput",
    "DenoiserOutput",
    "EquivariantDenoiser",
    "build_denoiser",
    "count_parameters",
    "Edges",
    "FullyConnectedGraph",
    "GraphBuilder",
    "RadiusGraph",
    "build_graph",
]
