# shellcheck shell=bash
# Source this file: it installs, once and inside the project, what the build needs, then exports
# the environment for cargo.  Usage:  source scripts/env.sh [--tch]
#
#   - cmake >= 3.26 (PyPI wheel) in .venv/, so that the `hdf5-metno` `static` feature can build
#     HDF5 from its bundled source (Debian 12's cmake is 3.25);
#   - with --tch: torch==2.9.0 (PyPI wheel, the libtorch that tch 0.22 expects) in .venv/, and
#     LIBTORCH_USE_PYTORCH=1 so that torch-sys finds it; the binaries get an rpath to its lib/
#     folder (build scripts), LD_LIBRARY_PATH is set too for anything else.
#
# HPC users who link their own HDF5 and libtorch do not need this file: see README.md.

_up_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_up_venv="${UPSAMPLE_VENV:-$_up_root/.venv}"
_up_tch=0
for _a in "$@"; do [ "$_a" = "--tch" ] && _up_tch=1; done

_up_log() { echo "[env] $*" >&2; }

if [ ! -x "$_up_venv/bin/python" ]; then
    _up_log "creating virtualenv $_up_venv"
    python3 -m venv "$_up_venv" || return 1
fi
if ! "$_up_venv/bin/cmake" --version >/dev/null 2>&1; then
    _up_log "installing cmake (PyPI) into $_up_venv"
    "$_up_venv/bin/pip" install --disable-pip-version-check -q "cmake>=3.26,<5" || return 1
fi
if [ "$_up_tch" = 1 ] && ! "$_up_venv/bin/python" -c 'import torch' >/dev/null 2>&1; then
    _up_log "installing torch==2.9.0 (PyPI, ~6.7 GB with its CUDA libraries) into $_up_venv"
    "$_up_venv/bin/pip" install --disable-pip-version-check -q "torch==2.9.0" numpy || return 1
fi

export PATH="$_up_venv/bin:$PATH"
export VIRTUAL_ENV="$_up_venv"
if [ "$_up_tch" = 1 ]; then
    export LIBTORCH_USE_PYTORCH=1
    _up_torch_lib="$("$_up_venv/bin/python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')" || return 1
    export LD_LIBRARY_PATH="$_up_torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
unset _a _up_log _up_torch_lib
