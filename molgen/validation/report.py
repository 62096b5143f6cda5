"""Reports: a terminal table, JSON, a per-structure CSV and PNG histograms against a reference."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Sequence

# metrics shown as percentages, in this order, with their labels
_PERCENT = (
    ("atom_stability", "atom stability"),
    ("mol_stability", "molecule stability"),
    ("validity", "validity"),
    ("connectivity", "connectivity (1 fragment)"),
    ("uniqueness", "uniqueness"),
    ("valid_and_unique", "valid and unique"),
    ("novelty", "novelty (of unique)"),
    ("structural_validity", "structural validity"),
    ("compositional_validity", "compositional validity"),
    ("match_rate", "match rate"),
    ("cov_recall", "COV-R"),
    ("cov_precision", "COV-P"),
    ("pb_all", "PoseBusters: all checks"),
    ("pb_bond_lengths", "PoseBusters: bond lengths"),
    ("pb_bond_angles", "PoseBusters: bond angles"),
    ("pb_no_internal_clash", "PoseBusters: no internal clash"),
    ("pb_aromatic_ring_flatness", "PoseBusters: aromatic rings flat"),
    ("pb_double_bond_flatness", "PoseBusters: double bonds flat"),
    ("pb_internal_energy", "PoseBusters: energy ratio"),
    ("no_protein_clash", "no clash with protein"),
    ("volume_overlap_ok", "volume overlap <= 7.5 %"),
    ("near_protein", "within 5 Å of protein"),
    ("all_checks", "all pocket checks"),
)


def format_table(metrics: dict[str, Any], title: str = "") -> str:
    """Readable multi-line table of the metrics: fractions as percentages, the rest as numbers."""
    lines = []
    if title:
        lines.append(title)
    n = metrics.get("n")
    head = f"structures: {n}" if n is not None else ""
    if metrics.get("n_unreadable"):
        head += f" ({metrics['n_unreadable']} unreadable, counted as failures)"
    if "protocol" in metrics:
        head += f"   protocol: {metrics['protocol']}"
    if head:
        lines.append(head)
    width = max(len(label) for _, label in _PERCENT) + 2
    shown = set()
    for key, label in _PERCENT:
        if key in metrics and isinstance(metrics[key], (int, float)):
            lines.append(f"  {label:<{width}} {100 * metrics[key]:7.2f} %")
            shown.add(key)
    skip = shown | {"n", "n_unreadable", "protocol"}
    for key, value in metrics.items():
        if key in skip or isinstance(value, (dict, list)):
            continue
        if isinstance(value, float):
            text = "nan" if math.isnan(value) else f"{value:.4g}"
        else:
            text = str(value)
        lines.append(f"  {key.replace('_', ' '):<{width}} {text:>7}")
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    """JSON-safe value: NaN -> None, numpy scalars -> Python, recursively."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | Path, metrics: dict[str, Any]) -> None:
    """Metrics as JSON (NaN written as null)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(_clean(metrics), indent=2, sort_keys=False) + "\n")


def write_csv(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """One row per structure; columns are the union of the rows' keys, in first-seen order."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})



def _save_figure(fig, path: Path) -> Path:
    """Lay out, write (PNG, 100 dpi) and close ``fig``; returns ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

def plot_molecule_distributions(directory: str | Path, generated, reference=None, top: int = 6) -> list[Path]:
    """PNG histograms (atom types, sizes, the most common bond lengths and angles), reference overlaid.

    ``generated`` and ``reference`` are :class:`molgen.validation.distributions.DistributionStats`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from molgen.validation.distributions import ANGLE_BINS, LENGTH_BINS

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []

    def bars(name: str, gen: dict, ref: dict | None, xlabel: str) -> None:
        keys = sorted(set(gen) | set(ref or {}), key=lambda k: (isinstance(k, str), k))
        x = np.arange(len(keys))
        fig, ax = plt.subplots(figsize=(6, 3.5))
        total = sum(gen.values()) or 1
        ax.bar(x - 0.2, [gen.get(k, 0) / total for k in keys], 0.4, label="generated")
        if ref:
            rtotal = sum(ref.values()) or 1
            ax.bar(x + 0.2, [ref.get(k, 0) / rtotal for k in keys], 0.4, label="reference")
        ax.set_xticks(x, [str(k) for k in keys], rotation=90 if len(keys) > 20 else 0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("fraction")
        ax.legend()
        written.append(_save_figure(fig, directory / f"{name}.png"))

    def curves(prefix: str, gen: dict, ref: dict | None, bins, xlabel: str) -> None:
        source = ref if ref else gen
        names = sorted(source, key=lambda k: -source[k].sum())[:top]
        centres = 0.5 * (bins[1:] + bins[:-1])
        for name in names:
            fig, ax = plt.subplots(figsize=(6, 3.5))
            if name in gen and gen[name].sum():
                ax.step(centres, gen[name] / gen[name].sum(), where="mid", label="generated")
            if ref and name in ref and ref[name].sum():
                ax.step(centres, ref[name] / ref[name].sum(), where="mid", label="reference")
            empty = np.array([], dtype=int)
            gen_pop = np.flatnonzero(gen[name]) if name in gen else empty
            ref_pop = np.flatnonzero(ref[name]) if ref and name in ref else empty
            every = np.concatenate([gen_pop, ref_pop])
            if len(every):
                ax.set_xlim(centres[max(every.min() - 5, 0)], centres[min(every.max() + 5, len(centres) - 1)])
            ax.set_xlabel(xlabel)
            ax.set_ylabel("fraction")
            ax.set_title(name)
            ax.legend()
            written.append(_save_figure(fig, directory / f"{prefix}_{name}.png"))

    bars("atom_types", dict(generated.atom_types), dict(reference.atom_types) if reference else None, "element")
    bars("sizes", dict(generated.sizes), dict(reference.sizes) if reference else None, "atoms per molecule")
    curves("bond_length", generated.bond_lengths, reference.bond_lengths if reference else None, LENGTH_BINS, "length / Å")
    curves("bond_angle", generated.bond_angles, reference.bond_angles if reference else None, ANGLE_BINS, "angle / degree")
    return written


def plot_crystal_distributions(directory: str | Path, structures: Sequence, reference: Sequence | None = None) -> list[Path]:
    """PNG histograms of density and number of elements, reference overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, value, label in (
        ("density", lambda s: s.density, "density / g cm^-3"),
        ("num_elements", lambda s: len(set(s.species)), "number of elements"),
    ):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.hist([value(s) for s in structures], bins=30, density=True, alpha=0.6, label="generated")
        if reference:
            ax.hist([value(s) for s in reference], bins=30, density=True, alpha=0.6, label="reference")
        ax.set_xlabel(label)
        ax.legend()
        written.append(_save_figure(fig, directory / f"{name}.png"))
    return written
