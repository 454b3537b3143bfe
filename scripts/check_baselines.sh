#!/usr/bin/env bash
# Reruns every suite behind a committed baseline and compares it with `dlmbench regress` (exit 0 = no number
# moved beyond its noise and every row matched). Used before a refactor lands ("no number may move").
# Usage: bash scripts/check_baselines.sh [OUT_DIR]      (default: a fresh temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
DLM=${DLMBENCH:-.venv/bin/dlmbench}
OUT=${1:-$(mktemp -d -t dlmbench-baselines-XXXX)}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
status=0
check() {  # check BASELINE SUITE_NAME...
  local name=$1; shift
  for suite in "$@"; do
    echo "== $name: running $suite" >&2
    "$DLM" run --suite "$suite" --out "$OUT/$name" --progress off >/dev/null
  done
  echo "== $name: dlmbench regress" >&2
  if "$DLM" regress --baseline "results/baselines/$name" --candidate "$OUT/$name"; then
    echo "== $name: OK" >&2
  else
    echo "== $name: FAILED" >&2; status=1
  fi
}
check zoo-smoke zoo-smoke
check zoo zoo zoo-ood
check zoo-findings zoo-findings-cd3 zoo-findings-reversal
check zoo-speed-quality zoo-speed-quality
echo "candidates under $OUT" >&2
exit $status
