"""Record a shipped training segment of the QM9 model in the model folder's CSV files.

What each new segment adds (the bookkeeping done by hand until session 8):
  * training_log.csv      the run's Lightning ``metrics.csv`` rows (every ``csv/version_*``), labelled SEGMENT;
  * measured_ddpm100.csv  the 10,000-sample measurement (``measure``'s edm.json) at the cumulative step and
                          molecule count;
  * learning_curve.csv    the DDIM-100 curve point (``curve``'s edm.json), when --curve is given;
then the learning-curve plot is redrawn and the compute extrapolation reprinted (``extrapolate_compute.py``).

The cumulative step and molecule count continue the last row of measured_ddpm100.csv (the segment this one
started from) unless --previous STEP MOLECULES says otherwise; the segment's own steps are the checkpoint's
``global_step`` and its molecules per step ``batch_size x devices x num_nodes x accumulate_grad_batches`` from
the run's ``config.yaml``.

    python workflows/record_segment.py 9 runs/seg9 runs/seg9.ckpt --measure runs/measure_seg9 --curve runs/curve9/curve/seg9
    (add --dry-run to print the rows without writing)
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "molgen" / "models" / "qm9"
METRIC_COLUMNS = ["step", "molecules_seen", "atom_stability", "mol_stability", "validity", "uniqueness", "n_samples"]


def molecules_per_step(config_path: Path) -> int:
    """Global batch of a ``molgen train`` run: batch_size x devices x num_nodes x accumulate_grad_batches."""
    config = yaml.safe_load(config_path.read_text())
    trainer = config.get("trainer", {})
    devices = trainer.get("devices", 1)
    if not isinstance(devices, int):
        sys.exit(f"{config_path}: trainer.devices is {devices!r}; give the molecule count with --previous and "
                 "--molecules-per-step")
    return (int(config["data"]["batch_size"]) * devices * int(trainer.get("num_nodes", 1))
            * int(trainer.get("accumulate_grad_batches", 1)))


def run_metric_rows(run_dir: Path) -> list[dict[str, str]]:
    """Rows of every ``csv/version_*/metrics.csv`` in version order; rows a later version redid (resumed from an
    earlier checkpoint) are dropped, so each step is logged once."""
    versions = sorted((run_dir / "csv").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:]))
    if not versions:
        sys.exit(f"{run_dir}: no csv/version_*/metrics.csv (is it a `molgen train` output_dir?)")
    tables = [list(csv.DictReader(io.StringIO(path.read_text()))) for path in versions]
    first_steps = [int(table[0]["step"]) if table else None for table in tables]  # where each version started
    rows: list[dict[str, str]] = []
    for index, table in enumerate(tables):
        later = [step for step in first_steps[index + 1:] if step is not None]
        redo_from = min(later, default=None)
        rows += [r for r in table if redo_from is None or int(r["step"]) < redo_from]
    return rows


def metric_row(edm_json: Path, step: int, molecules: int) -> list[str]:
    metrics = json.loads(edm_json.read_text())
    if metrics.get("protocol") != "edm":
        sys.exit(f"{edm_json}: protocol is {metrics.get('protocol')!r}, expected the EDM protocol's edm.json")
    return [str(step), str(molecules)] + [f"{metrics[k]:.4f}" for k in
                                          ("atom_stability", "mol_stability", "validity", "uniqueness")] + [str(metrics["n"])]


def last_measured(path: Path) -> tuple[int, int]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return int(rows[-1]["step"]), int(rows[-1]["molecules_seen"])


def read_header(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        return next(csv.reader(handle))


def append_rows(path: Path, header: list[str], rows: list[list[str]], dry_run: bool) -> None:
    existing_header = read_header(path)
    if existing_header != header:
        sys.exit(f"{path}: header {existing_header} differs from {header}")
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    print(f"--- {path.relative_to(ROOT)}: +{len(rows)} row(s)\n" + "".join(buffer.getvalue().splitlines(True)[:5])
          + ("...\n" if len(rows) > 5 else ""))
    if not dry_run:
        with path.open("a") as handle:
            handle.write(buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("segment", help="segment label written in training_log.csv's first column (e.g. 9)")
    parser.add_argument("run_dir", type=Path, help="the segment's `molgen train` output_dir")
    parser.add_argument("checkpoint", type=Path, help="the checkpoint that was measured and shipped")
    parser.add_argument("--measure", type=Path, required=True, help="folder with the 10,000-sample edm.json")
    parser.add_argument("--curve", type=Path, help="folder with the DDIM-100 curve point's edm.json")
    parser.add_argument("--previous", type=int, nargs=2, metavar=("STEP", "MOLECULES"),
                        help="cumulative step and molecules the segment started from (default: the last measured row)")
    parser.add_argument("--molecules-per-step", type=int, help="default: from the run's config.yaml")
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--dry-run", action="store_true", help="print the rows, write nothing")
    args = parser.parse_args(argv)

    measured_csv = args.model_dir / "measured_ddpm100.csv"
    start_step, start_molecules = args.previous or last_measured(measured_csv)
    steps = int(torch.load(args.checkpoint, map_location="cpu", weights_only=False)["global_step"])
    per_step = args.molecules_per_step or molecules_per_step(args.run_dir / "config.yaml")
    step, molecules = start_step + steps, start_molecules + steps * per_step
    print(f"segment {args.segment}: {steps} steps x {per_step} molecules from step {start_step} "
          f"({start_molecules:,} molecules) -> step {step}, {molecules:,} molecules")

    log_path = args.model_dir / "training_log.csv"
    log_header = read_header(log_path)
    run_rows = run_metric_rows(args.run_dir)
    unknown = sorted(set(run_rows[0]) - set(log_header))
    if unknown:
        sys.exit(f"{args.run_dir}: metrics.csv columns {unknown} are not in {log_path.name}; add them to its header first")
    append_rows(log_path, log_header, [[args.segment] + [r.get(c, "") for c in log_header[1:]] for r in run_rows],
                args.dry_run)
    append_rows(measured_csv, METRIC_COLUMNS, [metric_row(args.measure / "edm.json", step, molecules)], args.dry_run)
    curve_csv = args.model_dir / "learning_curve.csv"
    if args.curve:
        append_rows(curve_csv, METRIC_COLUMNS, [metric_row(args.curve / "edm.json", step, molecules)], args.dry_run)
    if args.dry_run:
        return 0
    workflows = Path(__file__).resolve().parent
    subprocess.run([sys.executable, str(workflows / "plot_learning_curve.py"), str(curve_csv),
                    str(args.model_dir / "learning_curve.png"), "--measured", str(measured_csv)], check=True)
    subprocess.run([sys.executable, str(workflows / "extrapolate_compute.py"), str(measured_csv)], check=True)
    print("now update MODEL_CARD.md, README.md and benchmarks/ with the new figures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
