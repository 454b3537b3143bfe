"""What a task returns: metric values with their stderr and bound, plus per-request values."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

from dlmbench.errors import NonFiniteResult

BOUNDS = ("exact", "upper")


@dataclass(frozen=True)
class MetricValue:
    """One metric of one run, before provenance is attached (see :class:`dlmbench.store.MetricRow`).

    ``bound`` is ``upper`` when ``value`` is computed from an upper bound on the NLL (so a perplexity is
    an upper bound, shown with ``≤``), ``exact`` otherwise.
    """

    metric: str
    value: float
    stderr: float | None
    n: int
    bound: str
    higher_is_better: bool
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskOutput:
    metrics: list[MetricValue]
    examples: list[dict[str, Any]]
    settings: dict[str, Any]
    dataset: str
    split: str | None


def _non_finite(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and not math.isfinite(float(value))


def _first_non_finite(value: Any, path: str) -> str | None:
    """The path (``['nll']``, ``['scores'][2]``) of the first NaN or infinite number inside ``value``, or None."""
    if _non_finite(value):
        return path
    if isinstance(value, dict):
        items = ((f"{path}[{k!r}]", v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    elif hasattr(value, "tolist") and hasattr(value, "dtype"):  # a numpy or torch array
        return _first_non_finite(value.tolist(), path)
    else:
        return None
    for where, v in items:
        found = _first_non_finite(v, where)
        if found is not None:
            return found
    return None


def require_finite_output(output: TaskOutput, what: str) -> TaskOutput:
    """Return ``output`` if every number it would write is finite, else raise
    :class:`~dlmbench.errors.NonFiniteResult` naming where the first bad number appeared.

    Guarantee (docs/architecture.md, Conventions: a non-finite number is a failure, never a result): every metric
    ``value``, every ``stderr`` and every number anywhere in a per-request record (``examples.jsonl``) is finite,
    and every ``bound`` is ``exact`` or ``upper``. The one allowed exception is a ``stderr`` that is undefined
    because fewer than two units were scored (``n < 2``); the row records it as ``null``. The runner calls this
    where rows and examples are built (:func:`dlmbench.runner.execute.execute`), so no finished run can hold
    a NaN or infinite number.
    """
    for m in output.metrics:
        if m.value is None or _non_finite(m.value):
            raise NonFiniteResult(f"{what}: metric {m.metric!r} has value {m.value} (n={m.n}); a non-finite number is never a result")
        if m.stderr is not None and _non_finite(m.stderr) and m.n >= 2:
            raise NonFiniteResult(f"{what}: metric {m.metric!r} has stderr {m.stderr} over n={m.n} units; a non-finite number is never a result")
        if m.bound not in BOUNDS:
            raise NonFiniteResult(f"{what}: metric {m.metric!r} has bound {m.bound!r}, not one of {', '.join(BOUNDS)}")
    for i, example in enumerate(output.examples):
        where = _first_non_finite(example, "")
        if where is not None:
            raise NonFiniteResult(
                f"{what}: examples.jsonl item {i}, field {where}, is NaN or infinite; a non-finite number is never a result"
            )
    return output
