"""Variance reduction of the masked-diffusion bounds and standard errors that match the design.

Ground truths written here, independently of :mod:`dlmbench.diffusion.montecarlo` / ``timesteps``:
- the collapsed-strata variance estimator, from its definition (explicit groups, loops), and its exact
  expectation for Gaussian draws with known stratum means and variances;
- the exact distribution of the LLaDA mask counts per draw, from a grid of uniforms fine enough that every
  grid cell maps to one count (so frequencies are exact probabilities);
- the LLaDA reference's counts, computed with the reference's own formula (``torch.round(torch.linspace(...))``);
- replicate runs: the empirical variance of many independent estimates vs the reported standard error
  (``tests/replicate_stderr.py``), on the exact oracle of a Markov chain (``test_estimators_masked``).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dlmbench.diffusion.masked import llada_bound_mc, mdlm_nelbo_mc
from dlmbench.diffusion.montecarlo import collapsed_strata_variance, iid_variance, mc_stderr
from dlmbench.diffusion.schedules import LogLinearNoise
from dlmbench.diffusion.timesteps import mask_counts_from_uniforms, stratified_mask_counts

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from replicate_stderr import assert_stderr_matches, replicate_check  # noqa: E402
from test_estimators_masked import MASK, SCORE, X0, MarkovOracle, TinyNet, exact_llada, markov_sample  # noqa: E402

F64 = torch.float64


# ------------------------------------------------------------------------------------------------
# The collapsed-strata estimator


def _collapsed_by_definition(y: np.ndarray) -> float:
    """Cochran's collapsed strata for K equal-weight strata with one draw each: groups (0,1), (2,3), ...; when
    K is odd the last group has three strata. v = (1/K^2) sum_g G/(G-1) sum_{k in g} (y_k - ybar_g)^2."""
    k = len(y)
    groups = [[i, i + 1] for i in range(0, k - 1, 2)]
    if k % 2:
        groups[-1].append(k - 1)
    total = 0.0
    for g in groups:
        vals = [float(y[i]) for i in g]
        mean = sum(vals) / len(vals)
        total += len(g) / (len(g) - 1) * sum((v - mean) ** 2 for v in vals)
    return total / k**2


@pytest.mark.parametrize("k", [2, 3, 4, 5, 7, 32])
def test_collapsed_strata_matches_its_definition(k):
    y = np.random.default_rng(k).normal(size=(3, k)) * np.arange(1, k + 1)
    got = collapsed_strata_variance(y)
    for r in range(3):
        assert got[r] == pytest.approx(_collapsed_by_definition(y[r]), rel=1e-12)
    assert np.allclose(mc_stderr(y, "antithetic") ** 2, got) and np.allclose(mc_stderr(y, "stratified") ** 2, got)
    assert np.allclose(mc_stderr(y, "iid") ** 2, y.var(axis=1, ddof=1) / k)
    assert np.allclose(mc_stderr(y, "systematic") ** 2, iid_variance(y))
    assert np.isnan(collapsed_strata_variance(y[:, :1])).all() and np.isnan(iid_variance(y[:, :1])).all()


@pytest.mark.parametrize("k", [6, 7])
def test_collapsed_strata_is_conservative_by_the_spread_of_neighbouring_means(k):
    """Gaussian draws y_k ~ N(mu_k, s_k^2): Var(mean) = sum s_k^2 / K^2 and, from the definition,
    E[v] = Var + (1/K^2) sum_g G/(G-1) sum_{k in g} (mu_k - mubar_g)^2. The simulated mean of v matches it."""
    rng = np.random.default_rng(0)
    mu = np.sin(np.arange(k)) * 2.0
    s = 0.5 + np.arange(k) / k
    n = 200_000
    y = mu + s * rng.normal(size=(n, k))
    v = collapsed_strata_variance(y)
    var = float((s**2).sum() / k**2)
    exact_ev = var + _collapsed_by_definition(mu)  # the definition applied to the means is the bias term
    assert exact_ev >= var
    assert abs(v.mean() - exact_ev) < 4 * v.std() / math.sqrt(n)
    assert abs(y.mean(axis=1).var() - var) < 0.02 * var  # and var is the variance of the stratified mean


# ------------------------------------------------------------------------------------------------
# LLaDA mask counts


def _exact_count_probs(total: int, k_all: int, scheme: str) -> np.ndarray:
    """P(l_k = l) for every draw k, [K, total], from a midpoint grid of M uniforms per draw. M is a multiple of
    total * K, so every grid cell lies inside one count's interval and frequencies are the exact probabilities."""
    m = 4 * total * k_all
    u = (torch.arange(m, dtype=F64) + 0.5) / m
    # every draw gets the grid (systematic reads draw 0's uniform only: its grid shifted by k/K, the same grid)
    counts = mask_counts_from_uniforms(total, u[:, None].expand(m, k_all).clone(), scheme)  # [M, K]
    out = np.zeros((k_all, total))
    for k in range(k_all):
        out[k] = np.bincount(counts[:, k].numpy() - 1, minlength=total) / m
    return out


