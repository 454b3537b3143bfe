"""Accuracies of a findings suite with 95% Wilson intervals, one line per model × task × metric.

    python benchmarks/accuracy_intervals.py RESULTS_ROOT [--metric-prefix faithful_acc]

Reads every ``metrics.jsonl`` under ``RESULTS_ROOT/runs`` and prints each accuracy-type metric (value in [0, 1],
``n`` examples; ``*exact_match``, ``*substring``, ``*_acc``, ``*_acc.pdK``) with its 95% Wilson score interval
``(p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``, z = 1.959964 (Wilson 1927). Unlike ``p ± 1.96 stderr`` it
does not collapse to a point at 0 or 1, where the findings' accuracies sit. Used for the finding-2 and finding-3
figures in the README (``results/baselines/zoo-findings``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

Z95 = 1.959963984540054
ACCURACY_SUFFIXES = ("exact_match", "substring", "_acc")


def wilson(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``p`` observed in ``n`` trials."""
    if n <= 0:
        raise ValueError("n must be positive")
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    lo = 0.0 if p <= 0 else max(0.0, (centre - half) / scale)  # exactly 0 at p = 0 (rounding leaves ~1e-18)
    hi = 1.0 if p >= 1 else min(1.0, (centre + half) / scale)
    return lo, hi


def is_accuracy(metric: str) -> bool:
    base = metric.split(".pd")[0]
    return base.endswith(ACCURACY_SUFFIXES)


def rows(root: Path, prefix: str = "") -> list[tuple[str, str, str, float, int, float, float]]:
    out = []
    for f in sorted((root / "runs").glob("*/*/*/metrics.jsonl")):
        for line in f.read_text().splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            if is_accuracy(r["metric"]) and r["metric"].startswith(prefix):
                lo, hi = wilson(float(r["value"]), int(r["n"]))
                out.append((r["model"], r["task"], r["metric"], float(r["value"]), int(r["n"]), lo, hi))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--metric-prefix", default="", help="only metrics starting with this")
    args = ap.parse_args(argv)
    found = rows(args.root, args.metric_prefix)
    if not found:
        raise SystemExit(f"error: no accuracy metrics under {args.root}/runs")
    print(f"{'model':<22} {'task':<14} {'metric':<24} {'value':>6} {'n':>5}  95% Wilson")
    for model, task, metric, v, n, lo, hi in found:
        print(f"{model:<22} {task:<14} {metric:<24} {v:>6.3f} {n:>5}  [{lo:.3f}, {hi:.3f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
