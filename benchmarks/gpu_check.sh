#!/usr/bin/env bash
# GPU check: one prepared run on a GPU machine, from the repository root.
#
#   AF2_COMMIT=<sha of the checked-out commit> bash benchmarks/gpu_check.sh
#
# 1. builds af2 against the machine's torch with the CUDA kernels (TORCH_CUDA_ARCH_LIST,
#    default 9.0a), installing any wheels in benchmarks/wheels/ first (Liger-Kernel for the
#    RoPE comparison: `pip download --no-deps -d benchmarks/wheels liger-kernel` beforehand;
#    Inf-CL for the contrastive comparison: `pip download --no-deps -d benchmarks/wheels inf-cl`,
#    which needs only torch and triton, both on the GPU image);
# 2. runs the op tests (CUDA parametrisations included) and the op microbenchmarks;
# 3. runs benchmarks/report.py, which writes the results JSON (the contrastive section times
#    fwd+bwd vs eager at B = 1024..16384, vs Inf-CL at B = 65,536 and probes peak memory at
#    B = 262,144; AF2_CONTRASTIVE_KERNEL=simt|tc picks its CUDA path, default tc).
# Logs and results go under $OUT (default ./gpu_out); a table of step results is printed last.
# A run for one op, e.g. the contrastive loss:
#   TESTS=tests/ops/test_contrastive.py BENCH=benchmarks/test_contrastive_bench.py REPORT_OPS=contrastive \
#     bash benchmarks/gpu_check.sh
set -u
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0a} AF2_BUILD_CUDA=1 MAX_JOBS=${MAX_JOBS:-16}
PY=${PYTHON:-python3}
SUMMARY=()
status=0

step() {  # step NAME TIMEOUT_S CMD...: run, log to $OUT/NAME.log, show its tail
  local name=$1 limit=$2 t0=$SECONDS rc
  shift 2
  echo "== $name: $*"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  tail -n "${TAIL:-12}" "$OUT/$name.log"
  SUMMARY+=("$(printf '%-8s rc=%-3s %4ss' "$name" "$rc" "$((SECONDS - t0))")")
  [ "$rc" -eq 0 ] || status=1
  return "$rc"
}

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
if compgen -G "benchmarks/wheels/*.whl" > /dev/null; then
  step wheels 120 "$PY" -m pip install --no-deps --no-index benchmarks/wheels/*.whl
fi
if step build 400 "$PY" -m pip install --no-build-isolation --no-deps -v -e .; then
  step info 60 "$PY" -m af2 info
  # TESTS, BENCH: pytest targets (defaults below); REPORT_OPS: e.g. "contrastive" to run one section.
  # shellcheck disable=SC2086
  step tests 300 "$PY" -m pytest ${TESTS:-tests/ops tests/nn tests/integrations tests/test_build.py} -q -p no:cacheprovider -rs -k "not peak_memory"
  # shellcheck disable=SC2086
  step bench 300 "$PY" -m pytest ${BENCH:-benchmarks/test_rope_bench.py benchmarks/test_media_attention_bench.py benchmarks/test_block_bench.py} -q -p no:cacheprovider
  # shellcheck disable=SC2086
  step report 300 "$PY" benchmarks/report.py ${REPORT_OPS:+--ops $REPORT_OPS} --out "$OUT/results"
fi
echo "== summary"
printf '%s\n' "${SUMMARY[@]}"
exit "$status"
