"""What a task returns: metric values with their stderr and bound, plus per-request values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
