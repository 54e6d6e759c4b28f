#!/usr/bin/env bash
# The GPU check, from a fresh clone, in one command (docs/speed.md, "The GPU check"):
#
#   bash benchmarks/gpu_check.sh --out DIR [--data DIR] [--wheels DIR] [--budget SECONDS]
#   bash benchmarks/gpu_check.sh --dry-run --out DIR     # the same plan on CPU, tiny settings
#
# First its Python: a venv (.venv-gpu) that sees this machine's own PyTorch when there is one
# (a GPU image's CUDA build, which pip could not fetch offline), with trainlab installed from this
# checkout (a .pth to src/), wheels from --wheels (packages the machine lacks, e.g. mlxtend) and whatever else is
# missing from the registry when one is reachable; without a PyTorch, `make install` (the
# registry's). --python PY (or --dry-run without --setup venv) uses PY as it is, trainlab from src/.
# Then benchmarks/gpu_check.py runs each step in its own time box (about 7 minutes in all by
# default, --budget) and writes DIR/gpu_check_summary.md (and DIR/gpu_check.log).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${OUT:-gpu-check}
WHEELS=""
SETUP=""
PY_BASE=${PYTHON:-python3}
VENV=.venv-gpu
DRY=0
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT_DIR=$2; shift 2 ;;
    --wheels) WHEELS=$2; shift 2 ;;
    --python) PY_BASE=$2; SETUP=none; shift 2 ;;
    --setup) SETUP=$2; shift 2 ;;  # venv | none
    --venv) VENV=$2; shift 2 ;;
    --dry-run) DRY=1; ARGS+=("$1"); shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
[ -n "$SETUP" ] || { [ "$DRY" = 1 ] && SETUP=none || SETUP=venv; }
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_check.log"
: >"$LOG"

purelib() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }

setup_venv() {
  if "$PY_BASE" -c 'import torch' 2>/dev/null; then
    # without ensurepip (a system Python lacking python3-venv) the venv has no pip: the base's pip installs into it
    test -x "$VENV/bin/python" || "$PY_BASE" -m venv "$VENV" || "$PY_BASE" -m venv --without-pip "$VENV" || return 1
    # the base interpreter's packages (its torch) on the venv's path, also when the base is itself a venv
    purelib "$PY_BASE" >"$(purelib "$VENV/bin/python")/_gpu_check_base.pth" || return 1
    if [ -n "$WHEELS" ]; then
      "$PY_BASE" -m pip install -q --no-index --no-deps --target "$(purelib "$VENV/bin/python")" "$WHEELS"/*.whl \
        || return 1
    fi
    # trainlab from this checkout, as `pip install -e .` would put it, without building anything
    echo "$PWD/src" >"$(purelib "$VENV/bin/python")/_gpu_check_trainlab.pth" || return 1
    printf '#!/bin/sh\nexec "%s" -m trainlab "$@"\n' "$(cd "$VENV" && pwd)/bin/python" >"$VENV/bin/trainlab"
    chmod +x "$VENV/bin/trainlab"
    "$VENV/bin/python" -c 'import trainlab, torch' || return 1
    local missing
    missing=$("$VENV/bin/python" benchmarks/gpu_check.py --missing)
    if [ -n "$missing" ] && [ -n "$WHEELS" ]; then
      echo "not installed: $missing (offline with --wheels: the steps that need them will say so)"
    elif [ -n "$missing" ]; then
      echo "missing: $missing; trying the package registry"
      timeout 60 "$PY_BASE" -m pip install --target "$(purelib "$VENV/bin/python")" -q --retries 1 --timeout 10 $missing \
        || echo "not installed: $missing (the steps that need them will say so)"
    fi
  else
    timeout 900 make install VENV="$VENV" PYTHON="$PY_BASE" || return 1
  fi
}

t0=$(date +%s)
if [ "$SETUP" = venv ]; then
  echo "setting up $VENV (log: $LOG)"
  if setup_venv >>"$LOG" 2>&1; then
    PY="$VENV/bin/python"
    export GPU_CHECK_SETUP="venv $VENV ready in $(( $(date +%s) - t0 )) s"
  else
    PY="$PY_BASE"
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
    export GPU_CHECK_SETUP="venv set-up FAILED after $(( $(date +%s) - t0 )) s (see gpu_check.log); using $PY_BASE with src/"
  fi
else
  PY="$PY_BASE"
  export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
  export GPU_CHECK_SETUP="none: $PY_BASE with trainlab from src/"
fi
echo "$GPU_CHECK_SETUP"
exec "$PY" benchmarks/gpu_check.py --out "$OUT_DIR" "${ARGS[@]}"
