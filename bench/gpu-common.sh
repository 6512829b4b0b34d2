# Sourced by bench/gpu.sh and bench/gpu-train.sh on a GPU machine: prints the GPU, puts NVRTC
# on LD_LIBRARY_PATH and sets `bin` to a folder with the cuda-feature coordinator and worker,
# prebuilt (ANYGAN_PREBUILT=DIR, from bench/gpu-carry.sh) or built here by cargo.
# Expects `out` (the results folder) to exist.
gpu_features=(--no-default-features --features cuda)

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv |
  tee "$out/gpu.txt"

# burn-cuda loads libcuda and NVRTC at run time; NVRTC may live in the toolkit or in a wheel.
# Never the toolkit's stubs folder: its libcuda.so is a stub (CUDA_ERROR_STUB_LIBRARY).
for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
  $(find /usr/local /opt /usr/lib -name 'libnvrtc.so*' -not -path '*/stubs/*' -printf '%h\n' 2>/dev/null | sort -u); do
  [ -d "$dir" ] && export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"

if [ -n "${ANYGAN_PREBUILT:-}" ]; then
  bin="$(cd "$ANYGAN_PREBUILT" && pwd)"
else
  echo "== build (cuda)"
  cargo build --release --locked -p anygan-coordinator --bins
  cargo build --release --locked -p anygan-worker "${gpu_features[@]}" --bins
  bin=target/release
fi

# Whether a job log shows a loss that is not finite (the workers log `d_loss="..."`).
has_nonfinite_loss() {
  grep -Eiq '_loss="?-?(nan|inf)' "$1"
}
