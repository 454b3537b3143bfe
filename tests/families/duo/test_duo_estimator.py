"""The uniform-state NELBO against independent ground truths on a tiny vocabulary and length:

- the closed form of the integrand against the rate-matrix definition summed over every state (written out here);
- at fixed ``t`` the expectation over ``x_t`` by exact enumeration; over ``t`` by Gauss-Legendre quadrature; the
  Monte Carlo estimator's mean against that number within its standard error;
- the discrete-time ELBO (a sum over ``T`` steps of posterior KLs, posteriors by Bayes' rule) converging to the
  continuous-time value as ``T`` grows.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from dlmbench.families.duo.estimator import (
    UniformLogLinear,
    duo_nelbo_mc,
    duo_one_shot_argmax,
    prior_kl,
    uniform_nelbo_integrand,
)

N, L = 3, 2
SCHED = UniformLogLinear(1e-3)


class TableDenoiser:
    """A deterministic toy network: logits from a random table indexed by the whole ``x_t`` and the position,
    plus a smooth function of ``sigma``, so ``p_theta`` depends on every token and on the noise level."""

    def __init__(self, n: int, length: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.n, self.length = n, length
        self.table = torch.randn(n ** length, length, n, generator=g, dtype=torch.float64) * 1.5
        self.slope = torch.randn(length, n, generator=g, dtype=torch.float64)

    def __call__(self, x_t, sigma):
        idx = (x_t * (self.n ** torch.arange(self.length - 1, -1, -1))).sum(-1)
        logits = self.table[idx] + torch.tanh(sigma.to(torch.float64))[:, None, None] * self.slope
        return torch.log_softmax(logits, dim=-1)


def integrand_by_rates(lp, x_t, x0, alpha, dalpha):
    """``sum_{y != x} [R_theta - R + R log(R / R_theta)]`` with the reverse rates written out state by state."""
    n = lp.shape[-1]
    out = torch.zeros(x_t.shape, dtype=torch.float64)
    for b in range(x_t.shape[0]):
        a, da = float(alpha[b]), float(dalpha[b])
        beta = -da / a
        for i in range(x_t.shape[1]):
            x, x0i = int(x_t[b, i]), int(x0[b, i])
            q = [a * (y == x0i) + (1 - a) / n for y in range(n)]  # q_t(y | x0)
            pt = [a * float(lp[b, i, y].exp()) + (1 - a) / n for y in range(n)]  # q_t(y | x0 ~ p_theta)
            tot = 0.0
            for y in range(n):
                if y == x:
                    continue
                r = beta / n * q[y] / q[x]
                rt = beta / n * pt[y] / pt[x]
                tot += rt - r + r * np.log(r / rt)
            out[b, i] = tot
    return out


def test_closed_form_equals_the_rate_definition():
    g = torch.Generator().manual_seed(1)
    for n in (2, 3, 7):
        lp = torch.log_softmax(torch.randn(5, 4, n, generator=g, dtype=torch.float64) * 2, -1)
        x0 = torch.randint(0, n, (5, 4), generator=g)
        x_t = torch.where(torch.rand(5, 4, generator=g) < 0.5, torch.randint(0, n, (5, 4), generator=g), x0)
        t = torch.rand(5, generator=g, dtype=torch.float64) * 0.98 + 0.01
        a, da = SCHED.alpha(t), SCHED.dalpha(t)
        got = uniform_nelbo_integrand(lp, x_t, x0, a, da)
        want = integrand_by_rates(lp, x_t, x0, a, da)
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)
        assert bool((got >= -1e-12).all())  # each term is a Bregman divergence


def test_zero_when_the_model_is_the_true_posterior_mean():
    # p_theta = e_{x0} makes xbar_theta = xbar: every rate agrees, the integrand vanishes
    x0 = torch.tensor([[0, 2, 1]])
    lp = torch.log(torch.nn.functional.one_hot(x0, 3).to(torch.float64).clamp_min(1e-300))
    for xt in ([0, 2, 1], [1, 0, 1]):
        v = uniform_nelbo_integrand(lp, torch.tensor([xt]), x0, torch.tensor([0.4]), torch.tensor([-0.999]))
        assert float(v.abs().max()) < 1e-9


def enumerate_expectation(den, x0, score, t):
    """``E_{x_t ~ q_t(. | x0)}[sum_{i scored} l_i(t)]`` exactly (all ``N^L`` noisy rows)."""
    a = float(SCHED.alpha(torch.tensor(t, dtype=torch.float64)))
    rows, probs = [], []
    for xt in itertools.product(range(N), repeat=L):
        p = 1.0
        for i in range(L):
            if score[i]:
                p *= a * (xt[i] == x0[i]) + (1 - a) / N
            elif xt[i] != x0[i]:
                p = 0.0
        if p > 0:
            rows.append(xt)
            probs.append(p)
    x_t = torch.tensor(rows)
    tt = torch.full((len(rows),), t, dtype=torch.float64)
    lp = den(x_t, SCHED.sigma(tt))
    x0r = torch.tensor([x0] * len(rows))
    terms = uniform_nelbo_integrand(lp, x_t, x0r, SCHED.alpha(tt), SCHED.dalpha(tt))
    terms = terms * torch.tensor(score, dtype=torch.float64)
    return float((torch.tensor(probs, dtype=torch.float64) * terms.sum(-1)).sum())


def quadrature_nelbo(den, x0, score, eps=1e-3, nodes=64):
    """``E_{t ~ U[eps, 1]}`` of the exact expectation, composite Gauss-Legendre (panels at 0.01, 0.1, 0.5)."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    cuts = [eps, 0.01, 0.1, 0.5, 1.0]
    total = 0.0
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        for xi, wi in zip(x, w):
            total += 0.5 * (hi - lo) * wi * enumerate_expectation(den, x0, score, 0.5 * (hi - lo) * xi + 0.5 * (hi + lo))
    return total / (1 - eps)


