#!/usr/bin/env bash
# GPU check and benchmark, in one go, on a machine with NVIDIA drivers (issue 9), within a time
# budget; every phase is stamped with the seconds since start and cut off by what is left:
#   1. the workers built with the `cuda` feature: by cargo here, or prebuilt binaries from
#      ANYGAN_PREBUILT (a folder with coordinator, worker and train_step; see below);
#   2. anygan's train_step bench of the standard model (W=128, batch 64), the step alone and with
#      the gradients' round trip to the host that a worker in a ring makes, each with the
#      generator's up-sampling computed both ways (transposed convolutions, the default, and
#      `--upsampling phases`, worker/src/gan/kernels.rs); its `first step` column is the
#      kernels' compilation and autotuning, paid on first use of a shape;
#   3. the same bench again in a new process with the kernel cache the first one filled (what a
#      worker restarted on the same machine pays at its first step), and with the output layer
#      computed both ways (`--output-layer convolution,transposed`; convolution is the GPU default);
#   4. correctness: a 2-worker job on one GPU (W=128, 20 steps, the Fashion-MNIST test split):
#      finite losses, replicas bit-identical (the coordinator exits 0 only then); the same
#      again with the workers' up-sampling by phases;
#   5. a kernel profile of a few batch-64 steps (bench/kernel_profile.py): launches and GPU busy
#      time per step, to tell a step waiting on the GPU from one waiting on the host;
#   6. the bench at batch 256 (new shapes: compiled and tuned here);
#   7. the identical PyTorch model and step (bench/torch_cdcgan.py), side by side.
#   GPU memory is sampled by nvidia-smi during 2, 3 and 6.
# Usage: bench/gpu.sh [OUT_DIR]   (logs and tables go there, default $OUT or /tmp/anygan-gpu)
#   ANYGAN_PREBUILT=DIR   use DIR/{coordinator,worker,train_step} instead of building (a GPU
#                         machine without a Rust toolchain or crates: build them elsewhere with
#                         bench/gpu-carry.sh)
#   ANYGAN_GPU_DATA=DIR   the Fashion-MNIST files (default /usr/share/datasets/fashion-mnist);
#                         only the test split (t10k-*) is read
#   ANYGAN_GPU_BUDGET_S=N seconds for the whole script (default 540); a phase that would run past
#                         it is cut off and reported, the next ones still run if time is left
#   ANYGAN_GPU_WIDTH=N    the model width of phases 2-7 (default 128, the standard model; a small
#                         one tries the script on a CPU build in a minute)
#   ANYGAN_SKIP_PYTORCH=1 leave out phase 7 (e.g. when its numbers for this GPU are known)
#   CUBECL_AUTOTUNE_LEVEL=minimal|balanced|extensive|full  how hard burn's GPU runtime tunes its
#                         kernels (its default: balanced); read by the workers and the bench
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp/anygan-gpu}}"
data="${ANYGAN_GPU_DATA:-/usr/share/datasets/fashion-mnist}"
scratch="$(mktemp -d)" # the job's checkpoints and the memory samples: not results to keep
mkdir -p "$out"
# shellcheck source=bench/gpu-common.sh
source bench/gpu-common.sh
if [ -n "${ANYGAN_PREBUILT:-}" ]; then
  train_step=("$bin/train_step")
else
  built=$(cargo bench --locked -p anygan-worker "${gpu_features[@]}" --bench train_step --no-run 2>&1 |
    sed -n 's/.*Executable .*(\(.*\))$/\1/p')
  train_step=("$(realpath "$built")")
fi

# The whole script keeps to its budget: each phase gets at most what is left.
budget="${ANYGAN_GPU_BUDGET_S:-540}"
width="${ANYGAN_GPU_WIDTH:-128}"
failures=()
phase() { echo "== $* (at ${SECONDS} s of ${budget})"; }
left() { # seconds a phase may take: its own cap, or what is left of the budget
  local remaining=$((budget - SECONDS))
  [ "$remaining" -lt "$1" ] && echo "$remaining" || echo "$1"
}
budget_spent() { # budget_spent CAP NAME: true (and the phase noted as skipped) when under 10 s left
  if [ "$(left "$1")" -lt 10 ]; then
    echo "SKIPPED: $2 (budget spent)"
    failures+=("$2 skipped")
    return 0
  fi
  return 1
}
bounded() { # bounded CAP NAME COMMAND...: runs it unless the budget is spent; notes a failure
  local cap name
  cap="$(left "$1")" name="$2"
  shift 2
  budget_spent "$cap" "$name" && return 0
  local status=0
  timeout "$cap" "$@" || status=$?
  if [ "$status" -eq 124 ]; then
    echo "CUT OFF: $name after $cap s"
    failures+=("$name cut off")
  elif [ "$status" -ne 0 ]; then
    echo "FAILED: $name (exit $status)"
    failures+=("$name failed")
  fi
}

sample_memory() {
  while true; do
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits >>"$1" 2>/dev/null || true
    sleep 0.2
  done
}

