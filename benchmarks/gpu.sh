#!/usr/bin/env bash
# The GPU figures of issue 17 in one run (see benchmarks/gpu.py for what each part measures):
#   benchmarks/gpu.sh [--device cuda] [--tiny] [--parts abcde]
# parts a-d: about 5-8 minutes on one NVIDIA H200 (an estimate: not yet run there); part e trains
# ResNet-18 for 200 epochs on CIFAR-10 and probes it (not yet run on a GPU: its time is what it
# measures; --parts abcd leaves it out); with --tiny --device cpu, about a minute on two CPU cores.
#
# Variables: DATA_DIR, the folder holding mnist/, cifar10/ and cifar100/ (default: ../shared/data
# beside the repository; part e is skipped without the CIFAR folders);
# PYTHON (default: the active virtual environment's python, else python3); WHEELS, a folder of
# wheels to install into the scratch folder first, for an interpreter that lacks some of the
# project's dependencies (pyod, tomli-w, pooch, platformdirs on the H200 image); OUT, where set,
# receives the log, gpu.log. Everything else written (links to the data, the generated MNIST-C,
# run results, caches) goes to a temporary folder removed at the end. Exits non-zero if a part fails.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_DIR="${DATA_DIR:-$REPO/../shared/data}"
if [[ -n "${VIRTUAL_ENV:-}" && -x "$VIRTUAL_ENV/bin/python" ]]; then
    PYTHON="${PYTHON:-$VIRTUAL_ENV/bin/python}"
else
    PYTHON="${PYTHON:-python3}"
fi
DEVICE=cuda
ARGS=("$@")
for ((i = 0; i < ${#ARGS[@]}; i++)); do
    case "${ARGS[i]}" in
        --device) DEVICE="${ARGS[i + 1]:-}" ;;
        --device=*) DEVICE="${ARGS[i]#--device=}" ;;
    esac
done

SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/bench-gpu.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT
export TMPDIR="$SCRATCH" MPLCONFIGDIR="$SCRATCH/matplotlib" XDG_CACHE_HOME="$SCRATCH/cache" \
       CUDA_CACHE_PATH="$SCRATCH/cuda-cache" PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
mkdir -p "$SCRATCH/python"

run() {
    echo "repository: $REPO; python: $PYTHON; data: $DATA_DIR"
    if [[ "$DEVICE" == cuda* ]]; then
        nvidia-smi --query-gpu=name,memory.total --format=csv  # fails the script where there is no GPU
    elif command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi --query-gpu=name,memory.total --format=csv || true
    else
        echo "nvidia-smi: not found (device $DEVICE)"
    fi
    if [[ -n "${WHEELS:-}" ]]; then
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SCRATCH/site" "$WHEELS"/*.whl
        export PYTHONPATH="$SCRATCH/site${PYTHONPATH:+:$PYTHONPATH}"
    fi
    if [[ "$DEVICE" == cuda* ]]; then
        "$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA GPU'; print('torch.cuda.get_device_name:', torch.cuda.get_device_name())"
    fi
    cd "$REPO"
    "$PYTHON" -m benchmarks.gpu --data-dir "$DATA_DIR" --scratch "$SCRATCH/python" "$@"
}

if [[ -n "${OUT:-}" ]]; then
    run "$@" 2>&1 | tee "$OUT/gpu.log"
else
    run "$@"
fi
