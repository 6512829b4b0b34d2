#!/usr/bin/env bash
# Trains the standard cDCGAN (W=128) on the long-tailed Fashion-MNIST on one GPU, for the
# evaluation (issue 6), within a time budget: what a short GPU loan allows. The job resumes
# from its last committed checkpoint, so loan after loan continues one run bit for bit where
# the binaries and GPU model are the same.
# Usage: bench/gpu-train.sh [OUT_DIR]   (default $OUT or /tmp/anygan-gpu-train)
#   ANYGAN_PREBUILT=DIR        prebuilt cuda binaries (bench/gpu-carry.sh), else cargo builds them
#   ANYGAN_GPU_DATA=DIR        Fashion-MNIST with the training split (train-*; gpu-carry.sh packs
#                              it with ANYGAN_CARRY_TRAIN_SPLIT=1)
#   ANYGAN_GPU_BUDGET_S=N      seconds the training may take (default 480); then it is stopped and
#                              the last committed checkpoint is the resume point
#   ANYGAN_GPU_RESUME=DIR      an earlier run's OUT_DIR: its job (checkpoints) and kernel cache are
#                              copied in first and the job continues from there
#   ANYGAN_GPU_TRAIN_STEPS=N   the job's length in steps (default 20000)
#   ANYGAN_GPU_TRAIN_BATCH=N   global batch (default 64, as the W=64 benchmark generator)
#   ANYGAN_GPU_WIDTH=N, ANYGAN_GPU_CHECKPOINT_EVERY=N  width (default 128) and checkpoint period
#                              (default 1000 steps); small values try the script on a CPU build
#   ANYGAN_GPU_DIFF_AUGMENT=P  DiffAugment policy (default color,translation,cutout: without it
#                              W=128 collapses within 200 steps, README "The standard width
#                              needs DiffAugment")
#   ANYGAN_UPSAMPLING=phases   the workers compute the generator's up-sampling by phases (as
#                              `worker join --upsampling phases`) where bench/gpu.sh measured it
#                              faster on this GPU; keep one choice for the whole run, since a
#                              resume continues bit for bit only with the same kernels
# Then, on any machine: `coordinator generate --output OUT_DIR/job --checkpoint latest ...`
# and `worker evaluate` as in the README's benchmark section.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp/anygan-gpu-train}}"
data="${ANYGAN_GPU_DATA:-/usr/share/datasets/fashion-mnist}"
budget="${ANYGAN_GPU_BUDGET_S:-480}"
steps="${ANYGAN_GPU_TRAIN_STEPS:-20000}"
batch="${ANYGAN_GPU_TRAIN_BATCH:-64}"
width="${ANYGAN_GPU_WIDTH:-128}"
checkpoint_every="${ANYGAN_GPU_CHECKPOINT_EVERY:-1000}"
diff_augment="${ANYGAN_GPU_DIFF_AUGMENT:-color,translation,cutout}"
mkdir -p "$out"
# shellcheck source=bench/gpu-common.sh
source bench/gpu-common.sh

job="$out/job"
export ANYGAN_KERNEL_CACHE="${ANYGAN_KERNEL_CACHE:-$out/kernels}"
if [ -n "${ANYGAN_GPU_RESUME:-}" ]; then
  for part in job kernels; do
    [ -d "$ANYGAN_GPU_RESUME/$part" ] || continue
    mkdir -p "$out/$part"
    cp -r "$ANYGAN_GPU_RESUME/$part/." "$out/$part/"
  done
  echo "resuming from $ANYGAN_GPU_RESUME"
fi

echo "== training W=$width, global batch $batch, DiffAugment $diff_augment, to step $steps, for at most $budget s"
status=0
# timeout signals the coordinator's whole process group: its local worker goes with it.
timeout "$budget" "$bin/coordinator" start --listen 127.0.0.1:0 --local-workers 1 \
  --worker-binary "$bin/worker" --data "$data" --long-tail --width "$width" --steps "$steps" \
  --global-batch "$batch" --real-sampling class-balanced --diff-augment "$diff_augment" \
  --checkpoint-every "$checkpoint_every" \
  --keep-checkpoints 2 --sample-every "$checkpoint_every" --no-generation --no-evaluation --output "$job" \
  >"$out/train.out" 2>"$out/train.err" || status=$?
grep -E 'resuming from|checkpoint committed' "$out/train.err" | tail -3 || true
grep -E ' step' "$out/train.err" | tail -2 || true
if has_nonfinite_loss "$out/train.err"; then
  echo "FAILED: a loss is not finite"
  exit 1
fi
case "$status" in
  0) echo "trained to step $steps" ;;
  124) echo "budget spent: the last committed checkpoint above is where the next run resumes" ;;
  *)
    echo "FAILED (exit $status): see $out/train.err"
    tail -20 "$out/train.err"
    exit 1
    ;;
esac
du -sh "$job" "$ANYGAN_KERNEL_CACHE" 2>/dev/null || true
