"""Metrics against closed forms and against simulation (the delta-method SE is checked empirically)."""

import math

import numpy as np
import pytest

from dlmbench import metrics


def test_perplexity_is_token_weighted_closed_form():
    nll = np.array([2.0, 9.0])
    ntok = np.array([1, 3])
    # exp((2 + 9) / 4), not the mean of exp(2/1) and exp(9/3)
    assert metrics.perplexity(nll, ntok).value == pytest.approx(math.exp(11 / 4))
    assert metrics.per_token_nll(nll, ntok).value == pytest.approx(11 / 4)


def test_bits_per_byte_and_word_perplexity():
    nll = np.array([math.log(2) * 8, math.log(2) * 8])
    assert metrics.bits_per_byte(nll, np.array([4, 4])).value == pytest.approx(2.0)
    assert metrics.word_perplexity(np.array([3.0, 3.0]), np.array([2, 1])).value == pytest.approx(math.exp(2.0))


def test_accuracy_stderr_matches_binomial_formula():
    correct = np.array([1, 0, 1, 1, 0, 1, 1, 1])
    p = correct.mean()
    m = len(correct)
    est = metrics.accuracy(correct)
    assert est.value == pytest.approx(p)
    # sample std (ddof=1) / sqrt(m) == sqrt(p(1-p) / (m-1)) for 0/1 data
    assert est.stderr == pytest.approx(math.sqrt(p * (1 - p) / (m - 1)))


def test_ratio_stderr_matches_spread_over_simulated_corpora():
    """The delta-method SE predicts the actual spread of R = Σy/Σx across independent corpora."""
    rng = np.random.default_rng(0)
    m = 200
    estimates, predicted = [], []
    for _ in range(2000):
        x = rng.integers(5, 60, size=m).astype(float)
        y = x * rng.gamma(4.0, 0.75, size=m)  # per-token nll with mean 3, heteroscedastic
        e = metrics.ratio_estimate(y, x)
        estimates.append(e.value)
        predicted.append(e.stderr)
    empirical = np.std(estimates, ddof=1)
    assert np.mean(predicted) == pytest.approx(empirical, rel=0.08)


def test_exp_propagation_matches_simulation():
    rng = np.random.default_rng(1)
    vals, ses = [], []
    for _ in range(3000):
        nll = rng.normal(2.0, 1.0, size=400)
        e = metrics.example_perplexity(nll)
        vals.append(e.value)
        ses.append(e.stderr)
    assert np.mean(ses) == pytest.approx(np.std(vals, ddof=1), rel=0.08)


def test_single_request_has_nan_stderr_and_empty_input_raises():
    assert math.isnan(metrics.ratio_estimate(np.array([1.0]), np.array([2.0])).stderr)
    with pytest.raises(ValueError):
        metrics.ratio_estimate(np.array([]), np.array([]))
