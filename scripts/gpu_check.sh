#!/usr/bin/env bash
# One prepared GPU check (scripts/gpu_check.py): CPU-vs-CUDA agreement of a step and of every probe, resume after
# an interruption, peak memory at colab and paper sizes against a 15 GB T4, the estimate against timed steps, and
# the benchmark. Everything goes under $OUT (default: a new temporary folder), with $OUT/summary.txt as the summary.
#
#   bash scripts/gpu_check.sh             # on a machine with a GPU: ~8 min budget (GPU_CHECK_BUDGET seconds)
#   bash scripts/gpu_check.sh --dry-run   # CPU for both devices, smoke sizes: seconds (CI runs it)
#
# Exit status: 0 when no section failed, 1 when one did, 2 without a GPU (and no --dry-run), 124 past the budget.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
dry=""
args=()
for a in "$@"; do
    case "$a" in
        --dry-run) dry=1; args+=("$a") ;;
        *) args+=("$a") ;;
    esac
done
OUT="${OUT:-$(mktemp -d)}"
export OUT
mkdir -p "$OUT"
if [[ -n "$dry" ]]; then
    budget="${GPU_CHECK_BUDGET:-50}"
    export BNLAB_DEVICE=cpu
else
    budget="${GPU_CHECK_BUDGET:-480}"
fi
python="${PYTHON:-$root/.venv/bin/python}"
[[ -x "$python" ]] || python="$(command -v python3)"
export BNLAB_PROGRESS=0 BNLAB_HOME="$OUT/bnlab_home"
export CUBLAS_WORKSPACE_CONFIG="${CUBLAS_WORKSPACE_CONFIG:-:4096:8}"   # lets the deterministic resume check run cuBLAS
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"   # bnlab from this checkout where it is not installed
# a hard limit a little past the script's own budget (its sections stop starting when the budget is spent)
cd "$root"
status=0
timeout --signal=TERM --kill-after=10 "$((budget + 30))" \
    "$python" "$here/gpu_check.py" --out "$OUT" --budget "$budget" "${args[@]}" || status=$?
echo "gpu_check: exit $status; summary in $OUT/summary.txt" >&2
cat "$OUT/summary.txt" 2>/dev/null || true
exit "$status"
