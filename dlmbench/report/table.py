"""Plain-text tables of tidy rows for the terminal: bounds shown with ``≤``, values with ± stderr."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any


def bound_marker(bound: str, higher_is_better: bool = False) -> str:
    """``"≤ "`` for a quantity bounded above by a likelihood bound (perplexity, NLL, bits per byte from an NLL
    upper bound), ``"≥ "`` for one bounded below by it (a log-probability = −(NLL upper bound), where higher is
    better), ``""`` for exact values."""
    if bound != "upper":
        return ""
    return "≥ " if higher_is_better else "≤ "


def format_value(value: float | None, stderr: float | None, bound: str, higher_is_better: bool = False) -> str:
    """``≤ 12.34 ± 0.56`` for upper bounds (``≥`` for log-probabilities from them), ``12.34 ± 0.56`` for
    exact values (4 significant digits)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:.4g}" if abs(value) < 1e5 else f"{value:.4e}"
    if stderr is not None and not (isinstance(stderr, float) and math.isnan(stderr)):
        text += f" ± {stderr:.2g}"
    return bound_marker(bound, higher_is_better) + text


def render(rows: Iterable[dict[str, Any]], columns: Sequence[str] = ("model", "task", "metric", "value", "n", "bound")) -> str:
    """A fixed-width table; the ``value`` column combines value, stderr and the bound marker."""
    body = []
    for r in rows:
        line = []
        for c in columns:
            if c == "value":
                line.append(format_value(r.get("value"), r.get("stderr"), r.get("bound", "exact"), bool(r.get("higher_is_better"))))
            else:
                v = r.get(c, "")
                line.append("" if v is None else str(v))
        body.append(line)
    headers = [c if c != "value" else "value ± stderr" for c in columns]
    widths = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*headers), fmt.format(*["-" * w for w in widths])]
    out += [fmt.format(*b) for b in body]
    return "\n".join(out)
