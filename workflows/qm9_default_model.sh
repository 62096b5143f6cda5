#!/usr/bin/env bash
# How the shipped QM9 model (molgen/models/qm9/) is trained, measured and replaced.
#
#   bash workflows/qm9_default_model.sh train      # first run (or: continue from the shipped checkpoint, below)
#   bash workflows/qm9_default_model.sh continue   # resume from the shipped checkpoint (optimizer, EMA, step kept)
#   bash workflows/qm9_default_model.sh refine     # a new segment from SOURCE's weights (init_from), new optimizer
#   bash workflows/qm9_default_model.sh measure CKPT [N]   # N samples (default 10000), 100 steps, EDM + charged protocols
#   bash workflows/qm9_default_model.sh curve CKPT...       # learning-curve points: N (200) samples each, DDIM 100
#   bash workflows/qm9_default_model.sh ship CKPT  # copy CKPT in as the shipped model -- only when `measure` improved
#   then: python workflows/record_segment.py LABEL RUN CKPT --measure DIR --curve DIR  # the model folder's CSVs
#
# On a GPU: workflows/qm9_gpu_continue.sh (batch 512, time-limited calls, a packed dataset copy); it is ~24x
# faster than this CPU path. On a shared CPU keep OMP_NUM_THREADS=1. STEPS is the last step of the cosine. The
# shipped model is at the end of its own (segment-8) run's cosine: continue it with `refine` (SOURCE defaults to it).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-runs/qm9_small}
SHIPPED=molgen/models/qm9/model.ckpt
COMMON=(name=qm9_small "output_dir=$RUN" model.preset=small data.num_workers=0 optim.lr=5.0e-4
        optim.scheduler.warmup_steps=300 trainer.max_epochs=-1 trainer.precision=bf16-mixed
        trainer.val_check_interval=1000 trainer.check_val_every_n_epoch=null trainer.limit_val_batches=20
        trainer.log_every_n_steps=50 checkpoint.every_n_steps=500)

case "${1:-}" in
  train)
    STEPS=${STEPS:-6000}
    molgen train configs/qm9.yaml "${COMMON[@]}" optim.scheduler.total_steps="$STEPS" trainer.max_steps="$STEPS" ;;
  continue)
    STEPS=${STEPS:-40000}
    molgen train configs/qm9.yaml "${COMMON[@]}" optim.scheduler.total_steps="$STEPS" trainer.max_steps="$STEPS" \
      resume="$SHIPPED" ;;
  refine)
    # e.g. SOURCE=molgen/models/qm9_gap/model.ckpt: the gap-conditioned sibling trained on more molecules; init_from
    # folds its unconditional mode into this unconditional network. Two CPU processes unless DEVICES says otherwise;
    # BATCH is per process (segments 7, 8: BATCH=256 LR=1.5e-4 STEPS=4000 / 3800, 2 x 256 = 512 as on the GPU,
    # 340-350 molecules/s).
    SOURCE=${SOURCE:-$SHIPPED}; STEPS=${STEPS:-8000}
    molgen train configs/qm9.yaml "${COMMON[@]}" "init_from=$SOURCE" optim.lr="${LR:-2.0e-4}" \
      data.batch_size="${BATCH:-64}" optim.scheduler.warmup_steps="${WARMUP:-200}" \
      optim.scheduler.total_steps="$STEPS" trainer.max_steps="$STEPS" \
      trainer.accelerator=cpu trainer.devices="${DEVICES:-2}" trainer.strategy=ddp time_limit="${TIME_LIMIT:-01:30:00}" ;;
  measure)
    CKPT=$2; N=${3:-10000}; OUT=${OUT:-$RUN/measure}
    mkdir -p "$OUT"
    # stochastic 100-step ancestral sampling (ddpm with skipped steps): the best <= 100-step sampler measured
    # (benchmarks/sampling.md); bf16 network, as trained; DEVICES=2 runs two processes
    molgen sample --checkpoint "$CKPT" -n "$N" -o "$OUT/samples.sdf" --sampler "${SAMPLER:-ddpm}" --steps 100 \
      --batch-size 100 --precision bf16 --devices "${DEVICES:-1}" --threads 1 --resume
    molgen validate "$OUT/samples.sdf" --protocol edm --reference qm9 --json "$OUT/edm.json"
    molgen validate "$OUT/samples.sdf" --protocol charged --json "$OUT/charged.json" ;;
  curve)
    shift
    for CKPT in "$@"; do
      OUT=$RUN/curve/$(basename "$CKPT" .ckpt); mkdir -p "$OUT"
      molgen sample --checkpoint "$CKPT" -n "${N:-200}" -o "$OUT/samples.sdf" --sampler ddim --steps 100 \
        --batch-size 100 --precision bf16 --devices "${DEVICES:-1}" --threads 1 --resume --no-progress
      molgen validate "$OUT/samples.sdf" --protocol edm --json "$OUT/edm.json" | sed -n 2,5p
    done ;;
  ship)
    cp "$2" "$SHIPPED.tmp" && mv "$SHIPPED.tmp" "$SHIPPED"
    echo "replaced $SHIPPED; update molgen/models/qm9/MODEL_CARD.md with the new measurement" ;;
  *)
    sed -n 2,10p "$0"; exit 1 ;;
esac
