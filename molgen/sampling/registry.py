"""Models shipped inside the package: ``molgen/models/<name>/`` with one checkpoint and a ``MODEL_CARD.md``.

A shipped model is a folder under ``molgen/models/`` holding exactly one checkpoint (``*.ckpt`` or ``*.pt``, a
molgen training checkpoint, loaded with ``weights_only=True``) and a ``MODEL_CARD.md`` whose first heading or
first non-empty line is the one-line description ``molgen sample --model`` prints. Dropping such a folder there
is all it takes to ship a model (the package data globs of ``pyproject.toml`` must cover the checkpoint's
extension).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from molgen.errors import ConfigError

__all__ = ["ShippedModel", "models_dir", "list_models", "model_path"]

CHECKPOINT_SUFFIXES = (".ckpt", ".pt")


@dataclass
class ShippedModel:
    name: str
    checkpoint: Path
    card: Path | None
    description: str


def models_dir() -> Path:
    """``molgen/models`` inside the installed package."""
    return Path(__file__).resolve().parents[1] / "models"


def _description(card: Path | None) -> str:
    if card is None or not card.is_file():
        return "(no model card)"
    for line in card.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line
    return "(empty model card)"


def list_models(root: Path | None = None) -> list[ShippedModel]:
    """Shipped models, sorted by name (folders without exactly one checkpoint are skipped)."""
    root = models_dir() if root is None else Path(root)
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        checkpoints = sorted(p for p in folder.iterdir() if p.suffix in CHECKPOINT_SUFFIXES and p.is_file())
        if len(checkpoints) != 1:
            continue
        card = folder / "MODEL_CARD.md"
        found.append(ShippedModel(folder.name, checkpoints[0], card if card.is_file() else None,
                                  _description(card if card.is_file() else None)))
    return found


def model_path(name: str, root: Path | None = None) -> Path:
    """Checkpoint of the shipped model ``name``; ConfigError listing the available ones otherwise."""
    models = {m.name: m for m in list_models(root)}
    if name not in models:
        have = ", ".join(models) if models else "none are shipped in this installation"
        raise ConfigError(f"no shipped model named {name!r} (available: {have})")
    return models[name].checkpoint
