#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU and no network. It builds the check
# (worker/examples/gpu_check) or takes a prebuilt one, then prints, for SmolLM2-135M and
# Gemma 3 270M: the first-token logits on the GPU against the CPU engine (PASS/FAIL), prefill
# and decode tok/s at batch 1 and 8, and the fraction of the card's peak memory bandwidth decode
# reaches; the time of a guided 512x512 UNet step of a random-weight, full-size SD 1.5 UNet (and
# of 20 steps); the device memory in use (burn's allocator and nvidia-smi).
#
# Needs, carried to the machine: this repository; the models in the model cache
# (scripts/fetch-models.sh, HORDE_MODEL_CACHE, default ~/.cache/horde/models; a missing model is
# reported and skipped); and either a prebuilt binary or a Rust toolchain with cargo's registry
# cache (~/.cargo/registry: `cargo fetch` beforehand). The build runs with --offline.
#
# CUDA and its one download: `--features cuda` pulls in cubecl-llvm, whose build script
# (tracel-llvm-bundler) downloads a prebuilt LLVM 23.1 (github.com/tracel-ai/tracel-llvm
# releases, linux-x64.tar.xz) into ${XDG_DATA_HOME:-~/.local/share}/tracel/tracel-llvm-23.1.0-4
# unless that folder is there with its marker file .tracel-llvm-installed. With no network that
# build fails; DOCS_RS=1 skips the download but then nothing links, so it only serves
# `cargo check`. So this script builds with cuda only where the bundle is already installed
# (carry that folder from a machine that built once, or a binary built there), and otherwise
# falls back to wgpu, which runs on NVIDIA's Vulkan driver and needs no download (the Vulkan
# loader, libvulkan1, and NVIDIA's ICD; where wgpu finds only Mesa's llvmpipe the check says so:
# set VK_DRIVER_FILES to NVIDIA's nvidia_icd.json).
#
# Environment:
#   HORDE_GPU_CHECK_BIN       a prebuilt gpu_check (`cargo build --release --features cuda
#                             --example gpu_check -p horde-worker`: target/release/examples/gpu_check)
#   HORDE_GPU_CHECK_FEATURES  cuda or wgpu (default: cuda where the LLVM bundle is installed)
#   HORDE_GPU_CHECK_DEVICE    the device to check (default: cuda for a cuda build, else wgpu)
#   HORDE_GPU_CHECK_LOG       where the output is also written (default target/gpu-check.log)
# Arguments after the script's name go to gpu_check (e.g. --peak-gbs 3350, --small).
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
log="${HORDE_GPU_CHECK_LOG:-$target_dir/gpu-check.log}"
mkdir -p "$(dirname "$log")"

llvm_bundle="${XDG_DATA_HOME:-$HOME/.local/share}/tracel/tracel-llvm-23.1.0-4"

build() {
  echo "== building gpu_check with --features $1 (release, offline)" >&2
  cargo build --release --offline -p horde-worker --features "$1" --example gpu_check >&2
}

if [ -n "${HORDE_GPU_CHECK_BIN:-}" ]; then
  bin="$HORDE_GPU_CHECK_BIN"
  features="${HORDE_GPU_CHECK_FEATURES:-cuda}"
  echo "== using the prebuilt $bin" >&2
else
  if [ -n "${HORDE_GPU_CHECK_FEATURES:-}" ]; then
    features="$HORDE_GPU_CHECK_FEATURES"
  elif [ -f "$llvm_bundle/.tracel-llvm-installed" ]; then
    features=cuda
  else
    echo "note: no LLVM bundle at $llvm_bundle: a cuda build would download it; building wgpu instead" >&2
    features=wgpu
  fi
  if ! build "$features"; then
    if [ "$features" = cuda ]; then
      echo "note: the cuda build failed (see above); falling back to wgpu" >&2
      features=wgpu
      build wgpu
    else
      exit 1
    fi
  fi
  bin="$target_dir/release/examples/gpu_check"
fi

device="${HORDE_GPU_CHECK_DEVICE:-$([ "$features" = cuda ] && echo cuda || echo wgpu)}"

{
  echo "== gpu-check $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), features $features, device $device"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv
  else
    echo "nvidia-smi: not found"
  fi
} | tee "$log"

set +e
"$bin" --device "$device" "$@" 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}
set -e
echo "== output kept in $log (exit status $status)"
exit "$status"