@pytest.mark.parametrize("total,k_all", [(5, 8), (3, 2), (7, 7), (4, 16), (16, 32), (30, 32), (40, 8)])
def test_mask_counts_are_uniform_over_the_draws(total, k_all):
    for scheme in ("iid", "systematic"):  # every draw's count is uniform on 1..total
        np.testing.assert_allclose(_exact_count_probs(total, k_all, scheme), 1.0 / total, rtol=0, atol=1e-12)
    probs = _exact_count_probs(total, k_all, "stratified")
    np.testing.assert_allclose(probs.mean(axis=0), 1.0 / total, rtol=0, atol=1e-12)  # uniform on average
    # stratified: draw k only reaches the counts its stratum [k/K, (k+1)/K) covers
    for k in range(k_all):
        lo, hi = math.floor(k * total / k_all) + 1, math.ceil((k + 1) * total / k_all)
        support = np.nonzero(probs[k])[0] + 1
        assert support.min() >= lo and support.max() <= hi, (k, support, lo, hi)


def test_llada_reference_rounding_skews_the_counts_and_ours_does_not():
    """The reference (ML-GSAI/LLaDA get_log_likelihood.py:forward_process):
    l = round(linspace(k, k + (B-1) T/B, B)); l = (l-1) % T + 1 with k uniform on 1..T. torch.round ties go to
    the even neighbour, so with T = 16, B = 32 every odd row only masks an even number of tokens and, over the
    batch, an even count has three times the weight of an odd one. The floor version is exactly uniform."""
    total, b = 16, 32
    ref = np.zeros((b, total))
    for k in range(1, total + 1):
        x = torch.round(torch.linspace(float(k), k + (b - 1) * (total / b), steps=b)).long()
        x = ((x - 1) % total) + 1
        ref[np.arange(b), x.numpy() - 1] += 1.0 / total
    weights = ref.mean(axis=0)
    assert np.allclose(weights[1::2], 1.5 / total) and np.allclose(weights[0::2], 0.5 / total)  # counts 2,4,.. / 1,3,..
    assert np.all(ref[1::2, 0::2] == 0)  # odd rows never mask an odd number of tokens
    ours = np.zeros((b, total))
    for offset in range(total):
        ours[np.arange(b), stratified_mask_counts(total, b, offset).numpy() - 1] += 1.0 / total
    np.testing.assert_allclose(ours, 1.0 / total, atol=1e-12)


@pytest.mark.parametrize("scheme", ["iid", "stratified", "systematic"])
def test_llada_mc_is_unbiased_for_every_scheme(scheme):
    net = TinyNet(7, time_dependent=False)
    est = llada_bound_mc(net, X0, SCORE, [31, 32, 33], mask_id=MASK, num_samples=1200, time_sampling=scheme, batch_size=4096)
    assert est.settings["time_sampling"] == scheme
    assert est.settings["stderr"] == ("collapsed_strata" if scheme == "stratified" else "iid")
    for r in range(len(X0)):
        exact = exact_llada(net, X0[r], SCORE[r])
        assert abs(est.mean[r] - exact) < 4 * est.stderr[r], (r, est.mean[r], exact, est.stderr[r])


def test_llada_draws_do_not_depend_on_batching_or_neighbours():
    net = TinyNet(8, time_dependent=False)
    together = llada_bound_mc(net, X0, SCORE, [5, 6, 7], mask_id=MASK, num_samples=6, batch_size=4)
    alone = llada_bound_mc(net, X0[2:], SCORE[2:], [7], mask_id=MASK, num_samples=6, batch_size=1)
    np.testing.assert_allclose(together.draws[2], alone.draws[0], rtol=1e-12, atol=0)


# ------------------------------------------------------------------------------------------------
# Reported standard error vs replicate runs (Markov-chain oracle: the loss depends strongly on t, as for text)


N_REPLICATES = 400


def _markov_case(n: int = 32):
    oracle = MarkovOracle(n)
    x = markov_sample(n, 6)
    return oracle, x.repeat(N_REPLICATES, 1), torch.ones(N_REPLICATES, n, dtype=torch.bool)


@pytest.mark.parametrize("scheme", ["antithetic", "iid"])
def test_mdlm_stderr_matches_replicate_runs(scheme):
    """K = 32 draws (the cards' mc_samples). Antithetic: the collapsed-strata error is right (conservative only by
    the spread of neighbouring strata's means, which at 32 strata is small: allowed up to +25%) and clearly tighter
    than the i.i.d. formula applied to the same draws, which ignores the stratification. iid: the i.i.d. formula
    is unbiased."""
    oracle, x0, sm = _markov_case()
    est = mdlm_nelbo_mc(oracle, x0, sm, list(range(N_REPLICATES)), mask_id=MASK, schedule=LogLinearNoise(1e-3),
                        num_samples=32, time_sampling=scheme, batch_size=8192)
    assert est.settings["stderr"] == ("collapsed_strata" if scheme == "antithetic" else "iid")
    check = assert_stderr_matches(est.mean, est.stderr, conservative_up_to=0.25 if scheme == "antithetic" else 0.0)
    if scheme == "antithetic":
        naive = replicate_check(est.mean, np.sqrt(iid_variance(est.draws)))
        assert naive.ratio > check.ratio * math.exp(4 * math.hypot(naive.sd_log, check.sd_log)), (naive, check)


