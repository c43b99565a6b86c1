#!/usr/bin/env bash
# One-command setup: virtual environment, pinned dependencies, Horovod 0.28.1
# built from its sdist (with the C++17 patches) and cached outside the repo.
#
# Environment:
#   PYTHON               interpreter for the venv            (default: python3)
#   SPARKDL_VENV         venv directory                      (default: .venv)
#   SPARKDL_TORCH_SPEC   pip spec for torch                  (default: torch==2.13.0)
#   SPARKDL_CACHE_DIR    where built Horovod wheels are kept (default: ~/.cache/sparkdl)
#   SPARKDL_HOROVOD_GPU  "nccl" forces NCCL, "none" disables it (default: NCCL when torch has CUDA)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${SPARKDL_VENV:-.venv}
TORCH_SPEC=${SPARKDL_TORCH_SPEC:-torch==2.13.0}
CACHE=${SPARKDL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sparkdl}
HOROVOD_VERSION=0.28.1
START=$(date +%s)

say() { echo "[setup $(( $(date +%s) - START ))s] $*"; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }

# --- prerequisites, checked before anything slow --------------------------------
command -v "$PY" >/dev/null || die "'$PY' not found. Install Python 3.9-3.12 or set PYTHON=/path/to/python3."
"$PY" -c 'import sys; sys.exit(0 if (3, 9) <= sys.version_info[:2] <= (3, 12) else 1)' \
  || die "Python $("$PY" -c 'import sys; print(sys.version.split()[0])') is not supported (need 3.9-3.12: pyarrow<15 has no wheels beyond). Set PYTHON=/path/to/python3.11."

JAVA=java
[ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ] && JAVA="$JAVA_HOME/bin/java"
command -v "$JAVA" >/dev/null \
  || die "Java not found. Spark 4.0 needs Java 17 or 21: 'apt-get install openjdk-17-jre-headless' (or set JAVA_HOME)."
JAVA_MAJOR=$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
[ "${JAVA_MAJOR:-0}" -ge 17 ] \
  || die "Java ${JAVA_MAJOR:-unknown} found at $(command -v "$JAVA"); Spark 4.0 needs Java 17 or 21. Install openjdk-17 and set JAVA_HOME."

CXX_BIN=${CXX:-}
if [ -z "$CXX_BIN" ]; then for c in g++ c++ clang++; do command -v $c >/dev/null && { CXX_BIN=$c; break; }; done; fi
HAVE_CXX=1; [ -n "$CXX_BIN" ] || HAVE_CXX=0
say "python $("$PY" -c 'import sys; print(sys.version.split()[0])'), java $JAVA_MAJOR, c++ ${CXX_BIN:-none}"

# --- virtual environment + torch ------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$(cd "$VENV" && pwd)/bin/python"
pip_install() {  # quiet, minus the noise of index locations that lack a package
  "$VPY" -m pip install --quiet --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
pip_install "setuptools>=65" wheel "cmake>=3.18,<4" "numpy>=1.23,<2"   # cmake < 4: Horovod's CMake predates 4.0's policy removals

say "installing $TORCH_SPEC"
pip_install "$TORCH_SPEC"
read -r TORCH_VER TORCH_CUDA PYTAG < <("$VPY" -c 'import sys, torch; print(torch.__version__, torch.version.cuda or "cpu", "cp%d%d" % sys.version_info[:2])')

# --- Horovod: cached wheel or a patched build -----------------------------------
GPU_OPS=""
case "${SPARKDL_HOROVOD_GPU:-auto}" in
  nccl) GPU_OPS=NCCL ;;
  none) GPU_OPS="" ;;
  auto) [ "$TORCH_CUDA" != cpu ] && command -v nvcc >/dev/null && GPU_OPS=NCCL ;;
  *) die "SPARKDL_HOROVOD_GPU='${SPARKDL_HOROVOD_GPU}' is not one of: auto, nccl, none." ;;
esac
KEY="horovod-$HOROVOD_VERSION-torch-$TORCH_VER-$PYTAG-${GPU_OPS:-cpu}"
WHEEL_DIR="$CACHE/wheels/$KEY"

have_horovod() {
  "$VPY" - <<PYEOF 2>/dev/null
import importlib.metadata as m, sys
sys.exit(0 if m.version("horovod") == "$HOROVOD_VERSION" else 1)
PYEOF
}

