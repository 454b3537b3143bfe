"""Pure statistics for regression checks: one-sided tests in the "worse" direction and FWER control.

Orientation. Every test here is one-sided: H0 "the candidate is not worse than the baseline" against
H1 "the candidate is worse". ``worse_sign`` turns a difference ``Δ = candidate − baseline`` into a
worsening ``s·Δ``: ``s = +1`` when lower is better (perplexity, NLL, bits per byte), ``s = −1`` when
higher is better (accuracy).

Tests
- :func:`z_test_worse`: unpaired, from the two rows' standard errors,
  ``z = s·Δ / sqrt(se_b² + se_c²)``, ``p = 1 − Φ(z)``. For diffusion bounds the rows' stderr already
  includes the Monte Carlo error of the bound (dlmbench.metrics), so it is included here too.
- :func:`mcnemar_exact_worse`: paired accuracies. Only discordant pairs carry information; under H0 the
  number ``b`` of pairs the baseline got right and the candidate wrong is ``Binomial(b + c, 1/2)``
  (McNemar 1947; exact version e.g. Fagerland, Lydersen & Laake 2013, BMC Med. Res. Methodol. 13:91),
  so ``p = P(X ≥ b) = Σ_{k=b}^{n} C(n, k) / 2ⁿ`` with ``n = b + c``.
- :func:`paired_bootstrap`: paired example-level resampling of the actual metric difference
  (Efron & Tibshirani 1993, ch. 16; Koehn 2004; Berg-Kirkpatrick, Burkett & Klein 2012). The same
  resampled example set is used for both systems, the metric is recomputed on it (e.g. token-weighted
  ``exp(Σ nll / Σ tokens)``), and the p-value uses the bootstrap distribution shifted to the null,
  ``p = (1 + #{s·(Δ*_b − Δ̂) ≥ s·Δ̂}) / (B + 1)``; the matching confidence interval is the basic
  bootstrap interval ``[2Δ̂ − q_{1−a/2}, 2Δ̂ − q_{a/2}]`` (p ≤ a one-sided iff its lower one-sided
  bound excludes 0).

Multiple comparisons: :func:`holm_adjust` (Holm 1979, step-down; controls the family-wise error rate
under any dependence between the tests and is never less powerful than Bonferroni) and
:func:`bonferroni_adjust`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np


def normal_sf(z: float) -> float:
    """Upper tail of the standard normal, ``1 − Φ(z) = erfc(z/√2)/2`` (accurate in the far tail)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@dataclass(frozen=True)
class TestResult:
    """A one-sided test of "candidate worse than baseline".

    ``diff`` is ``candidate − baseline`` on the metric's own scale, ``se`` its standard error, ``p`` the
    one-sided p-value, ``ci`` a two-sided confidence interval for the difference where the test gives
    one, ``detail`` a short human-readable note (counts, number of resamples).
    """

    test: str
    diff: float
    se: float
    p: float
    ci: tuple[float, float] | None = None
    detail: str = ""


def z_test_worse(baseline: float, se_b: float, candidate: float, se_c: float, worse_sign: int) -> TestResult:
    """Unpaired z-test of ``s·(candidate − baseline) > 0`` from two independent standard errors.

    With a zero total standard error (deterministic values) the p-value is 0 for any worsening and 1
    otherwise.
    """
    _check_sign(worse_sign)
    diff = candidate - baseline
    se = math.sqrt(se_b**2 + se_c**2)
    worsening = worse_sign * diff
    if se == 0.0:
        p = 0.0 if worsening > 0 else 1.0
    else:
        p = normal_sf(worsening / se)
    return TestResult("z-test", diff, se, p, detail=f"z={worsening / se:+.2f}" if se > 0 else "se=0")


def mcnemar_exact_worse(base_correct: Sequence[bool], cand_correct: Sequence[bool], worse_sign: int = -1) -> TestResult:
    """Exact one-sided McNemar test on paired 0/1 outcomes (see module docstring).

    ``worse_sign = −1`` for accuracy (a pair is "worse" when the baseline is right and the candidate
    wrong). The p-value is computed in exact integer arithmetic: ``Σ_{k≥b} C(n, k) / 2ⁿ``.
    """
    _check_sign(worse_sign)
    b_arr = np.asarray(base_correct, dtype=bool)
    c_arr = np.asarray(cand_correct, dtype=bool)
    if b_arr.shape != c_arr.shape:
        raise ValueError("McNemar needs the same examples on both sides")
    only_base = int(np.sum(b_arr & ~c_arr))
    only_cand = int(np.sum(~b_arr & c_arr))
    worse, better = (only_base, only_cand) if worse_sign < 0 else (only_cand, only_base)
    n = worse + better
    tail = sum(math.comb(n, k) for k in range(worse, n + 1))
    p = float(Fraction(tail, 2**n)) if n > 0 else 1.0
    m = len(b_arr)
    diff = (int(c_arr.sum()) - int(b_arr.sum())) / m if m else 0.0
    # SE of a paired difference of proportions: sqrt((b + c − (b − c)²/m) / m²)
    se = math.sqrt(max(n - (only_cand - only_base) ** 2 / m, 0.0)) / m if m else float("nan")
    return TestResult("McNemar exact", diff, se, p, detail=f"discordant {worse} worse / {better} better")


