#!/usr/bin/env bash
# GPU check and benchmark, in one go, on a machine with NVIDIA drivers (issue 9):
#   1. the workers built with the `cuda` feature: by cargo here, or prebuilt binaries from
#      ANYGAN_PREBUILT (a folder with coordinator, worker and train_step; see below);
#   2. throughput of the standard model (W=128, batch 64 and 256): the identical PyTorch model
#      and step (bench/torch_cdcgan.py) and anygan's train_step bench, on the same GPU, with the
#      step alone and with the gradients' round trip to the host that a worker in a ring makes,
#      GPU memory sampled by nvidia-smi;
#   3. correctness: a 2-worker job on one GPU (W=128, 20 steps, the Fashion-MNIST test split):
#      finite losses, replicas bit-identical (the coordinator exits 0 only then).
# Usage: bench/gpu.sh [OUT_DIR]   (logs and tables go there, default $OUT or /tmp/anygan-gpu)
#   ANYGAN_PREBUILT=DIR   use DIR/{coordinator,worker,train_step} instead of building (a GPU
#                         machine without a Rust toolchain or crates: build them elsewhere with
#                         `CUDARC_CUDA_VERSION=13000 cargo build --release -p anygan-worker
#                         --no-default-features --features cuda --bins --benches`)
#   ANYGAN_GPU_DATA=DIR   the Fashion-MNIST files (default /usr/share/datasets/fashion-mnist);
#                         only the test split (t10k-*) is read
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp/anygan-gpu}}"
data="${ANYGAN_GPU_DATA:-/usr/share/datasets/fashion-mnist}"
scratch="$(mktemp -d)" # the job's checkpoints and the memory samples: not results to keep
mkdir -p "$out"
features=(--no-default-features --features cuda)

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv |
  tee "$out/gpu.txt"

# burn-cuda loads libcuda and NVRTC at run time; NVRTC may live in the toolkit or in a wheel.
for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
  $(find /usr/local /opt /usr/lib -name 'libnvrtc.so*' -not -path '*/stubs/*' -printf '%h\n' 2>/dev/null | sort -u); do
  [ -d "$dir" ] && export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"

if [ -n "${ANYGAN_PREBUILT:-}" ]; then
  bin="$(cd "$ANYGAN_PREBUILT" && pwd)"
  train_step=("$bin/train_step")
else
  echo "== build (cuda)"
  cargo build --release --locked -p anygan-coordinator --bins
  cargo build --release --locked -p anygan-worker "${features[@]}" --bins
  cargo bench --locked -p anygan-worker "${features[@]}" --bench train_step --no-run
  bin=target/release
  train_step=(cargo bench --locked -p anygan-worker "${features[@]}" --bench train_step --)
fi

if [ -n "${ANYGAN_SKIP_PYTORCH:-}" ]; then
  echo "== PyTorch skipped (ANYGAN_SKIP_PYTORCH)"
elif python3 -c 'import torch' 2>/dev/null; then
  echo "== PyTorch, same model and step, same GPU"
  python3 bench/torch_cdcgan.py --widths 128 --batches 64,256 --device cuda --steps 30 \
    --warmup 5 --cudnn-benchmark off,on | tee "$out/pytorch.md" || echo "FAILED: PyTorch bench"
else
  echo "== PyTorch is not installed: no side-by-side numbers" | tee "$out/pytorch.md"
fi

sample_memory() {
  while true; do
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits >>"$1" 2>/dev/null || true
    sleep 0.2
  done
}

for batch in 64 256; do
  echo "== anygan train_step W=128 batch $batch"
  : >"$scratch/memory-$batch.txt"
  sample_memory "$scratch/memory-$batch.txt" &
  sampler=$!
  "${train_step[@]}" --widths 128 --batch "$batch" --warmup 5 --steps 30 \
    --host-round-trip off,on | tee "$out/anygan-$batch.md" || echo "FAILED: anygan bench"
  kill "$sampler" 2>/dev/null || true
  echo "peak GPU memory used, whole card (MiB): $(sort -n "$scratch/memory-$batch.txt" | tail -1)" |
    tee -a "$out/anygan-$batch.md"
done

echo "== correctness: 2 workers on one GPU"
if ! timeout 300 "$bin/coordinator" start --listen 127.0.0.1:0 --local-workers 2 \
  --worker-binary "$bin/worker" --data "$data" --test-split --width 128 --global-batch 64 \
  --steps 20 --checksum-every 5 --sample-every 0 --no-generation --output "$scratch/check" \
  >"$out/check.out" 2>"$out/check.err"; then
  echo "FAILED: see $out/check.err"
  tail -20 "$out/check.err"
  exit 1
fi
if grep -Eiq '_loss="?-?(nan|inf)' "$out/check.err"; then
  echo "FAILED: a loss is not finite"
  exit 1
fi
grep -E 'cuda' "$out/check.err" | head -2 || true
grep -E ' step' "$out/check.err" | tail -3 || true
tail -3 "$out/check.out"
echo "replicas identical, losses finite"
