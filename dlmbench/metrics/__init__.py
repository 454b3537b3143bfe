"""Aggregation of per-request values into metrics with standard errors (pure functions).

Conventions (docs/architecture.md): perplexity is token-weighted over the corpus, ``exp(Σ nll_i / Σ n_i)``; bits per
byte ``Σ nll_i / (ln 2 · Σ bytes_i)`` so models with different tokenizers compare fairly; word perplexity
``exp(Σ nll_i / Σ words_i)`` (lm-eval's ``word_perplexity``).

Standard errors treat the m requests as an i.i.d. sample. A corpus-level rate ``R = Σ y_i / Σ x_i`` is a
ratio estimator; its delta-method (linearisation) standard error is

    SE(R) = sqrt( Σ (y_i − R x_i)² / (m (m − 1)) ) / x̄,

(Cochran, *Sampling Techniques*, §6.4). For diffusion bounds the y_i are Monte Carlo estimates, so their
MC noise is part of the spread and is included. ``exp`` is propagated with the delta method again:
``SE(exp R) = exp(R) · SE(R)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LN2 = math.log(2.0)


@dataclass(frozen=True)
class Estimate:
    """A value with its standard error and the number of units it was computed from."""

    value: float
    stderr: float
    n: int


def ratio_estimate(y: np.ndarray, x: np.ndarray) -> Estimate:
    """``R = Σy / Σx`` with the delta-method standard error above (NaN when m < 2)."""
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    m = len(y)
    if m == 0 or x.sum() <= 0:
        raise ValueError("ratio_estimate needs at least one request with a positive denominator")
    r = y.sum() / x.sum()
    if m < 2:
        return Estimate(float(r), float("nan"), m)
    resid = y - r * x
    se = math.sqrt(float((resid**2).sum()) / (m * (m - 1))) / float(x.mean())
    return Estimate(float(r), se, m)


def mean_estimate(values: np.ndarray) -> Estimate:
    """Sample mean with ``SE = s / sqrt(m)`` (``s`` with ddof 1, as lm-eval's ``mean_stderr``)."""
    v = np.asarray(values, dtype=np.float64)
    m = len(v)
    if m == 0:
        raise ValueError("mean of no values")
    se = float(v.std(ddof=1) / math.sqrt(m)) if m > 1 else float("nan")
    return Estimate(float(v.mean()), se, m)


def exp_estimate(e: Estimate) -> Estimate:
    """``exp`` of an estimate, delta method: ``SE(exp R) = exp(R) SE(R)``."""
    v = math.exp(e.value)
    return Estimate(v, v * e.stderr, e.n)


def per_token_nll(nll: np.ndarray, n_tokens: np.ndarray) -> Estimate:
    """Token-weighted mean NLL in nats per token."""
    return ratio_estimate(nll, n_tokens)


def perplexity(nll: np.ndarray, n_tokens: np.ndarray) -> Estimate:
    """Token-weighted corpus perplexity ``exp(Σ nll / Σ tokens)``."""
    return exp_estimate(per_token_nll(nll, n_tokens))


def bits_per_byte(nll: np.ndarray, n_bytes: np.ndarray) -> Estimate:
    """``Σ nll / (ln 2 · Σ bytes)`` (lm-eval ``bits_per_byte``)."""
    e = ratio_estimate(nll, n_bytes)
    return Estimate(e.value / LN2, e.stderr / LN2, e.n)


def word_perplexity(nll: np.ndarray, n_words: np.ndarray) -> Estimate:
    """``exp(Σ nll / Σ words)`` (lm-eval ``word_perplexity``)."""
    return exp_estimate(ratio_estimate(nll, n_words))


def accuracy(correct: np.ndarray) -> Estimate:
    """Fraction correct with ``SE = s / sqrt(m)`` (sample std, ddof 1)."""
    return mean_estimate(np.asarray(correct, dtype=np.float64))


def example_perplexity(nll: np.ndarray) -> Estimate:
    """lm-eval's LAMBADA ``perplexity``: ``exp(mean_i nll_i)`` over examples (not token-weighted)."""
    return exp_estimate(mean_estimate(nll))
