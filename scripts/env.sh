# shellcheck shell=bash
# Source this file: it installs, once and inside the project, what the build needs, then exports
# the environment for cargo.  Usage:  source scripts/env.sh [--tch | --tch-cpu]
#
#   - cmake >= 3.26 (PyPI wheel) in .venv/, so that the `hdf5-metno` `static` feature can build
#     HDF5 from its bundled source (Debian 12's cmake is 3.25);
#   - with --tch: torch==2.9.0 (PyPI wheel, the libtorch that tch 0.22 expects, with its CUDA
#     libraries: ~6.7 GB) in .venv/, and LIBTORCH_USE_PYTORCH=1 so that torch-sys finds it;
#   - with --tch-cpu: the same wheel without its CUDA dependencies (~1.7 GB; what CI and
#     machines without a GPU need), seen through .venv/libtorch-cpu/, a libtorch folder of links
#     that leaves out the CUDA half of libtorch, and LIBTORCH pointing at it. The build then
#     runs on CPU only (`Device::Cuda` reports no GPU).
#   The binaries get an rpath to libtorch's lib/ folder (build scripts); LD_LIBRARY_PATH is set
#   too for anything else.
#
# HPC users who link their own HDF5 and libtorch do not need this file: see README.md.

_up_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_up_venv="${UPSAMPLE_VENV:-$_up_root/.venv}"
_up_tch=0
_up_tch_cpu=0
for _a in "$@"; do
    [ "$_a" = "--tch" ] && _up_tch=1
    [ "$_a" = "--tch-cpu" ] && _up_tch_cpu=1
done

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

if [ "$_up_tch_cpu" = 1 ]; then
    # torch's own folder, found without importing it (a --no-deps install cannot be imported);
    # empty when torch is not installed.
    _up_torch_folder() {
        "$_up_venv/bin/python" -c 'import importlib.util as u; s = u.find_spec("torch"); print(s.submodule_search_locations[0] if s else "")'
    }
    _up_torch_dir="$(_up_torch_folder)"
    if [ -z "$_up_torch_dir" ]; then
        _up_log "installing torch==2.9.0 without its CUDA libraries (PyPI, ~1.7 GB) into $_up_venv"
        # libtorch_cpu itself links the CUDA runtime and CUPTI (small); the rest of CUDA is only
        # needed by libtorch_cuda, which the CPU folder leaves out.
        "$_up_venv/bin/pip" install --disable-pip-version-check --no-cache-dir -q --no-deps \
            "torch==2.9.0" "nvidia-cuda-runtime-cu12==12.8.90" "nvidia-cuda-cupti-cu12==12.8.90" || return 1
        _up_torch_dir="$(_up_torch_folder)"
        [ -n "$_up_torch_dir" ] || return 1
    fi
    _up_cpu="$_up_venv/libtorch-cpu"
    if [ ! -e "$_up_cpu/build-version" ]; then
        _up_log "making the CPU libtorch folder $_up_cpu"
        rm -rf "$_up_cpu" && mkdir -p "$_up_cpu/lib" || return 1
        ln -s "$_up_torch_dir/include" "$_up_cpu/include" || return 1
        for _f in "$_up_torch_dir"/lib/*.so*; do
            case "$(basename "$_f")" in
                *cuda* | *nvshmem* | *nvrtc*) ;;
                *) ln -s "$_f" "$_up_cpu/lib/" || return 1 ;;
            esac
        done
        for _f in "$_up_torch_dir"/../nvidia/cuda_runtime/lib/libcudart.so.* \
            "$_up_torch_dir"/../nvidia/cuda_cupti/lib/libcupti.so.*; do
            ln -s "$(cd "$(dirname "$_f")" && pwd)/$(basename "$_f")" "$_up_cpu/lib/" || return 1
        done
        echo "2.9.0" >"$_up_cpu/build-version"
    fi
    unset LIBTORCH_USE_PYTORCH
    export LIBTORCH="$_up_cpu"
    export LD_LIBRARY_PATH="$_up_cpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

export PATH="$_up_venv/bin:$PATH"
export VIRTUAL_ENV="$_up_venv"
if [ "$_up_tch" = 1 ]; then
    export LIBTORCH_USE_PYTORCH=1
    _up_torch_lib="$("$_up_venv/bin/python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')" || return 1
    export LD_LIBRARY_PATH="$_up_torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
unset -f _up_torch_folder
unset _a _f _up_log _up_torch_lib _up_torch_dir _up_cpu _up_tch _up_tch_cpu
