#!/usr/bin/env bash
# One-command setup: virtual environment, dependencies on today's releases, Horovod
# 0.28.1 built from its sdist (with the C++17 patches) and cached outside the repo, and a
# small second environment with the last stack Petastorm runs on, for the tier that
# proves sparkdl's datasets open in Petastorm.
#
# Environment:
#   PYTHON               interpreter for the venv, 3.11-3.13   (default: python3)
#   SPARKDL_VENV         venv directory                        (default: .venv)
#   SPARKDL_TORCH_SPEC   pip spec for torch                    (default: torch==2.13.0, the CPU build;
#                        "torch==2.14.1" takes PyPI's Linux build, which has CUDA; pip options may follow)
#   SPARKDL_CACHE_DIR    where built Horovod wheels are kept   (default: ~/.cache/sparkdl)
#   SPARKDL_HOROVOD_GPU  "nccl" forces NCCL, "none" disables it (default: NCCL when torch has CUDA)
#   SPARKDL_LAUNCHERS    "auto" installs, as root where apt-get is, the Debian packages of the launchers
#                        beyond Spark that are missing: OpenMPI (mpirun, and Horovod's MPI controller) and
#                        Slurm with munge (srun, sparkdl slurm submit, their test tier); "off" installs
#                        none (default: auto)
#   SPARKDL_HOROVOD_MPI  "on" builds Horovod's MPI controller (needs OpenMPI: mpicxx), "off" leaves it
#                        out (default: on when mpicxx is found; Debian: apt-get install libopenmpi-dev)
#   SPARKDL_PETASTORM_VENV  the Petastorm compatibility venv, "none" to skip it (default: .venv-petastorm)
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
command -v "$PY" >/dev/null || die "'$PY' not found. Install Python 3.11-3.13 or set PYTHON=/path/to/python3."
"$PY" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else 1)' \
  || die "Python $("$PY" -c 'import sys; print(sys.version.split()[0])') is not supported (need 3.11-3.13: pyspark 4.3 needs >= 3.11). Set PYTHON=/path/to/python3.11."

JAVA=java
[ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ] && JAVA="$JAVA_HOME/bin/java"
command -v "$JAVA" >/dev/null \
  || die "Java not found. Spark 4.3 needs Java 17 or 21: 'apt-get install openjdk-17-jre-headless' (or set JAVA_HOME)."
JAVA_MAJOR=$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
[ "${JAVA_MAJOR:-0}" -ge 17 ] \
  || die "Java ${JAVA_MAJOR:-unknown} found at $(command -v "$JAVA"); Spark 4.3 needs Java 17 or 21. Install openjdk-17 and set JAVA_HOME."

CXX_BIN=${CXX:-}
if [ -z "$CXX_BIN" ]; then for c in g++ c++ clang++; do command -v $c >/dev/null && { CXX_BIN=$c; break; }; done; fi
HAVE_CXX=1; [ -n "$CXX_BIN" ] || HAVE_CXX=0
say "python $("$PY" -c 'import sys; print(sys.version.split()[0])'), java $JAVA_MAJOR, c++ ${CXX_BIN:-none}"

# --- the launchers' system packages (before Horovod: its MPI controller needs OpenMPI) ---
LAUNCHER_PACKAGES=(openmpi-bin libopenmpi-dev slurmctld slurmd slurm-client munge)
case "${SPARKDL_LAUNCHERS:-auto}" in
  auto)
    missing=()
    for pkg in "${LAUNCHER_PACKAGES[@]}"; do
      dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
      :
    elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      say "installing the launchers' Debian packages: ${missing[*]}"
      apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
      apt_install || { apt-get update -q >/dev/null && apt_install; } \
        || die "apt-get could not install ${missing[*]}; set SPARKDL_LAUNCHERS=off to go on without mpirun and srun"
    else
      say "without ${missing[*]}: mpirun and srun launches, and their tests, are not available (as root: apt-get install ${missing[*]})"
    fi ;;
  off) ;;
  *) die "SPARKDL_LAUNCHERS='${SPARKDL_LAUNCHERS}' is not one of: auto, off." ;;
esac

# --- virtual environment + torch ------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$(cd "$VENV" && pwd)/bin/python"
pip_install() {  # quiet, minus the noise of index locations that lack a package
  "$VPY" -m pip install --quiet --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
pip_install "setuptools>=77.0.3" wheel "cmake>=3.18,<4"   # cmake < 4: Horovod's CMake predates 4.0's policy removals

say "installing $TORCH_SPEC"
# shellcheck disable=SC2086  # the spec may carry pip options (--index-url for a CUDA build)
pip_install $TORCH_SPEC "numpy>=2,<3"
read -r TORCH_VER TORCH_CUDA PYTAG < <("$VPY" -c 'import sys, torch; print(torch.__version__, torch.version.cuda or "cpu", "cp%d%d" % sys.version_info[:2])')

# --- Horovod: cached wheel or a patched build -----------------------------------
GPU_OPS=""
case "${SPARKDL_HOROVOD_GPU:-auto}" in
  nccl) GPU_OPS=NCCL ;;
  none) GPU_OPS="" ;;
  auto) [ "$TORCH_CUDA" != cpu ] && command -v nvcc >/dev/null && GPU_OPS=NCCL ;;
  *) die "SPARKDL_HOROVOD_GPU='${SPARKDL_HOROVOD_GPU}' is not one of: auto, nccl, none." ;;