@pytest.mark.parametrize("score", [(True, True), (False, True)])
def test_monte_carlo_mean_matches_enumeration_and_quadrature(score):
    den = TableDenoiser(N, L, seed=2)
    x0 = (2, 0)
    truth = quadrature_nelbo(den, x0, score)
    est = duo_nelbo_mc(den, torch.tensor([x0]), torch.tensor([score]), [11], vocab_size=N, schedule=SCHED,
                       num_samples=4000, time_sampling="antithetic", sampling_eps=1e-3)
    mean, se = float(est.mean[0]), float(est.stderr[0])
    assert se > 0 and abs(mean - truth) < 4 * se, (mean, truth, se)
    assert se < 0.05 * truth  # the check has power


def test_fixed_t_expectation_by_monte_carlo_over_x_t_only():
    den = TableDenoiser(N, L, seed=5)
    x0, t = (1, 2), 0.37
    truth = enumerate_expectation(den, x0, (True, True), t)
    g = torch.Generator().manual_seed(0)
    k = 20000
    from dlmbench.families.duo.estimator import duo_nelbo_from_uniforms

    draws = duo_nelbo_from_uniforms(den, torch.tensor([x0] * k), torch.ones(k, L, dtype=torch.bool),
                                    torch.full((k,), t, dtype=torch.float64),
                                    torch.rand(k, L, generator=g, dtype=torch.float64),
                                    torch.rand(k, L, generator=g, dtype=torch.float64), vocab_size=N, schedule=SCHED)
    assert abs(float(draws.mean()) - truth) < 4 * float(draws.std()) / k ** 0.5


def bayes_posterior(p0, x_t, a_s, a_t):
    """``q(x_s | x_t, p0) ∝ q(x_t | x_s) (a_s p0 + (1 - a_s) / N)``, ``q(x_t | x_s) = a_t/a_s [x_t = x_s] + (1 - a_t/a_s)/N``."""
    n = p0.shape[-1]
    a_ts = a_t / a_s
    like = torch.full((n,), (1 - a_ts) / n, dtype=torch.float64)
    like[x_t] += a_ts
    joint = like * (a_s * p0 + (1 - a_s) / n)
    return joint / joint.sum()


