#!/usr/bin/env bash
# Prepares what bench/gpu.sh needs on a GPU machine that has no Rust toolchain, no crates and
# no network: the cuda-feature binaries (built here; CUDA kernels are compiled at run time by
# NVRTC on the GPU machine, so the host build does not depend on its processor) and the
# Fashion-MNIST test split, packed small enough to travel (about 23 MB).
#
#   bench/gpu-carry.sh [CARRY_DIR]      (default .gpucarry, which .gitignore lists)
#   ANYGAN_CARRY_TRAIN_SPLIT=1          add Fashion-MNIST's training split (26 MB more), which
#                                       bench/gpu-train.sh needs
#
# then, on the GPU machine, from the repository root:
#   mkdir -p /tmp/bin && xz -dc .gpucarry/bins.tar.xz | tar -C /tmp/bin -xf - &&
#   ANYGAN_PREBUILT=/tmp/bin ANYGAN_GPU_DATA=.gpucarry/fashion-mnist bash bench/gpu.sh "$OUT"
#
# CUDARC_CUDA_VERSION names the toolkit's NVRTC the binaries will load (13000: CUDA 13.0,
# what the lent H200 machines have); the release build from cold takes about 30 minutes on 2
# cores. The binaries need glibc 2.34 or newer.
set -euo pipefail
cd "$(dirname "$0")/.."
carry="${1:-.gpucarry}"
target="${CARGO_TARGET_DIR:-target-cuda}"
export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13000}"

CARGO_TARGET_DIR="$target" cargo build --release --locked -p anygan-coordinator --bins
CARGO_TARGET_DIR="$target" cargo build --release --locked -p anygan-worker \
  --no-default-features --features cuda --bins
bench=$(CARGO_TARGET_DIR="$target" cargo bench --locked -p anygan-worker \
  --no-default-features --features cuda --bench train_step --no-run 2>&1 |
  sed -n 's/.*Executable .*(\(.*\))$/\1/p')
[ -x "$bench" ] || { echo "the train_step bench binary was not found" >&2; exit 1; }

staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT
strip -o "$staging/coordinator" "$target/release/coordinator"
strip -o "$staging/worker" "$target/release/worker"
strip -o "$staging/train_step" "$bench"
mkdir -p "$carry/fashion-mnist"
tar -C "$staging" -cf - coordinator worker train_step | xz -9 -T0 >"$carry/bins.tar.xz"
cp /usr/share/datasets/fashion-mnist/t10k-* "$carry/fashion-mnist/"
if [ -n "${ANYGAN_CARRY_TRAIN_SPLIT:-}" ]; then
  cp /usr/share/datasets/fashion-mnist/train-* "$carry/fashion-mnist/"
fi
du -sh "$carry"