if have_horovod && [ -f "$VENV/.sparkdl-horovod-key" ] && [ "$(cat "$VENV/.sparkdl-horovod-key")" = "$KEY" ]; then
  say "horovod $HOROVOD_VERSION already installed ($KEY)"
else
  if ! ls "$WHEEL_DIR"/horovod-*.whl >/dev/null 2>&1; then
    [ "$HAVE_CXX" = 1 ] || die "No C++ compiler found; Horovod is built from source. 'apt-get install g++' (or set CXX)."
    say "building horovod $HOROVOD_VERSION for torch $TORCH_VER (${GPU_OPS:-cpu}); this takes a few minutes, once"
    BUILD=$(mktemp -d)
    trap 'rm -rf "$BUILD"' EXIT
    "$VPY" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: "horovod==$HOROVOD_VERSION" -d "$BUILD"
    tar xzf "$BUILD"/horovod-$HOROVOD_VERSION.tar.gz -C "$BUILD"
    SRC="$BUILD/horovod-$HOROVOD_VERSION"
    # torch >= 2.1 headers need C++17; Horovod 0.28.1 asks for C++14 in two places.
    sed -i 's/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD 17)/' "$SRC/CMakeLists.txt" "$SRC/horovod/torch/CMakeLists.txt"
    grep -q 'CMAKE_CXX_STANDARD 17' "$SRC/horovod/torch/CMakeLists.txt" || die "Horovod C++17 patch did not apply"
    pip_install cloudpickle psutil pyyaml packaging
    mkdir -p "$WHEEL_DIR.partial"
    ( cd "$SRC" && env HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
        HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
        ${GPU_OPS:+HOROVOD_GPU_OPERATIONS=$GPU_OPS} \
        MAKEFLAGS="-j$(nproc)" CXX="$CXX_BIN" \
        "$VPY" -m pip wheel --no-build-isolation --no-deps -w "$WHEEL_DIR.partial" . \
        > "$BUILD/build.log" 2>&1 ) || { tail -40 "$BUILD/build.log" >&2; die "Horovod build failed (full log above, last 40 lines)."; }
    rm -rf "$WHEEL_DIR" && mv "$WHEEL_DIR.partial" "$WHEEL_DIR"   # cache appears only when complete
    say "cached $(ls "$WHEEL_DIR")"
  else
    say "reusing cached wheel $WHEEL_DIR"
  fi
  pip_install --force-reinstall --no-deps "$WHEEL_DIR"/horovod-*.whl
  echo "$KEY" > "$VENV/.sparkdl-horovod-key"
fi

# --- the package and its pinned dependencies ------------------------------------
# petastorm 0.13.1 declares setuptools<70 while torch >= 2.13 needs setuptools >= 77, and
# pip's resolver "solves" that by swapping in an old CUDA build of torch (gigabytes). The
# pin is stale (petastorm only needs distutils' LooseVersion, still shipped), so petastorm
# goes in without its declared deps, its real runtime deps go in explicitly, and sparkdl
# itself is installed without re-resolving.
say "installing pinned dependencies and sparkdl (editable)"
pip_install -r <(grep -vE '^(torch|horovod|petastorm)' requirements.txt) -r requirements-test.txt \
  "setuptools>=77.0.3,<81" dill diskcache future pyzmq six fsspec psutil \
  cloudpickle packaging cffi   # petastorm's and horovod's runtime deps
pip_install --no-deps "$(grep -E '^petastorm' requirements.txt)"
pip_install --no-deps -e .

SPARKDL_TORCH_VER="$TORCH_VER" "$VPY" - <<'PYEOF'
import os, horovod.torch as hvd, torch, pyspark, pyarrow, petastorm
from petastorm import make_batch_reader
assert hvd.gloo_built(), "horovod was built without Gloo"
assert torch.__version__ == os.environ["SPARKDL_TORCH_VER"], \
    f"torch changed to {torch.__version__} during setup (Horovod was built for {os.environ['SPARKDL_TORCH_VER']})"
print(f"[setup] ok: torch {torch.__version__}, horovod gloo={hvd.gloo_built()} nccl={hvd.nccl_built()}, "
      f"pyspark {pyspark.__version__}, pyarrow {pyarrow.__version__}, petastorm {petastorm.__version__}")
PYEOF
say "done"