def discrete_elbo(den, x0, T, eps=1e-3):
    """``sum_j E_{x_{t_j}} sum_i KL(q(x_s^i | x_t^i, x0^i) || p_theta(x_s^i | x_t))`` on the grid ``t_j = eps + (1 - eps) j / T``
    (the diffusion part of the discrete-time ELBO on ``[eps, 1]``; every position scored)."""
    total = 0.0
    ts = [eps + (1 - eps) * j / T for j in range(T + 1)]
    all_xt = torch.tensor(list(itertools.product(range(N), repeat=L)))
    for j in range(1, T + 1):
        t, s = ts[j], ts[j - 1]
        a_t = float(SCHED.alpha(torch.tensor(t, dtype=torch.float64)))
        a_s = float(SCHED.alpha(torch.tensor(s, dtype=torch.float64)))
        lp = den(all_xt, SCHED.sigma(torch.full((len(all_xt),), t, dtype=torch.float64)))
        for r, xt in enumerate(all_xt.tolist()):
            p_xt = np.prod([a_t * (xt[i] == x0[i]) + (1 - a_t) / N for i in range(L)])
            kl = 0.0
            for i in range(L):
                q = bayes_posterior(torch.nn.functional.one_hot(torch.tensor(x0[i]), N).to(torch.float64), xt[i], a_s, a_t)
                p = bayes_posterior(lp[r, i].exp(), xt[i], a_s, a_t)
                kl += float((q * (q.clamp_min(1e-300).log() - p.log())).sum())
            total += p_xt * kl
    return total


@pytest.mark.slow
def test_discrete_time_elbo_converges_to_the_continuous_bound():
    den = TableDenoiser(N, L, seed=7)
    x0 = (0, 1)
    cont = quadrature_nelbo(den, x0, (True, True)) * (1 - 1e-3)  # the integral itself over [eps, 1]
    errs = [abs(discrete_elbo(den, x0, T) - cont) for T in (64, 256, 1024)]
    assert errs[1] < 0.5 * errs[0] and errs[2] < 0.5 * errs[1], errs
    assert errs[2] < 2e-3 * cont, (errs, cont)


def test_prior_kl_closed_form():
    n, a = 5, 0.2
    q = np.full(n, (1 - a) / n)
    q[0] += a
    assert prior_kl(a, n) == pytest.approx(float((q * np.log(q * n)).sum()), rel=1e-12)
    assert prior_kl(0.0, n) == pytest.approx(0.0, abs=1e-15)


def test_one_shot_argmax_reads_only_the_context_and_the_noise():
    den = TableDenoiser(N, L, seed=3)
    noise = torch.tensor([[1, 1]])
    sigma = SCHED.sigma(torch.tensor([1.0], dtype=torch.float64))
    pred = den(torch.tensor([[2, 1]]), sigma).argmax(-1)  # target = position 1, context 2
    x0_hit = torch.tensor([[2, int(pred[0, 1])]])
    x0_miss = torch.tensor([[2, (int(pred[0, 1]) + 1) % N]])
    tmask = torch.tensor([[False, True]])
    assert bool(duo_one_shot_argmax(den, x0_hit, tmask, noise, sigma=sigma)[0])
    assert not bool(duo_one_shot_argmax(den, x0_miss, tmask, noise, sigma=sigma)[0])


def test_draws_are_seeded_per_request():
    den = TableDenoiser(N, L, seed=4)
    x0 = torch.tensor([[2, 0], [1, 1]])
    m = torch.ones_like(x0, dtype=torch.bool)
    both = duo_nelbo_mc(den, x0, m, [5, 6], vocab_size=N, schedule=SCHED, num_samples=8, batch_size=3)
    alone = duo_nelbo_mc(den, x0[1:], m[1:], [6], vocab_size=N, schedule=SCHED, num_samples=8)
    assert np.allclose(both.draws[1], alone.draws[0], rtol=0, atol=1e-12)