esac
MPI=""
case "${SPARKDL_HOROVOD_MPI:-auto}" in
  on) command -v mpicxx >/dev/null || die "SPARKDL_HOROVOD_MPI=on but mpicxx is not found: apt-get install libopenmpi-dev"
      MPI=mpi ;;
  off) MPI="" ;;
  auto) command -v mpicxx >/dev/null && MPI=mpi ;;
  *) die "SPARKDL_HOROVOD_MPI='${SPARKDL_HOROVOD_MPI}' is not one of: auto, on, off." ;;
esac
KEY="horovod-$HOROVOD_VERSION-torch-$TORCH_VER-$PYTAG-${GPU_OPS:-cpu}${MPI:+-$MPI}"
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
    say "building horovod $HOROVOD_VERSION for torch $TORCH_VER (${GPU_OPS:-cpu}${MPI:+, mpi}); this takes a few minutes, once"
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
    if [ -n "$MPI" ]; then MPI_FLAG=HOROVOD_WITH_MPI=1; else MPI_FLAG=HOROVOD_WITHOUT_MPI=1; fi
    ( cd "$SRC" && env HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 "$MPI_FLAG" \
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

# --- the package and its dependencies --------------------------------------------
# torch is already in place, so `torch>=2.1` is satisfied and pip keeps the build Horovod
# was compiled against. Horovod went in without its deps; its runtime ones are listed.
say "installing dependencies and sparkdl (editable, with the mlflow, tune and ray extras the tests need)"
pip_install -r requirements-test.txt -e ".[mlflow,tune,ray]" cloudpickle psutil packaging cffi

SPARKDL_TORCH_VER="$TORCH_VER" "$VPY" - <<'PYEOF'
import importlib.util, os, horovod.torch as hvd, mlflow, numpy, optuna, pyarrow, pyspark, ray, torch
assert hvd.gloo_built(), "horovod was built without Gloo"
assert torch.__version__ == os.environ["SPARKDL_TORCH_VER"], \
    f"torch changed to {torch.__version__} during setup (Horovod was built for {os.environ['SPARKDL_TORCH_VER']})"
assert importlib.util.find_spec("petastorm") is None, "petastorm is in the main venv; sparkdl must not need it"
import sparkdl.training.rank.reader  # noqa: F401  (pyarrow only)
from pyspark.sql.connect.utils import check_dependencies
check_dependencies()  # the Spark Connect client's own packages (grpcio, zstandard...)
print(f"[setup] ok: torch {torch.__version__}, horovod gloo={hvd.gloo_built()} mpi={hvd.mpi_built()} "
      f"nccl={hvd.nccl_built()}, "
      f"pyspark {pyspark.__version__}, pyarrow {pyarrow.__version__}, numpy {numpy.__version__}, "
      f"mlflow {mlflow.__version__}, optuna {optuna.__version__}, ray {ray.__version__}")
PYEOF

# --- Petastorm compatibility env --------------------------------------------------
# Petastorm 0.13.1 (its last release) imports only with pyarrow < 15 and numpy < 2, so it
# cannot share the main venv. This one reads datasets the main venv wrote
# (tests/compat). Its deps are listed by hand: petastorm declares pyspark (300 MB) and
# a setuptools<70 pin that it does not need to open a batch reader.
PETA_VENV=${SPARKDL_PETASTORM_VENV:-.venv-petastorm}
PETA_SPEC="petastorm==0.13.1 pyarrow==14.0.2 numpy==1.26.4 pandas==2.1.4"
if [ "$PETA_VENV" = none ]; then
  say "skipping the Petastorm compatibility env (SPARKDL_PETASTORM_VENV=none)"
elif [ -x "$PETA_VENV/bin/python" ] && [ "$(cat "$PETA_VENV/.sparkdl-spec" 2>/dev/null)" = "$PETA_SPEC" ]; then
  say "petastorm compatibility env ready ($PETA_VENV)"
else
  say "creating the petastorm compatibility env $PETA_VENV ($PETA_SPEC)"
  rm -rf "$PETA_VENV"
  "$PY" -m venv "$PETA_VENV"
  PPY="$(cd "$PETA_VENV" && pwd)/bin/python"
  "$PPY" -m pip install --quiet --disable-pip-version-check pyarrow==14.0.2 numpy==1.26.4 pandas==2.1.4 \
    dill diskcache future fsspec packaging psutil pyzmq six "setuptools<70" 2> >(grep -v "is ignored" >&2)
  "$PPY" -m pip install --quiet --disable-pip-version-check --no-deps petastorm==0.13.1 2> >(grep -v "is ignored" >&2)
  "$PPY" -c 'import petastorm, pyarrow; from petastorm import make_batch_reader; print(f"[setup] ok: petastorm {petastorm.__version__}, pyarrow {pyarrow.__version__}")'
  echo "$PETA_SPEC" > "$PETA_VENV/.sparkdl-spec"
fi
say "done"
