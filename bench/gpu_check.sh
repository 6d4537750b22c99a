#!/usr/bin/env bash
# The GPU check (<= 4 minutes, re-runnable): on a machine with a CUDA GPU, its own Python (3.12) with torch,
# Lightning, onnx and onnxruntime, and no network. Installs the rest of hwnas's dependencies offline from
# .gpu-wheels/ (made beforehand with `make gpu-wheels`, carried with the repo) into .gpu-venv/, a venv on
# top of the system's packages, then prints a table (bench/gpu_check.py): a tiny search with mixed
# precision on the GPU, supernet training steps/s, the data rate, checkpoint save/resume; rows that need
# two GPUs print "skipped: 1 GPU".
#
#   make gpu-wheels                  # here, with PyPI access (48 MB of py3.12 wheels; never torch)
#   bash bench/gpu_check.sh          # there (GPU_CHECK_PYTHON=/path/to/python3 to pick the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${GPU_CHECK_PYTHON:-python3}"
WHEELS="${GPU_WHEELS:-.gpu-wheels}"
VENV="${GPU_VENV:-.gpu-venv}"

# 1. Refuse clearly, and at once, where there is no CUDA GPU.
if ! "$PY" - <<'EOF'
import sys
try:
    import torch
except ImportError as exc:
    sys.exit(f"gpu_check: needs torch with CUDA in {sys.executable} ({exc}); set GPU_CHECK_PYTHON")
if not torch.cuda.is_available():
    sys.exit(f"gpu_check: needs a CUDA GPU: torch.cuda.is_available() is False (torch {torch.__version__}, "
             f"built for CUDA {torch.version.cuda}); run it on the GPU machine")
EOF
then
    exit 2
fi

# 2. A venv on top of the system's packages: hwnas from src/ (a .pth line, after the standard library, so
#    src/profile.py never shadows the stdlib's profile), the missing dependencies from the wheels, offline.
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv --system-site-packages "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -c "import site, sys; open(site.getsitepackages()[0] + '/hwnas-src.pth', 'w').write(sys.argv[1] + '\n')" "$PWD/src"
if ! "$PY" -c "import hydra, optuna, pandas, matplotlib, networkx, torchmetrics" 2>/dev/null; then
    if [ ! -d "$WHEELS" ]; then
        echo "gpu_check: hydra/optuna missing and no $WHEELS/: run \`make gpu-wheels\` where PyPI is reachable" \
             "and carry $WHEELS/ here" >&2
        exit 2
    fi
    # what this Python lacks, from the wheel folder; what the system has is kept
    "$PY" -m pip install -q --no-index --find-links "$WHEELS" \
        hydra-core omegaconf optuna pandas matplotlib networkx markdown torchmetrics onnxscript
fi
export WANDB_MODE=disabled PYTHONUNBUFFERED=1
exec timeout 230 "$PY" bench/gpu_check.py "$@"
