#!/usr/bin/env bash
# Continue the QM9 model on one GPU for a fixed wall-clock time, then (optionally) sample from it.
#
#   DATA=packed/qm9 INIT=molgen/models/qm9/model.ckpt TOTAL_STEPS=30000 TIME_LIMIT=00:08:00 \
#   RESULTS=results bash workflows/qm9_gpu_continue.sh train          # first call: a new run from those weights
#   DATA=packed/qm9 RESUME=results/last.ckpt TOTAL_STEPS=30000 ... train  # later calls: the same run
#   CKPT=results/last.ckpt RESULTS=results bash workflows/qm9_gpu_continue.sh sample
#   DATA=packed/qm9 SECONDS_LEFT=800 bash workflows/qm9_gpu_continue.sh plan   # prints a TOTAL_STEPS for that time
#
# DATA is a packed dataset folder (`molgen data build qm9 --output packed/qm9`), so the GPU machine needs
# neither qm9pack nor the raw data; DATA may also be that folder as a .tar.xz (about 30 MB instead of 44, for
# tools that limit what travels; `tar -C packed -cJf qm9.tar.xz qm9`), unpacked to /tmp/molgen_data on first use.
# The learning rate is the config's cosine over the absolute steps 0..TOTAL_STEPS, and every call with the same
# TOTAL_STEPS continues the same schedule. INIT starts a new run (step 0, new optimizer) from a checkpoint's EMA
# weights (`init_from`); RESUME continues that checkpoint's own run and schedule (the shipped model is at step
# 3,800 of its segment-8 run, at the end of its cosine, so resuming it with a larger TOTAL_STEPS is a warm
# restart at that step's rate: use INIT for a new segment). TIME_LIMIT (this call's wall clock) stops training
# early and still saves the checkpoint, so a schedule can span several time-limited calls.
# BATCH (512), LR (4e-4) and WARMUP (300) are session 6's segment 6a: on an H100 the small preset takes the same
# ~0.08 s per step for 256 or 512 molecules, so 512 doubles throughput (about 6,200 molecules/s).
# `plan` times 25 training steps and prints the TOTAL_STEPS that fill SECONDS_LEFT of training at 85 % of that
# rate (less 35 s of start-up per call, CALLS calls). `train` leaves RESULTS/last.ckpt and RESULTS/metrics.csv;
# `sample` leaves XYZ files for `molgen validate`: N ddpm-100 samples, then N_GRID of each SPECS entry
# (sampler:steps, `full` = the whole schedule; default "ddpm:full ddim:100 dpm:100 ddim:50").
set -euo pipefail
MOLGEN=${MOLGEN:-molgen}
MOLGEN_PY=${MOLGEN_PY:-python3}   # `plan` runs the throughput module with it
RESULTS=${RESULTS:-runs/gpu}
RUN=${RUN:-/tmp/molgen_gpu_run}
mkdir -p "$RESULTS"
if [[ "${DATA:-}" == *.tar.xz ]]; then
  unpacked=/tmp/molgen_data/$(basename "$DATA" .tar.xz)
  [ -f "$unpacked/meta.json" ] || { mkdir -p /tmp/molgen_data && tar -C /tmp/molgen_data -xJf "$DATA"; }
  DATA=$unpacked
fi

case "${1:-}" in
plan)
  : "${DATA:?packed dataset folder}" "${SECONDS_LEFT:?seconds of training to plan for}"
  timing=$($MOLGEN_PY -m molgen.training.throughput --preset small --steps 25 --warmup 10 --batch-size "${BATCH:-512}" \
    --source "$DATA" trainer.accelerator="${ACCELERATOR:-gpu}" trainer.precision=bf16-mixed data.num_workers="${WORKERS:-8}" 2>"$RESULTS/plan.log") \
    || { echo "plan: the throughput run failed; its log is $RESULTS/plan.log" >&2; exit 1; }
  echo "$timing" | grep '^|' >&2
  # the table's row `| small | parameters | median s/step | ...`: 85 % of the steps that fit, less start-up
  awk -F'|' -v left="$SECONDS_LEFT" -v calls="${CALLS:-1}" '/^\| small/{gsub(/ /,"",$4); s=$4}
    END{if (!s) {print "plan: no timing row in the throughput output" > "/dev/stderr"; exit 1}
        print int(0.85 * (left - 35 * calls) / s)}' <<<"$timing"
  ;;
train)
  : "${DATA:?packed dataset folder}" "${TOTAL_STEPS:?last step of the cosine}"
  if [ -n "${INIT:-}" ]; then start=(init_from="$INIT"); else start=(resume="${RESUME:?INIT or RESUME checkpoint}"); fi
  $MOLGEN train configs/qm9.yaml name=qm9_small output_dir="$RUN" model.preset=small data.source="$DATA" \
    data.batch_size="${BATCH:-512}" data.num_workers="${WORKERS:-8}" optim.lr="${LR:-4.0e-4}" \
    optim.scheduler.warmup_steps="${WARMUP:-300}" optim.scheduler.total_steps="$TOTAL_STEPS" \
    trainer.max_steps="$TOTAL_STEPS" trainer.max_epochs=-1 time_limit="${TIME_LIMIT:-00:08:00}" \
    trainer.accelerator=gpu trainer.precision=bf16-mixed trainer.val_check_interval=2000 \
    trainer.check_val_every_n_epoch=null trainer.limit_val_batches=10 trainer.log_every_n_steps=100 \
    trainer.enable_progress_bar=false logging.tensorboard=false checkpoint.every_n_steps=1000 checkpoint.keep=1 \
    "${start[@]}"
  cp "$RUN/checkpoints/last.ckpt" "$RESULTS/last.ckpt"
  cp "$(ls -d "$RUN"/csv/version_* | tail -1)/metrics.csv" "$RESULTS/metrics.csv" || echo "no metrics.csv yet"
  ;;
sample)
  : "${CKPT:?checkpoint}"
  N=${N:-10000}; N_GRID=${N_GRID:-2000}
  common=(--checkpoint "$CKPT" --precision bf16 --batch-size "${SAMPLE_BATCH:-1000}" --no-progress --overwrite)
  $MOLGEN sample "${common[@]}" -n "$N" -o "$RESULTS/ddpm100.xyz" --sampler ddpm --steps 100
  for spec in ${SPECS:-ddpm:full ddim:100 dpm:100 ddim:50}; do
    sampler=${spec%:*}; steps=${spec#*:}
    if [ "$steps" = full ]; then step_args=(); else step_args=(--steps "$steps"); fi
    $MOLGEN sample "${common[@]}" -n "$N_GRID" -o "$RESULTS/${sampler}${steps}.xyz" --sampler "$sampler" "${step_args[@]}"
  done
  ;;
*)
  echo "usage: $0 train|sample (see the header)" >&2; exit 2 ;;
esac
