"""Reversal-curse scoring of one completion against its target (Berglund et al., 2023, arXiv 2309.12288).

- :func:`exact_match` -- Berglund et al. (lukasberglund/reversal_curse ``src/tasks/base_evaluator.py``,
  ``evaluate_completion``): ``completion.strip().lower().startswith(target.strip().lower())``; i.e. a
  case-insensitive *prefix* match, so ``" Daphne Barrington, the director"`` matches ``" Daphne Barrington"``.
- :func:`substring_match` -- SMDM ``evaluate_reverse.py``:
  ``target.strip().lower() in completion.strip().lower()``; with ``normalize=False`` it is LLaDA's
  ``eval_reverse.py`` check ``answer in output`` (case- and whitespace-sensitive).
- :func:`accuracy` -- mean of 0/1 outcomes with its binomial standard error ``sqrt(p(1-p)/n)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def exact_match(completion: str, target: str, *, case_sensitive: bool = False) -> bool:
    """Berglund et al.'s exact match: the stripped completion starts with the stripped target."""
    c, t = completion.strip(), target.strip()
    if not case_sensitive:
        c, t = c.lower(), t.lower()
    return c.startswith(t)


def substring_match(completion: str, target: str, *, normalize: bool = True) -> bool:
    """SMDM's substring accuracy (``normalize=True``: strip + lower both); LLaDA's with ``normalize=False``."""
    if normalize:
        return target.strip().lower() in completion.strip().lower()
    return target in completion


@dataclass(frozen=True)
class Accuracy:
    """A proportion with its binomial standard error."""

    value: float
    stderr: float
    n: int


def accuracy(outcomes: Iterable[bool]) -> Accuracy:
    """Mean of boolean outcomes and ``sqrt(p (1 - p) / n)``."""
    xs = [bool(x) for x in outcomes]
    n = len(xs)
    if n == 0:
        raise ValueError("accuracy of zero outcomes is undefined")
    p = sum(xs) / n
    return Accuracy(value=p, stderr=math.sqrt(p * (1.0 - p) / n), n=n)


@dataclass(frozen=True)
class ReversalScores:
    """Both string metrics over one set of (completion, target) pairs."""

    exact_match: Accuracy
    substring: Accuracy


def score_completions(completions: Sequence[str], targets: Sequence[str]) -> ReversalScores:
    """Exact-match (Berglund prefix) and substring (SMDM) accuracy of paired completions/targets."""
    if len(completions) != len(targets):
        raise ValueError(f"{len(completions)} completions but {len(targets)} targets")
    return ReversalScores(
        exact_match=accuracy(exact_match(c, t) for c, t in zip(completions, targets)),
        substring=accuracy(substring_match(c, t) for c, t in zip(completions, targets)),
    )
