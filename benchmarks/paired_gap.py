"""Paired gap between each model's NLL (or bound) and a reference model's, per token, over the same documents.

    python benchmarks/paired_gap.py RESULTS_ROOT TASK [--reference zoo-ar-kjv]

Reads the per-request rows (``examples.jsonl``: ``nll``, ``n_tokens``, ``stderr`` of a bound) of every model's run of
``TASK`` under ``RESULTS_ROOT/runs`` and prints, for each model, ``gap = (Σ nll_model − Σ nll_ref) / Σ tokens``
with its standard error: the ratio estimator over documents,
``var = n/(n−1) · Σ_i (d_i − gap · T_i)² / (Σ T)²`` with ``d_i`` the per-document difference and ``T_i`` its
tokens, plus the Monte Carlo variance of the bounds, ``Σ_i (se_model,i² + se_ref,i²) / (Σ T)²``. Pairing removes
the spread of difficulty across documents that both models share, so the gap's error is much smaller than the
two corpus stderrs combined. A diffusion model's ``nll`` is an upper bound, so its gap is an upper bound too.
Used for the finding-1 figures in the README (``results/baselines/zoo``, tasks ``kjv`` and ``python-docs``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def examples(root: Path, model: str, task: str) -> list[dict]:
    files = sorted((root / "runs" / model / task).glob("*/examples.jsonl"))
    if len(files) != 1:
        raise SystemExit(f"error: expected one run of {model} × {task} under {root}/runs, found {len(files)}")
    return [json.loads(line) for line in files[0].read_text().splitlines() if line.strip()]


def paired_gap(ref: list[dict], other: list[dict]) -> tuple[float, float, int]:
    """``(gap, stderr, n)`` of ``other`` minus ``ref`` per token (module docstring)."""
    if [r["doc_index"] for r in ref] != [r["doc_index"] for r in other]:
        raise SystemExit("error: the two runs did not score the same documents in the same order")
    if [r["n_tokens"] for r in ref] != [r["n_tokens"] for r in other]:
        raise SystemExit("error: the two runs scored different numbers of tokens (different tokenizers?)")
    n = len(ref)
    tokens = sum(r["n_tokens"] for r in ref)
    diffs = [o["nll"] - r["nll"] for r, o in zip(ref, other)]
    gap = sum(diffs) / tokens
    var = n / (n - 1) * sum((d - gap * r["n_tokens"]) ** 2 for d, r in zip(diffs, ref)) / tokens**2
    var += sum((o.get("stderr") or 0.0) ** 2 + (r.get("stderr") or 0.0) ** 2 for r, o in zip(ref, other)) / tokens**2
    return gap, math.sqrt(var), n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="results root (holds runs/)")
    ap.add_argument("task")
    ap.add_argument("--reference", default="zoo-ar-kjv", help="the model every other one is compared with")
    args = ap.parse_args()
    ref = examples(args.root, args.reference, args.task)
    models = sorted(p.name for p in (args.root / "runs").iterdir() if (p / args.task).is_dir() and p.name != args.reference)
    print(f"{'model':16s} {'task':12s} gap vs {args.reference} (nats/token)      n")
    for m in models:
        gap, se, n = paired_gap(ref, examples(args.root, m, args.task))
        print(f"{m:16s} {args.task:12s} {gap:+.3f} ± {se:.3f}                      {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