@pytest.mark.parametrize("scheme", ["stratified", "systematic"])
def test_llada_stderr_matches_replicate_runs(scheme):
    """K = 32. stratified: collapsed strata (conservative, up to +25%); systematic: the i.i.d. formula, which for
    this smooth integrand overestimates (allowed up to 5x) and must never be below the replicate variance."""
    oracle, x0, sm = _markov_case()
    est = llada_bound_mc(oracle, x0, sm, list(range(N_REPLICATES)), mask_id=MASK, num_samples=32,
                         time_sampling=scheme, batch_size=8192)
    assert_stderr_matches(est.mean, est.stderr, conservative_up_to=0.25 if scheme == "stratified" else 4.0)


# ------------------------------------------------------------------------------------------------
# MDLM NELBO with t integrated out (time-agnostic denoisers)


@pytest.mark.parametrize("total", [1, 4, 37, 1024])
@pytest.mark.parametrize("noise_eps,sampling_eps", [(0.0, 0.0), (1e-3, 1e-3), (1e-3, 0.0), (0.0, 1e-3)])
def test_count_weights_equal_the_incomplete_beta_closed_form(total, noise_eps, sampling_eps):
    """Log-linear schedule: w(t) = 1/t, p(t) = (1 - e) t, so with s = (1 - e) t
    c_n = C(T, n) (1/(1 - eps)) int_eps^1 (1 - e)^n t^(n-1) (1 - (1 - e) t)^(T-n) dt
        = (1/n) [I_{1-e}(n, T-n+1) - I_{(1-e) eps}(n, T-n+1)] / (1 - eps)    (regularised incomplete beta)."""
    from scipy.special import betainc

    from dlmbench.diffusion.masked import nelbo_count_weights

    c = nelbo_count_weights(total, LogLinearNoise(noise_eps), sampling_eps).numpy()[1:]
    n = np.arange(1, total + 1)
    ref = (betainc(n, total - n + 1, 1 - noise_eps) - betainc(n, total - n + 1, (1 - noise_eps) * sampling_eps)) / n
    np.testing.assert_allclose(c, ref / (1 - sampling_eps), rtol=1e-9)


@pytest.mark.parametrize("scheme", ["antithetic", "iid", "systematic"])
@pytest.mark.parametrize("eps", [1e-3, 0.0])
def test_integrated_nelbo_is_unbiased_against_enumeration(scheme, eps):
    """Time-agnostic net: E[estimate] = the enumerated NELBO (test_estimators_masked.exact_mdlm); with eps = 0 it is
    also LLaDA's any-order bound."""
    from test_estimators_masked import exact_mdlm

    from dlmbench.diffusion.masked import mdlm_nelbo_integrated_mc

    net = TinyNet(3, time_dependent=False)
    est = mdlm_nelbo_integrated_mc(net, X0, SCORE, [41, 42, 43], mask_id=MASK, schedule=LogLinearNoise(eps),
                                   num_samples=2000, time_sampling=scheme, sampling_eps=eps, batch_size=8192)
    assert est.settings["t_estimator"] == "integrated" and est.settings["time_sampling"] == scheme
    for r in range(len(X0)):
        exact = exact_mdlm(net, X0[r], SCORE[r], eps, eps)
        assert abs(est.mean[r] - exact) < 4 * est.stderr[r], (r, est.mean[r], exact, est.stderr[r])
        if eps == 0.0:
            assert exact == pytest.approx(exact_llada(net, X0[r], SCORE[r]), rel=1e-9)


def test_integrated_nelbo_stderr_and_variance_against_replicates():
    """Markov-chain oracle, K = 32, 400 replicates: the collapsed-strata stderr matches the replicate variance
    (conservative by at most +25%), and integrating t out has less variance than sampled antithetic t (4 sd)."""
    from dlmbench.diffusion.masked import mdlm_nelbo_integrated_mc

    oracle, x0, sm = _markov_case()
    kw = dict(mask_id=MASK, schedule=LogLinearNoise(1e-3), num_samples=32, time_sampling="antithetic", batch_size=8192)
    integ = mdlm_nelbo_integrated_mc(oracle, x0, sm, list(range(N_REPLICATES)), **kw)
    sampled = mdlm_nelbo_mc(oracle, x0, sm, list(range(N_REPLICATES)), **kw)
    assert_stderr_matches(integ.mean, integ.stderr, conservative_up_to=0.25)

    def log_var_and_sd(m):
        d = (m - m.mean()) ** 2
        return math.log(d.mean()), float(np.std(d / d.mean(), ddof=1) / math.sqrt(len(m)))

    (li, si), (ls, ss) = log_var_and_sd(integ.mean), log_var_and_sd(sampled.mean)
    assert li - ls < -4 * math.hypot(si, ss), (math.exp(li - ls), si, ss)
