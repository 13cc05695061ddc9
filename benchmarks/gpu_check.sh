#!/usr/bin/env bash
# The prepared GPU check (benchmarks/gpu_check.py says what each step runs and checks).
#
#   benchmarks/gpu_check.sh             # CUDA visible: every GPU path for real (under 8 minutes, one GPU)
#   benchmarks/gpu_check.sh --dry-run   # the wiring on the CPU (the default where torch sees no CUDA)
#
# Prints one "PASS|FAIL <step>: <figures>" line per step and exits 1 when any step failed. No network:
# every model is built from a config and cached under a temporary folder. PYTHON picks the interpreter
# (default: the venv's beside the repository, else python3 on the PATH).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"; else python="python3"; fi
fi

for needed in "$here/gpu_check.py" "$here/throughput.py"; do
    if [[ ! -f "$needed" ]]; then
        echo "FAIL wiring: $needed is missing" >&2
        exit 1
    fi
done

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" "$here/gpu_check.py" "$@"
