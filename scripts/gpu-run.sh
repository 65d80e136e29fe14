#!/usr/bin/env bash
# Runs the test suite (and the benchmark, when built) on a GPU machine that has the NVIDIA driver, the CUDA toolkit and
# PyTorch but no .NET and no network. Everything it needs is prepared on a machine with the SDK and carried along
# (docs/gpu.md says how):
#   .dotnet-rt.tgz                        the .NET runtime (dotnet, host/, shared/Microsoft.NETCore.App/)
#   Kernels.Tests/bin/Release/net10.0/    dotnet build -c Release
#   Kernels.Bench/bin/Release/net10.0/    (optional) the benchmark
#   .gpu-carry/ocl-icd-libopencl1_*.deb   (optional) the OpenCL ICD loader, for machines without libOpenCL.so.1
# The runtime, the tests and the benchmark together exceed what one call of the device tool carries (64 MiB), so
# the usual order is two calls: "tests" carrying the runtime and the tests, then "bench" carrying the runtime and the
# benchmark.
# Usage, from anywhere: scripts/gpu-run.sh [tests|bench|all] [arguments for the benchmark]
#   tests: the NUnit suite with CPU and CUDA (ILGPU's CUDA accelerator) required; bench: the benchmark; all (default): whichever is present.
# Writes env.txt, tests.log and bench.log to $OUT (or ./out when $OUT is unset). Exits non-zero if the tests or the
# benchmark failed, or what the mode asks for is missing.
set -uo pipefail
mode=${1:-all}
case "$mode" in tests|bench|all) [ $# -gt 0 ] && shift ;; *) mode=all ;; esac
cd "$(dirname "$0")/.."
root=$(pwd)
out=${OUT:-$root/out}
mkdir -p "$out"
work=$(mktemp -d /tmp/gpuactivations-run.XXXXXX)
env_log="$out/env.txt"
: >"$env_log"
say() { echo "$*" | tee -a "$env_log"; }

# ---------------------------------------------------------------- .NET runtime
if [ ! -f .dotnet-rt.tgz ]; then say "missing .dotnet-rt.tgz (see docs/gpu.md)"; exit 2; fi
export DOTNET_ROOT="$work/dotnet"
mkdir -p "$DOTNET_ROOT"
tar -C "$DOTNET_ROOT" -xf .dotnet-rt.tgz || { say "could not unpack .dotnet-rt.tgz"; exit 2; }
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
export PATH="$DOTNET_ROOT:$PATH"
say "dotnet runtime: $(ls "$DOTNET_ROOT/shared/Microsoft.NETCore.App" 2>/dev/null | tr '\n' ' ')"

# ---------------------------------------------------------------- the machine
{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "host: $(uname -srm)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.memory --format=csv,noheader 2>&1 | sed 's/^/gpu: /'
  nvidia-smi 2>/dev/null | grep -o 'CUDA Version: [0-9.]*' | sed 's/^/driver /'
  command -v nvcc >/dev/null && nvcc --version | tail -2 | head -1 | sed 's/^/nvcc: /'
  python3 -c 'import torch; print("torch:", torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -1
} >>"$env_log" 2>&1

# Directories that may hold a library the default search misses (CUDA toolkit, the driver's mount, pip wheels).
candidate_dirs() {
  echo /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/lib64 /opt/cuda/lib64; do echo "$d"; done
  python3 - <<'PY' 2>/dev/null
import glob, os, site, sys
roots = set(site.getsitepackages() + [site.getusersitepackages()] + [p for p in sys.path if p.endswith("site-packages")])
for r in roots:
    for d in glob.glob(os.path.join(r, "nvidia", "*", "lib")) + glob.glob(os.path.join(r, "nvidia", "cu*", "lib")):
        print(d)
PY
}

# find_lib NAME...: the first file found among the names, in the loader's cache, then the candidate directories.
find_lib() {
  local name dir
  for name in "$@"; do
    dir=$(ldconfig -p 2>/dev/null | awk -v n="$name" '$1 == n { print $NF; exit }')
    if [ -n "$dir" ] && [ -e "$dir" ]; then echo "$dir"; return 0; fi
  done
  for dir in $(candidate_dirs); do
    for name in "$@"; do
      if [ -e "$dir/$name" ]; then echo "$dir/$name"; return 0; fi
    done
  done
  return 1
}

# ---------------------------------------------------------------- the CUDA driver (ILGPU loads libcuda.so.1 itself)
if cuda=$(find_lib libcuda.so.1 libcuda.so); then
  say "libcuda: $cuda"
  export LD_LIBRARY_PATH="$(dirname "$cuda")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  say "libcuda: not found"
fi

# ---------------------------------------------------------------- OpenCL over the NVIDIA driver (if it can be had)
opencl="absent"
if nvcl=$(find_lib libnvidia-opencl.so.1); then
  mkdir -p "$work/vendors"
  echo "$nvcl" >"$work/vendors/nvidia.icd"
  export OCL_ICD_VENDORS="$work/vendors"
  if loader=$(find_lib libOpenCL.so.1); then
    opencl="$loader with $nvcl"
  else
    deb=$(ls .gpu-carry/ocl-icd-libopencl1_*.deb 2>/dev/null | head -1)
    if [ -n "$deb" ]; then
      mkdir -p "$work/ocl"
      if command -v dpkg >/dev/null; then dpkg -x "$deb" "$work/ocl"
      else (cd "$work/ocl" && ar x "$root/$deb" && tar -xf data.tar.* 2>/dev/null); fi
      loader=$(ls "$work"/ocl/usr/lib/x86_64-linux-gnu/libOpenCL.so.1* 2>/dev/null | head -1)
      [ -n "$loader" ] && opencl="$loader (from $deb) with $nvcl"
    fi
  fi
fi
# ILGPU binds "OpenCL", which .NET looks up as libOpenCL.so: link that name to the loader found.
if [ -n "${loader:-}" ]; then
  mkdir -p "$work/lib" && ln -sf "$loader" "$work/lib/libOpenCL.so"
  export LD_LIBRARY_PATH="$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
say "OpenCL: $opencl"

# ---------------------------------------------------------------- tests
status=0
tests=Kernels.Tests/bin/Release/net10.0/Kernels.Tests.dll
export GPUACTIVATIONS_REQUIRE=${GPUACTIVATIONS_REQUIRE:-cpu,cuda}
if [ "$mode" != bench ]; then
  if [ -f "$tests" ]; then
    say "GPUACTIVATIONS_REQUIRE=$GPUACTIVATIONS_REQUIRE"
    # GPU_TEST_FILTER narrows the run (e.g. "FullyQualifiedName~Cuda" for the CUDA fixtures alone).
    "$DOTNET_ROOT/dotnet" "$tests" --output Detailed ${GPU_TEST_FILTER:+--filter "$GPU_TEST_FILTER"} 2>&1 | tee "$out/tests.log"
    test_status=${PIPESTATUS[0]}
    say "tests exit code: $test_status"
    grep -E '^\s*(total|failed|succeeded|skipped): [0-9]+' "$out/tests.log" | tee -a "$env_log"
    [ "$test_status" -eq 0 ] || status=$test_status
  elif [ "$mode" = tests ]; then
    say "missing $tests (dotnet build -c Release, then carry Kernels.Tests/bin/Release/net10.0)"
    status=2
  fi
fi

# ---------------------------------------------------------------- benchmark
bench=Kernels.Bench/bin/Release/net10.0/Kernels.Bench.dll
if [ "$mode" != tests ]; then
  if [ -f "$bench" ]; then
    # The PyTorch peer, timed in the same session on the same GPU, when torch sees CUDA: its JSON goes beside our rows.
    if python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
      if python3 Kernels.Bench/torch_peer.py --device cuda --out "$out/torch.json" 2>&1 | tee "$out/torch.log"; then
        set -- "$@" --torch-results "$out/torch.json"
      else
        say "torch_peer.py failed (see torch.log); the benchmark runs without the PyTorch peer"
      fi
    else
      say "no CUDA PyTorch: the benchmark runs without the PyTorch peer"
    fi
    "$DOTNET_ROOT/dotnet" "$bench" "$@" 2>&1 | tee "$out/bench.log"
    bench_status=${PIPESTATUS[0]}
    say "benchmark exit code: $bench_status"
    [ "$bench_status" -eq 0 ] || [ "$status" -ne 0 ] || status=$bench_status
  elif [ "$mode" = bench ]; then
    say "missing $bench (dotnet build -c Release, then carry Kernels.Bench/bin/Release/net10.0)"
    status=2
  fi
fi

rm -rf "$work"
exit "$status"