Statistic = Callable[[Mapping[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class BootstrapResult:
    diff: float
    se: float
    p: float
    ci: tuple[float, float]
    n_boot: int


def paired_bootstrap(
    statistic: Statistic,
    base: Mapping[str, np.ndarray],
    cand: Mapping[str, np.ndarray],
    *,
    worse_sign: int,
    n_boot: int,
    rng: np.random.Generator,
    ci_level: float = 0.95,
    max_elements: int = 4_000_000,
) -> BootstrapResult:
    """Paired bootstrap of ``statistic(cand) − statistic(base)`` (see module docstring).

    ``statistic`` maps a dict of per-example columns to the metric, reducing over the last axis, so it
    works on 1-D columns (the point estimate) and on 2-D ``(replicates, examples)`` gathers. Both sides
    are resampled with the *same* example indices. Replicates are drawn in chunks of at most
    ``max_elements`` gathered values.
    """
    _check_sign(worse_sign)
    m = _common_length(base, cand)
    if m < 2:
        raise ValueError("paired bootstrap needs at least two examples")
    est = float(statistic(cand) - statistic(base))
    deltas = np.empty(n_boot, dtype=np.float64)
    chunk = max(1, max_elements // m)
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        idx = rng.integers(0, m, size=(size, m))
        gb = {k: v[idx] for k, v in base.items()}
        gc = {k: v[idx] for k, v in cand.items()}
        deltas[start : start + size] = statistic(gc) - statistic(gb)
    exceed = int(np.sum(worse_sign * (deltas - est) >= worse_sign * est))
    p = (1 + exceed) / (n_boot + 1)
    a = 1.0 - ci_level
    q_lo, q_hi = np.quantile(deltas, [a / 2, 1 - a / 2])
    ci = (float(2 * est - q_hi), float(2 * est - q_lo))
    return BootstrapResult(est, float(deltas.std(ddof=1)), float(p), ci, n_boot)


def holm_adjust(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values: ``p̃_(i) = max_{j ≤ i} min(1, (k − j + 1) p_(j))``.

    Rejecting every hypothesis with ``p̃ ≤ α`` is Holm's procedure (FWER ≤ α under any dependence).
    """
    k = len(pvalues)
    order = sorted(range(k), key=lambda i: pvalues[i])
    out = [1.0] * k
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (k - rank) * pvalues[i]))
        out[i] = running
    return out


def bonferroni_adjust(pvalues: Sequence[float]) -> list[float]:
    """Bonferroni adjusted p-values ``min(1, k p)``."""
    k = len(pvalues)
    return [min(1.0, k * p) for p in pvalues]


def adjust(pvalues: Sequence[float], method: str) -> list[float]:
    if method == "holm":
        return holm_adjust(pvalues)
    if method == "bonferroni":
        return bonferroni_adjust(pvalues)
    if method == "none":
        return list(pvalues)
    raise ValueError(f"unknown correction {method!r}")


def allowed_worsening(baseline: float, abs_tol: float | None, rel_tol: float | None) -> float:
    """The largest worsening that is tolerated: ``max(abs_tol, rel_tol · |baseline|)`` (0 without either)."""
    a = float(abs_tol) if abs_tol is not None else 0.0
    r = float(rel_tol) * abs(baseline) if rel_tol is not None else 0.0
    return max(a, r, 0.0)


def _check_sign(s: int) -> None:
    if s not in (1, -1):
        raise ValueError(f"worse_sign must be +1 or -1, not {s!r}")


def _common_length(*sides: Mapping[str, np.ndarray]) -> int:
    lengths = {len(v) for side in sides for v in side.values()}
    if len(lengths) != 1:
        raise ValueError(f"paired columns have different lengths {sorted(lengths)}")
    return lengths.pop()
