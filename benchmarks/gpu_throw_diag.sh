#!/usr/bin/env bash
# Diagnosis of a crash seen on a GPU image (2026-11-26, H200, torch 2.11.0+cu130, gcc 13.3 in
# /opt/gcc): every error an af2 op raises from C++ (TORCH_CHECK_VALUE) ended the process with a
# segfault instead of a Python ValueError. Run after af2 is built in place (gpu_check.sh's build
# step); writes what it finds to stdout. With FIX=1 it keeps the first relinked variant that
# raises cleanly in af2/ (so the tests that follow run on it) and says which.
set -u
PY=${PYTHON:-python3}
SO=$(ls af2/_C.cpython-*.so | head -n 1)
cat > /tmp/af2_throw.py <<'EOF'
import torch, af2
from af2.ops import rope_windowed
try:
    rope_windowed(torch.randn(2, 8, 2, 8), window_size=3)
except ValueError as e:
    print("raised cleanly:", str(e)[:80])
EOF
try() { timeout 60 "$PY" /tmp/af2_throw.py 2>&1 | tail -n 3; echo "rc=${PIPESTATUS[0]}"; }
echo "== environment"
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
/opt/gcc/bin/g++ -v 2>&1 | grep -oE -- "--with-default-libstdcxx-abi=[a-z0-9-]+|gcc version [0-9.]+" | sort -u
"$PY" -c "import torch; print('torch cxx11 abi', torch._C._GLIBCXX_USE_CXX11_ABI, torch.__file__)"
"$PY" -c "import torch; print(torch.__config__.show()[:700])"
ldd "$SO" | grep -E "stdc\+\+|gcc_s|gomp|c10.so"
"$PY" -c "import torch, af2; print(''.join(sorted({l.split()[-1] + chr(10) for l in open('/proc/self/maps') if 'stdc++' in l or 'gcc_s' in l})))"
echo "== as built"
try
if command -v cuda-gdb > /dev/null; then
  echo "== native backtrace (cuda-gdb)"
  timeout 90 cuda-gdb -q -batch -ex run -ex "bt 25" --args "$PY" /tmp/af2_throw.py 2>&1 | grep -E "^#|signal|SIG" | head -n 40
fi
LINK=$(grep -E -- "-shared .*-o build/lib" "$OUT/build.log" 2>/dev/null | tail -n 1)
[ -z "$LINK" ] && LINK=$(grep -E -- "-shared .*-o build/lib" build.log 2>/dev/null | tail -n 1)
if [ -n "$LINK" ]; then
  cp "$SO" /tmp/af2_C_as_built.so
  variants=("no_bsymbolic|s/-Wl,-Bsymbolic-functions//"
            "static_libgcc|s/ -fopenmp\$/ -fopenmp -static-libgcc/"
            "system_gxx|s#^[^ ]*g\+\+ #/usr/bin/g++ #")
  for v in "${variants[@]}"; do
    name=${v%%|*}; expr=${v#*|}
    cmd=$(echo "$LINK" | sed -E "$expr")
    echo "== relinked: $name"
    if bash -c "$cmd" > /tmp/af2_link.log 2>&1; then
      cp build/lib*/af2/_C.cpython-*.so "$SO"
      out=$(try); echo "$out"
      if [ "${FIX:-0}" = 1 ] && echo "$out" | grep -q "raised cleanly"; then
        echo "KEEPING variant $name for the tests"; exit 0
      fi
    else
      tail -n 3 /tmp/af2_link.log
    fi
  done
  cp /tmp/af2_C_as_built.so "$SO"
fi