# The kernel cache the workers and the bench share, as on a machine that keeps it.
export ANYGAN_KERNEL_CACHE="$scratch/kernels"
bench() { # bench LABEL CAP ARGS...: the train_step bench, GPU memory sampled
  local label="$1" cap="$2"
  shift 2
  budget_spent "$cap" "bench $label" && return 0
  : >"$scratch/memory-$label.txt"
  sample_memory "$scratch/memory-$label.txt" &
  local sampler=$!
  bounded "$cap" "bench $label" "${train_step[@]}" --widths "$width" --kernel-cache "$ANYGAN_KERNEL_CACHE" \
    "$@" > >(tee "$out/anygan-$label.md")
  local teeing=$! # the table's tee: waited for below, so the file is whole before it is read
  kill "$sampler" 2>/dev/null || true
  wait "$teeing" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  # A run that panicked is a row saying so; the bench goes on to the next and exits 0.
  if grep -q '| failed:' "$out/anygan-$label.md"; then
    echo "FAILED: a run of bench $label (its row says failed)"
    failures+=("bench $label: a run failed")
  fi
  echo "peak GPU memory used, whole card (MiB): $(sort -n "$scratch/memory-$label.txt" | tail -1)" |
    tee -a "$out/anygan-$label.md"
}

phase "anygan train_step W=$width batch 64, cold kernel cache"
bench 64 240 --batch 64 --warmup 5 --steps 30 --host-round-trip off,on --upsampling transposed,phases
echo "kernel cache: $(du -sh "$ANYGAN_KERNEL_CACHE" 2>/dev/null | cut -f1)"

phase "anygan train_step W=$width batch 64 again, new process, warm kernel cache"
# And the output layer both ways (its transposed form is the CPU default; its first rows here
# compile the transposed shapes).
bench 64-warm 120 --batch 64 --warmup 2 --steps 10 --upsampling transposed,phases \
  --output-layer convolution,transposed

# Global batch 128: each replica computes at 64, the shapes the kernel cache now holds.
two_worker_check() { # two_worker_check LABEL UPSAMPLING CAP
  local label="$1" upsampling="$2" cap="$3"
  phase "correctness: 2 workers on one GPU, up-sampling $upsampling"
  bounded "$cap" "2-worker check ($upsampling)" env ANYGAN_UPSAMPLING="$upsampling" \
    "$bin/coordinator" start --listen 127.0.0.1:0 --local-workers 2 \
    --worker-binary "$bin/worker" --data "$data" --test-split --width "$width" --global-batch 128 \
    --steps 20 --checksum-every 5 --sample-every 0 --no-generation --output "$scratch/$label" \
    >"$out/$label.out" 2>"$out/$label.err"
  if has_nonfinite_loss "$out/$label.err"; then
    echo "FAILED: a loss is not finite ($upsampling)"
    failures+=("2-worker check ($upsampling): a loss is not finite")
  fi
  grep -E 'cuda|kernels=' "$out/$label.err" | head -3 || true
  grep -E ' step' "$out/$label.err" | tail -3 || true
  tail -3 "$out/$label.out" || true
}
two_worker_check check transposed 180
two_worker_check check-phases phases 120

phase "kernel profile: W=$width batch 64, 1 + 3 steps, every kernel timed on its own"
# cubecl reads a cubecl.toml from the working folder: profile level basic logs each launch with
# its GPU time. That serialises the GPU (the step times of this run are not the real ones); the
# launch count and busy time per step, against the real step time above, say whether the step
# waits on the GPU or on the host.
profile="$scratch/profile"
mkdir -p "$profile"
cat >"$profile/cubecl.toml" <<TOML
[profiling.logger]
level = "basic"
file = "$profile/kernels.log"
append = false
TOML
# The profiled steps' own table goes to a file (their times are not the real ones); bounded's
# CUT OFF / SKIPPED lines still reach the log.
bounded 90 "kernel profile" env -C "$profile" sh -c 'out="$1"; shift; exec "$@" >"$out"' sh \
  "$out/kernel-profile-steps.txt" "${train_step[@]}" --widths "$width" \
  --kernel-cache "$ANYGAN_KERNEL_CACHE" --batch 64 --warmup 1 --steps 3
if [ -s "$profile/kernels.log" ]; then
  python3 bench/kernel_profile.py "$profile/kernels.log" --steps 4 | tee "$out/kernel-profile.md" ||
    failures+=("kernel profile summary failed")
  tail -c 50000000 "$profile/kernels.log" | xz -T0 >"$out/kernels.log.xz"
fi

phase "anygan train_step W=$width batch 256"
bench 256 180 --batch 256 --warmup 5 --steps 30 --host-round-trip off,on --upsampling transposed,phases

if [ -n "${ANYGAN_SKIP_PYTORCH:-}" ]; then
  phase "PyTorch skipped (ANYGAN_SKIP_PYTORCH)"
elif python3 -c 'import torch' 2>/dev/null; then
  phase "PyTorch, same model and step, same GPU"
  bounded 150 "PyTorch bench" python3 bench/torch_cdcgan.py --widths "$width" --batches 64,256 \
    --device cuda --steps 30 --warmup 5 --cudnn-benchmark off,on > >(tee "$out/pytorch.md")
else
  phase "PyTorch is not installed: no side-by-side numbers" | tee "$out/pytorch.md"
fi

phase "done"
if [ ${#failures[@]} -gt 0 ]; then
  printf 'NOT ALL PASSED: %s\n' "${failures[@]}"
  exit 1
fi
echo "all phases passed: replicas identical, losses finite"
