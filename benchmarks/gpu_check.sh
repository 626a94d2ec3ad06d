#!/usr/bin/env bash
# GPU check: one prepared run on a GPU machine, from the repository root, that fits a 10-minute
# command: by default it ends within BUDGET_S = 480 s (8 min) of wall time, the build included.
#
#   AF2_COMMIT=<sha of the checked-out commit> bash benchmarks/gpu_check.sh
#
# Beforehand, on a machine with a package index (the GPU machine has none), put the wheels in
# benchmarks/wheels/ and carry that folder along: nvidia-cutlass (CuTe headers: the CUDA build
# needs it), liger-kernel (RoPE comparison), inf-cl (contrastive comparison), and for the trainer's
# GPU smoke test what the GPU image lacks (Python 3.12 wheels: deepspeed, built here as a pure wheel,
# and its hjson, pydantic, pydantic-core, annotated-types, typing-inspection; soundfile with cffi and
# pycparser; soxr):
#   pip download --no-deps -d benchmarks/wheels nvidia-cutlass liger-kernel inf-cl
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d benchmarks/wheels hjson pydantic pydantic_core annotated-types typing-inspection soundfile cffi pycparser soxr
#   DS_BUILD_OPS=0 pip wheel --no-deps --no-build-isolation deepspeed -w benchmarks/wheels
# The wheels go to a folder of their own on PYTHONPATH and af2 is built in place (build_ext
# --inplace): nothing is written into the image's Python environment.
#
# Steps, most important first, each under its own cap and all under one deadline (a step gets
# min(cap, time left); a step with < 20 s left is skipped and says so):
#   wheels   pip install --target $SITE benchmarks/wheels/*.whl                        cap  60 s
#   build    setup.py build_ext --inplace with the CUDA kernels (TORCH_CUDA_ARCH_LIST=9.0a,
#            MAX_JOBS=16)                                                               cap 240 s
#   tests    the CUDA parametrisations (AF2_TEST_DEVICES=cuda) of tests/ops, tests/nn,
#            tests/test_build.py and tests/training/test_gpu_smoke.py if present     cap 150 s
#   demo     python -m training.demo --quick (the main job's plumbing on the GPU)    cap  90 s
#   report   benchmarks/report.py, one process per section, all into ONE results JSON
#            (rewritten after every row, so a kill keeps what finished):
#            rope 45 s, media_attn 75 s, contrastive 75 s, model 150 s (af2-3b bf16: stage-1
#            step fused vs eager, 30-window batch-8 inference, ms/token, peak memory)
#   bench    pytest-benchmark microbenchmarks, with whatever time is left            cap 120 s
#
# Everything lands under $OUT (default ./gpu_out) as it is produced, at most 8 files (the device
# tool returns 8): summary.txt (nvidia-smi, build info, one line per step, written step by step),
# build.log, tests.log, demo.log, report.log, bench.log, results/<device>-<date>.json.
#
# Variables: BUDGET_S (480); TESTS, BENCH (pytest targets; BENCH="" skips the benchmarks);
# REPORT_OPS (sections, in order; e.g. REPORT_OPS=contrastive; "" for none); REPORT_ARGS (default --quick);
# TORCH_CUDA_ARCH_LIST (9.0a), MAX_JOBS (16); AF2_CONTRASTIVE_KERNEL=simt|tc (default tc).
# A run for one op, e.g. the contrastive loss:
#   TESTS=tests/ops/test_contrastive.py BENCH=benchmarks/test_contrastive_bench.py REPORT_OPS=contrastive \
#     bash benchmarks/gpu_check.sh
set -u
START=$SECONDS
BUDGET_S=${BUDGET_S:-480}
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT/results"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0a} AF2_BUILD_CUDA=1 MAX_JOBS=${MAX_JOBS:-16}
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
SITE=${SITE:-/tmp/af2_site}
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
SUMMARY="$OUT/summary.txt"
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
# benchmarks/results' naming (<device>-<date>.json), so the file can be committed as it is
RESULTS="$OUT/results/$(echo "${GPU_NAME:-unknown-device}" | sed -E 's/[^A-Za-z0-9]+/-/g; s/^-|-$//g')-$(date -u +%Y-%m-%d).json"
status=0

left() { echo $((BUDGET_S - (SECONDS - START))); }

limit_for() {  # limit_for CAP_S: the cap, or what is left of the budget less 5 s if that is less
  local l=$(( $(left) - 5 ))
  (( l > $1 )) && l=$1
  echo "$l"
}

note() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME CAP_S LOG CMD...: run CMD (SIGINT at the limit, so pytest prints what it has; KILL 10 s
# later), appending to LOG; one line per step in summary.txt.
step() {
  local name=$1 cap=$2 log=$3 t0=$SECONDS rc limit
  shift 3
  limit=$(limit_for "$cap")
  if (( limit < 20 )); then
    note "$(printf '%-20s skipped: %ss left of the %ss budget' "$name" "$(left)" "$BUDGET_S")"
    status=1
    return 99
  fi
  echo "== $name (limit ${limit}s): $*" >> "$log"
  local from=$(( $(wc -l < "$log") + 1 ))
  echo "== $name (limit ${limit}s): $*"
  timeout -s INT -k 10 "$limit" "$@" >> "$log" 2>&1
  rc=$?
  tail -n "+$from" "$log" | tail -n "${TAIL:-15}"
  (( rc == 124 || rc == 137 )) && rc="$rc(timeout)"
  note "$(printf '%-20s rc=%-13s %4ss   (t=%ss)' "$name" "$rc" "$((SECONDS - t0))" "$((SECONDS - START))")"
  [ "$rc" = 0 ] || status=1
  [ "$rc" = 0 ]
}

{
  echo "af2 gpu_check: commit ${AF2_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}, $(date -u), budget ${BUDGET_S}s"
  nvidia-smi 2>&1 | head -n 20
} > "$SUMMARY"

if compgen -G "benchmarks/wheels/*.whl" > /dev/null; then
  step wheels 60 "$OUT/build.log" "$PY" -m pip install --no-deps --no-index --no-compile --upgrade \
    --target "$SITE" benchmarks/wheels/*.whl
fi
# A C++ compiler that links libstdc++ statically into shared objects (this GPU image's /opt/gcc
# g++ 13.3 does) gives a core that af2 refuses to load (an op's error would crash the process):
# build with the system compiler then. The probe: a one-line shared object, and whether it needs
# libstdc++.so.
links_libstdcxx_shared() {
  local d; d=$(mktemp -d)
  printf '#include <sstream>\nint f() { std::ostringstream s; s << 1; return int(s.str().size()); }\n' > "$d/p.cpp"
  "$1" -shared -fPIC "$d/p.cpp" -o "$d/p.so" > /dev/null 2>&1 && ldd "$d/p.so" | grep -q "libstdc++"
}
if ! links_libstdcxx_shared "${CXX:-c++}" && [ -x /usr/bin/g++ ] && links_libstdcxx_shared /usr/bin/g++; then
  note "compiler: ${CXX:-c++} links libstdc++ statically; building with /usr/bin/gcc and /usr/bin/g++"
  export CC=/usr/bin/gcc CXX=/usr/bin/g++
fi
if step build 240 "$OUT/build.log" "$PY" setup.py build_ext --inplace; then
  "$PY" -m af2 info >> "$SUMMARY" 2>&1

  # Tests: CUDA parametrisations only (CI runs the CPU ones), 8 workers where pytest-xdist is
  # there, 90 s per test where pytest-timeout is (a hung kernel fails its test, not the run).
  default_tests="tests/ops tests/nn tests/test_build.py"
  [ -f tests/training/test_gpu_smoke.py ] && default_tests="$default_tests tests/training/test_gpu_smoke.py"
  extra=()
  "$PY" -c "import xdist" 2>/dev/null && extra+=(-n 8)
  "$PY" -c "import pytest_timeout" 2>/dev/null && extra+=(--timeout 90)
  # shellcheck disable=SC2086
  AF2_TEST_DEVICES=cuda step tests 150 "$OUT/tests.log" "$PY" -m pytest ${TESTS:-$default_tests} -q \
    -p no:cacheprovider -rfEs -k "not peak_memory" ${extra[@]+"${extra[@]}"}

  # The main job's plumbing on the GPU: data, 4 DeepSpeed stages, evaluation, report (--quick).
  step demo 90 "$OUT/demo.log" "$PY" -m training.demo --quick --out /tmp/af2_demo

  # Report sections in priority order, one process each (a crash or kill loses one section only).
  declare -A CAP=([rope]=45 [media_attn]=75 [contrastive]=75 [model]=150)
  for op in ${REPORT_OPS-rope media_attn contrastive model}; do
    cap=$(limit_for "${CAP[$op]:-90}")  # report.py starts no new measurement in its last 20 s
    # shellcheck disable=SC2086
    step "report:$op" "$cap" "$OUT/report.log" "$PY" benchmarks/report.py --ops "$op" --into "$RESULTS" \
      --budget-s $((cap - 20)) ${REPORT_ARGS---quick}
  done

  if [ -n "${BENCH-x}" ]; then
    # shellcheck disable=SC2086
    step bench 120 "$OUT/bench.log" "$PY" -m pytest ${BENCH:-benchmarks/test_rope_bench.py \
      benchmarks/test_media_attention_bench.py benchmarks/test_block_bench.py} -q -p no:cacheprovider
  fi
fi
note "total $((SECONDS - START))s of ${BUDGET_S}s; results: $RESULTS"
echo "== summary"
grep -E "^(wheels|build|tests|demo|report:[a-z_]+|bench|total) " "$SUMMARY"
exit "$status"
