"""DUO's ancestral sampler against the exact law of the chain it claims to run: on 3 states and 2 positions the
distribution of the output is propagated step by step (prior, posterior steps by Bayes' rule, noise removal) and the
samples are compared with it by a chi-square test; plus the clean prefix, per-row seeding and the NFE count."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats

from dlmbench.families.duo.estimator import UniformLogLinear
from dlmbench.families.duo.samplers import duo_ancestral, uniform_posterior

N, L = 3, 2
SCHED = UniformLogLinear(1e-3)


def table_denoiser(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(N ** L, L, N, generator=g, dtype=torch.float64) * 1.5
    slope = torch.randn(L, N, generator=g, dtype=torch.float64)

    def den(x_t, sigma):
        idx = (x_t * (N ** torch.arange(L - 1, -1, -1))).sum(-1)
        return torch.log_softmax(table[idx] + torch.tanh(sigma.to(torch.float64))[:, None, None] * slope, -1)

    return den


def bayes(p0, x, a_s, a_t):
    a_ts = a_t / a_s
    like = np.full(N, (1 - a_ts) / N)
    like[x] += a_ts
    joint = like * (a_s * p0 + (1 - a_s) / N)
    return joint / joint.sum()


def exact_law(den, steps, eps, noise_removal):
    states = list(itertools.product(range(N), repeat=L))
    dist = {s: 1.0 / len(states) for s in states}
    ts = np.linspace(1.0, eps, steps + 1)
    alpha = lambda t: 1 - (1 - 1e-3) * t  # noqa: E731
    plan = [(ts[j], alpha(ts[j + 1])) for j in range(steps)]
    if noise_removal == "ancestral":
        plan.append((ts[-1], 1.0))
    for t, a_s in plan:
        new = dict.fromkeys(states, 0.0)
        for x, px in dist.items():
            p0 = den(torch.tensor([x]), SCHED.sigma(torch.tensor([t], dtype=torch.float64)))[0].exp().numpy()
            qs = [bayes(p0[i], x[i], a_s, alpha(t)) for i in range(L)]
            for y in states:
                new[y] += px * qs[0][y[0]] * qs[1][y[1]]
        dist = new
    return states, np.array([dist[s] for s in states])


@pytest.mark.parametrize("steps", [1, 3])
def test_samples_follow_the_exact_law_of_the_chain(steps):
    den = table_denoiser(1)
    states, law = exact_law(den, steps, 1e-5, "ancestral")
    n = 4000
    out = duo_ancestral(den, torch.zeros(n, L, dtype=torch.long), torch.zeros(n, L, dtype=torch.bool), vocab_size=N,
                        seeds=list(range(n)), schedule=SCHED, steps=steps, eps=1e-5)
    idx = {s: k for k, s in enumerate(states)}
    counts = np.bincount([idx[tuple(r)] for r in out.tokens.tolist()], minlength=len(states))
    keep = law * n >= 5
    chi = stats.chisquare(counts[keep], law[keep] * n * counts[keep].sum() / (law[keep] * n).sum())
    assert chi.pvalue > 1e-3, (counts, law * n)
    assert out.nfe == steps + 1


def test_posterior_is_bayes_rule():
    g = torch.Generator().manual_seed(0)
    p0 = torch.softmax(torch.randn(2, 3, 5, generator=g, dtype=torch.float64), -1)
    x = torch.randint(0, 5, (2, 3), generator=g)
    a_s, a_t = torch.tensor([0.6, 0.9], dtype=torch.float64), torch.tensor([0.3, 0.5], dtype=torch.float64)
    got = uniform_posterior(p0, x, a_s, a_t)
    for b in range(2):
        for i in range(3):
            like = torch.full((5,), (1 - a_t[b] / a_s[b]) / 5, dtype=torch.float64)
            like[x[b, i]] += a_t[b] / a_s[b]
            want = like * (a_s[b] * p0[b, i] + (1 - a_s[b]) / 5)
            assert torch.allclose(got[b, i], want / want.sum(), atol=1e-14)


def test_prefix_kept_seeding_per_row_and_greedy_tail():
    den = table_denoiser(2)
    x = torch.tensor([[2, 0]] * 5)
    fixed = torch.tensor([[True, False]] * 5)
    a = duo_ancestral(den, x, fixed, vocab_size=N, seeds=[7, 8, 9, 10, 11], schedule=SCHED, steps=4)
    b = duo_ancestral(den, x[2:3], fixed[2:3], vocab_size=N, seeds=[9], schedule=SCHED, steps=4)
    assert bool((a.tokens[:, 0] == 2).all())
    assert torch.equal(a.tokens[2], b.tokens[0])
    g = duo_ancestral(den, x, fixed, vocab_size=N, seeds=[7, 8, 9, 10, 11], schedule=SCHED, steps=4, noise_removal="greedy")
    assert g.nfe == 5
    # greedy tail: the last step writes the argmax of p_theta at the final noise level, given the row before it
    none = duo_ancestral(den, x, fixed, vocab_size=N, seeds=[7, 8, 9, 10, 11], schedule=SCHED, steps=4, noise_removal="none")
    assert none.nfe == 4
    want = den(none.tokens, SCHED.sigma(torch.full((5,), 1e-5, dtype=torch.float64))).argmax(-1)
    assert torch.equal(g.tokens[:, 1], want[:, 1])


def test_an_excluded_state_never_ends_a_sample():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(N, generator=g, dtype=torch.float64)
    logits[N - 1] = 5.0  # the network favours the last state

    def den(x_t, sigma):
        return torch.log_softmax(logits.expand(*x_t.shape, N), -1)

    for removal in ("ancestral", "greedy"):
        out = duo_ancestral(den, torch.zeros(50, L, dtype=torch.long), torch.zeros(50, L, dtype=torch.bool), vocab_size=N,
                            seeds=list(range(50)), schedule=SCHED, steps=3, noise_removal=removal, exclude=N - 1)
        assert int(out.tokens.max()) < N - 1
    kept = duo_ancestral(den, torch.zeros(50, L, dtype=torch.long), torch.zeros(50, L, dtype=torch.bool), vocab_size=N,
                         seeds=list(range(50)), schedule=SCHED, steps=3)
    assert int((kept.tokens == N - 1).sum()) > 0  # without it the state is drawn (the test has power)
