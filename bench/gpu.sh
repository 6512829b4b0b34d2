#!/usr/bin/env bash
# GPU check and benchmark, in one go, on a fresh machine with NVIDIA drivers (issue 9):
#   1. build the workers with the `cuda` feature;
#   2. correctness: a 2-worker job on one GPU (W=128, 20 steps): finite losses, replicas
#      bit-identical (the coordinator exits 0 only then);
#   3. throughput of the standard model (W=128, batch 64 and 256): anygan's train_step bench
#      beside the identical PyTorch model and step (bench/torch_cdcgan.py), on the same GPU,
#      with GPU memory sampled by nvidia-smi.
# Usage: bench/gpu.sh [OUT_DIR]   (writes logs and tables there, default $OUT or /tmp/anygan-gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp/anygan-gpu}}"
mkdir -p "$out"
features=(--no-default-features --features cuda)

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"

echo "== build (cuda)"
cargo build --release --locked -p anygan-coordinator --bins
cargo build --release --locked -p anygan-worker "${features[@]}" --bins
cargo bench --locked -p anygan-worker "${features[@]}" --bench train_step --no-run

echo "== correctness: 2 workers on one GPU"
rm -rf "$out/check"
if ! timeout 600 target/release/coordinator start --listen 127.0.0.1:0 --local-workers 2 \
    --long-tail --width 128 --global-batch 64 --steps 20 --checksum-every 5 --sample-every 0 \
    --no-generation --output "$out/check" >"$out/check.out" 2>"$out/check.err"; then
  echo "FAILED: see $out/check.err"; tail -20 "$out/check.err"; exit 1
fi
if grep -Eiq 'loss="(nan|inf|-inf)"' "$out/check.err"; then
  echo "FAILED: a loss is not finite"; exit 1
fi
tail -1 "$out/check.out"
echo "replicas identical, losses finite"

sample_memory() {
  while true; do
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits >>"$1" 2>/dev/null || true
    sleep 0.2
  done
}

for batch in 64 256; do
  echo "== anygan train_step W=128 batch $batch"
  : >"$out/memory-$batch.txt"
  sample_memory "$out/memory-$batch.txt" & sampler=$!
  cargo bench --locked -p anygan-worker "${features[@]}" --bench train_step -- \
    --widths 128 --batch "$batch" --warmup 5 --steps 30 | tee "$out/anygan-$batch.md"
  kill "$sampler" 2>/dev/null || true
  echo "peak GPU memory used (MiB): $(sort -n "$out/memory-$batch.txt" | tail -1)" | tee -a "$out/anygan-$batch.md"
done

echo "== PyTorch, same model and step, same GPU"
python3 bench/torch_cdcgan.py --widths 128 --batches 64,256 --device cuda --steps 30 --warmup 5 \
  | tee "$out/pytorch.md"
