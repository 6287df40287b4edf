#!/usr/bin/env bash
# GPU check of the CUDA backend: parity of every CUDA function (similarityMatrix, topK,
# infoNCE, ntXent, marginSoftmax, wassersteinRegularizer; cuBLAS and densevec's own SGEMM)
# against the CPU core, then timings (device similarityMatrix vs bare SGEMM on the same shapes,
# end-to-end rows against the CPU, InfoNCE at B = 65,536 against its SGEMM floor and, when the
# machine has PyTorch with CUDA, against PyTorch: gpu-torch.json beside the output).
# Needs no Node, Rust or network when the prebuilt binary is present (see docs/cuda.md):
#
#   scripts/gpu-check.sh [OUTPUT.json]     default: $OUT/gpu-check.json, else ./gpu-check.json
#
# Exit status: 0 all parity checks pass; 1 a parity check failed; 2 no usable GPU (the JSON and
# the output say why); 3 no binary and no cargo to build one.
set -uo pipefail
cd "$(dirname "$0")/.."

out="${1:-${OUT:+$OUT/gpu-check.json}}"
out="${out:-gpu-check.json}"

# With cargo, (re)build the checker from this source (a no-op when it is up to date), so a
# binary left from older sources is never run; without cargo (a bare GPU machine), use the one
# built and carried with the repository.
bin="${GPU_CHECK_BIN:-}"
if [ -z "$bin" ] && command -v cargo >/dev/null 2>&1; then
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo build --release -p densevec-cuda-check --bin gpu-check --target-dir target/gpu-check || exit 3
  bin=target/gpu-check/release/gpu-check
fi
for cand in target/gpu-check/release/gpu-check target/release/gpu-check .tmp/gpu-check; do
  if [ -z "$bin" ] && [ -x "$cand" ]; then bin="$cand"; fi
done
if [ -z "$bin" ]; then
  echo "gpu-check: no prebuilt binary (target/gpu-check/release/gpu-check) and no cargo" >&2
  exit 3
fi

# Find NVRTC and cuBLAS where a CUDA toolkit or NVIDIA's Python wheels put them. The binary is
# built against the CUDA 12.8 API names; cuBLAS 13 (libcublas.so.13) keeps the entry points we
# use, so a link named libcublas.so in a private directory lets the loader find it.
libdirs=()
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu \
         /usr/local/cuda-*/lib64; do
  [ -d "$d" ] && libdirs+=("$d")
done
if command -v python3 >/dev/null 2>&1; then
  while IFS= read -r sp; do
    for d in "$sp"/nvidia/cu13/lib "$sp"/nvidia/cu12/lib "$sp"/nvidia/cuda_nvrtc/lib "$sp"/nvidia/cublas/lib; do
      [ -d "$d" ] && libdirs+=("$d")
    done
  done < <(python3 -c 'import site; print("\n".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null)
fi
shim="$(mktemp -d)"
trap 'rm -rf "$shim"' EXIT
for d in "${libdirs[@]}"; do
  if [ -z "${DENSEVEC_NVRTC_PATH:-}" ] && ls "$d"/libnvrtc.so* >/dev/null 2>&1; then
    export DENSEVEC_NVRTC_PATH="$d"
  fi
  if [ ! -e "$shim/libcublas.so" ]; then
    for f in "$d"/libcublas.so.12 "$d"/libcublas.so.13; do
      if [ -e "$f" ]; then ln -s "$f" "$shim/libcublas.so"; break; fi
    done
  fi
done
joined="$(IFS=:; echo "${libdirs[*]:-}")"
export LD_LIBRARY_PATH="$shim${joined:+:$joined}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "gpu-check: binary $bin; NVRTC from ${DENSEVEC_NVRTC_PATH:-(default search)}; cuBLAS $(readlink "$shim/libcublas.so" 2>/dev/null || echo '(default search)')"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

mkdir -p "$(dirname "$out")"
timeout 240 "$bin" "$out"
rc=$?

# The PyTorch CUDA anchor of the InfoNCE row, when this machine has torch with a GPU.
torch_out="$(dirname "$out")/gpu-torch.json"
if command -v python3 >/dev/null 2>&1 && python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  timeout 50 python3 scripts/gpu-torch-anchor.py "$torch_out" || echo "gpu-check: the PyTorch anchor failed"
else
  echo "gpu-check: no PyTorch with CUDA here; the InfoNCE anchor row is not measured"
  echo '{"available": false, "reason": "no PyTorch with CUDA on this machine"}' > "$torch_out"
fi
# One file: the PyTorch anchor, the driver's version and the InfoNCE ratios go into the JSON.
if command -v python3 >/dev/null 2>&1 && [ -s "$out" ]; then
  driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)"
  python3 - "$out" "$torch_out" "$driver" <<'PY' || echo "gpu-check: could not merge the PyTorch anchor"
import json, sys
out, torch_out, driver = sys.argv[1:4]
j = json.load(open(out))
try:
    t = json.load(open(torch_out))
except (OSError, ValueError) as e:
    t = {"available": False, "reason": str(e)}
j["driver"] = driver or None
j["torch"] = t
anchor = {tuple(r["shape"]): r for r in t.get("rows", [])}.get((65536, 768))
for r in j.get("bench", []):
    if anchor and r.get("row") == "infoNCE fwd+bwd" and "gemmMode" in r:
        r["torchEndToEndMs"] = anchor["endToEndMs"]
        r["torchDeviceMs"] = anchor["deviceMs"]
        r["vsTorchEndToEnd"] = anchor["endToEndMs"] / r["gpuMs"]
        print(f"infoNCE B=65536 d=768 {r['gemmMode']}: {r['gpuMs']:.1f} ms, PyTorch CUDA (TF32 off) "
              f"{anchor['endToEndMs']:.1f} ms end to end ({r['vsTorchEndToEnd']:.2f}x), "
              f"{anchor['deviceMs']:.1f} ms on resident data")
json.dump(j, open(out, "w"), indent=2)
PY
fi
exit $rc
