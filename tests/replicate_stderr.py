"""Checking a reported Monte Carlo standard error against replicate runs (shared by the estimator tests).

Given ``N`` independent estimates ``m_i`` (different request seeds, same design) and the standard error
``s_i`` each run reported, the reported variance ``mean(s_i^2)`` should equal the empirical variance of the
``m_i`` (an unbiased formula) or exceed it (a conservative one). The comparison is on
``log(mean(a) / mean(b))`` with ``a_i = s_i^2`` and ``b_i = (m_i - mbar)^2 N / (N - 1)``; its standard error
comes from the same data by the delta method on the paired means,
``sd = std(a_i / abar - b_i / bbar) / sqrt(N)``, which accounts for heavy tails (the kurtosis of ``m``) and for
the correlation between a run's estimate and its reported error. Nothing here is tuned to an estimator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ReplicateCheck:
    ratio: float  # mean reported variance / empirical variance
    sd_log: float  # standard error of log(ratio)
    n: int

    def describe(self) -> str:
        return f"reported/empirical variance = {self.ratio:.3f} (sd of log ratio {self.sd_log:.3f}, N = {self.n})"


def replicate_check(means, stderrs) -> ReplicateCheck:
    m = np.asarray(means, dtype=np.float64)
    a = np.asarray(stderrs, dtype=np.float64) ** 2
    n = len(m)
    assert n >= 50 and a.shape == m.shape and np.all(np.isfinite(a))
    b = (m - m.mean()) ** 2 * n / (n - 1)
    ratio = float(a.mean() / b.mean())
    sd = float(np.std(a / a.mean() - b / b.mean(), ddof=1) / math.sqrt(n))
    return ReplicateCheck(ratio, sd, n)


def assert_stderr_matches(means, stderrs, *, conservative_up_to: float = 0.0, z: float = 4.0) -> ReplicateCheck:
    """The reported variance is not below the replicate variance (beyond ``z`` standard errors) and not above
    it by more than the factor ``1 + conservative_up_to`` (beyond ``z`` standard errors)."""
    c = replicate_check(means, stderrs)
    log_r = math.log(c.ratio)
    assert log_r > -z * c.sd_log, "reported stderr too small: " + c.describe()
    assert log_r < math.log1p(conservative_up_to) + z * c.sd_log, "reported stderr too large: " + c.describe()
    return c
