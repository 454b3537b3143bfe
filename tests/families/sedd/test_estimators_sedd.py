"""SEDD's score-entropy (DWDSE) bound against ground truth computed independently here.

- Transition kernels come from ``matrix_exp(sigma Q)`` of the graphs' rate matrices (not from the closed
  forms used in the code), and the score entropy from its generic definition
  ``sum_{y != z} Q(y -> z) [s_y - r_y log s_y + K(r_y)]`` with ``r_y = p_{t|0}(y|x0) / p_{t|0}(z|x0)``.
- Exact expectations of the MC estimator by enumerating every noised sequence and Gauss-Legendre in t.
- An oracle score from a known joint p0 over V^L (true ratios of the marginals p_t): for the exact reverse
  process started from the true p_1, the bound is tight, ``int_0^1 DWDSE + KL(p_{1|0}(.|x0) || p_1) =
  -log p0(x0)``, which checks every constant of the score entropy.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from dlmbench.families.sedd.estimator import AbsorbingGraph, UniformGraph, sedd_bound_mc, sedd_prior_kl
from dlmbench.diffusion.masked import masked_nll_sum
from dlmbench.diffusion.schedules import GeometricNoise, LogLinearNoise
from dlmbench.seeding import generator

V = 3  # real tokens
L = 3
F64 = torch.float64


def rate_matrix(graph) -> torch.Tensor:
    """Forward rate Q[from, to] of the graph, written from its definition."""
    if isinstance(graph, AbsorbingGraph):
        d = graph.dim
        q = torch.zeros(d, d, dtype=F64)
        for y in range(d - 1):
            q[y, d - 1] = 1.0
            q[y, y] = -1.0
        return q
    d = graph.dim
    return torch.full((d, d), 1.0 / d, dtype=F64) - torch.eye(d, dtype=F64)


def kernel(graph, sigma: float) -> torch.Tensor:
    """p_{t|0}(to | from) = expm(sigma Q)[from, to]."""
    return torch.linalg.matrix_exp(sigma * rate_matrix(graph))


def generic_entropy(graph, log_score: torch.Tensor, sigma: float, z: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Per-position score entropy [L] from its definition (loops, float64)."""
    q, p = rate_matrix(graph), kernel(graph, sigma)
    out = torch.zeros(len(z), dtype=F64)
    for i in range(len(z)):
        zi, xi = int(z[i]), int(x0[i])
        for y in range(graph.dim):
            if y == zi or q[y, zi] == 0:
                continue
            r = p[xi, y] / p[xi, zi]
            s_log = log_score[i, y]
            k = r * (torch.log(r) - 1) if r > 0 else torch.tensor(0.0, dtype=F64)
            out[i] += q[y, zi] * (torch.exp(s_log) - r * s_log + k)
    return out


def states(dim: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(dim), repeat=L)), dtype=torch.int64)


class ScoreNet(torch.nn.Module):
    """A fixed random MLP giving log concrete scores [B, L, dim]. Absorbing: SEDD's scale_by_sigma output
    (``raw - log(e^sigma - 1) - log(dim - 1)``, 0 at the input token); uniform: ``raw / (1 + sigma)``."""

    def __init__(self, graph, seed: int, hidden: int = 16):
        super().__init__()
        self.graph, d = graph, graph.dim
        g = generator(seed)
        self.w1 = torch.randn(L * d + 2, hidden, generator=g, dtype=F64) / math.sqrt(L * d)
        self.w2 = torch.randn(hidden, L * d, generator=g, dtype=F64)

    def forward(self, x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        b, d = x_t.shape[0], self.graph.dim
        s = sigma.to(F64)[:, None]
        h = torch.cat([torch.nn.functional.one_hot(x_t, d).to(F64).reshape(b, -1), torch.sin(s), torch.cos(s)], -1)
        raw = (torch.tanh(h @ self.w1) @ self.w2).reshape(b, L, d)
        if isinstance(self.graph, AbsorbingGraph):
            out = raw - torch.log(torch.expm1(s))[..., None] - math.log(d - 1)
        else:
            out = raw / (1 + s[..., None])
        return out.scatter(-1, x_t[..., None], 0.0)


def random_joint(seed: int) -> torch.Tensor:
    g = generator(seed)
    gam = torch._standard_gamma(torch.full((V**L,), 0.5, dtype=F64), generator=g)
    return 0.95 * gam / gam.sum() + 0.05 / V**L


class OracleScore:
    """True concrete scores p_t(z^{i<-y}) / p_t(z) of the marginals of a known joint p0 (by enumeration)."""

    def __init__(self, graph, joint: torch.Tensor):
        self.graph, self.joint = graph, joint
        self.x_states, self.z_states = states(V), states(graph.dim)

    def marginal(self, sigma: float) -> torch.Tensor:
        p = kernel(self.graph, sigma)
        trans = torch.ones(len(self.x_states), len(self.z_states), dtype=F64)
        for j in range(L):
            trans = trans * p[self.x_states[:, j][:, None], self.z_states[:, j][None, :]]
        return self.joint @ trans  # p_t over z states

    def index(self, z: torch.Tensor) -> torch.Tensor:
        return (z * (self.graph.dim ** torch.arange(L - 1, -1, -1))).sum(-1)

    def __call__(self, z: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        d = self.graph.dim
        out = torch.zeros(z.shape[0], L, d, dtype=F64)
        for b in range(z.shape[0]):
            log_pt = torch.log(self.marginal(float(sigma[b])))
            for i in range(L):
                zz = z[b].repeat(d, 1)
                zz[:, i] = torch.arange(d)
                out[b, i] = log_pt[self.index(zz)] - log_pt[self.index(z[b])]
        return out


def transition_probs(graph, x0: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """All noised sequences z and their probabilities p_{t|0}(z | x0)."""
    z = states(graph.dim)
    p = kernel(graph, sigma)
    prob = torch.ones(len(z), dtype=F64)
    for j in range(L):
        prob = prob * p[int(x0[j]), z[:, j]]
    keep = prob > 0
    return z[keep], prob[keep]


def gauss_legendre(a: float, b: float, n: int = 24, splits=(1e-7, 1e-5, 1e-3, 1e-2, 0.1, 0.4, 0.7, 0.9, 0.97, 0.99, 0.997)):
    """Composite Gauss-Legendre on [a, b]. Geometric splits near 0 because the uniform-graph integrand has an
    integrable log(1/t) singularity there; splits near 1 because the log-linear sigma(t) steepens there."""
    x, w = np.polynomial.legendre.leggauss(n)
    cuts = [a] + [c for c in splits if a < c < b] + [b]
    nodes, weights = [], []
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        nodes.append(0.5 * (hi - lo) * x + 0.5 * (hi + lo))
        weights.append(0.5 * (hi - lo) * w)
    return np.concatenate(nodes), np.concatenate(weights)


def exact_integral(graph, schedule, score_fn, x0: torch.Tensor, t0: float, entropy_fn) -> float:  # noqa: PLR0913
    """int_{t0}^1 dsigma(t) E_{z ~ p_{t|0}(.|x0)} [sum_i ent_i(z)] dt by enumeration + quadrature."""
    nodes, weights = gauss_legendre(t0, 1.0)
    total = 0.0
    for t, w in zip(nodes, weights):
        tt = torch.tensor([t], dtype=F64)
        sigma, dsigma = float(schedule.sigma(tt)), float(schedule.dsigma(tt))
        z, prob = transition_probs(graph, x0, sigma)
        log_score = score_fn(z, torch.full((len(z),), sigma, dtype=F64))
        ent = torch.stack([entropy_fn(log_score[j], sigma, z[j]) for j in range(len(z))]).sum(-1)
        total += w * dsigma * float((prob * ent).sum())
    return total


# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("graph", [AbsorbingGraph(V), UniformGraph(V)])
def test_score_entropy_matches_its_definition(graph):
    g = generator(0)
    b = 64
    log_score = torch.randn(b, L, graph.dim, generator=g, dtype=F64)
    x0 = torch.randint(0, V, (b, L), generator=g)
    sigma = torch.exp(torch.randn(b, generator=g, dtype=F64) * 1.5)
    u = torch.rand(2, b, L, generator=g, dtype=F64)
    z = graph.perturb(x0, torch.ones(b, L, dtype=torch.bool), sigma, u[0], u[1])
    got = graph.score_entropy(log_score, sigma, z, x0)
    want = torch.stack([generic_entropy(graph, log_score[k], float(sigma[k]), z[k], x0[k]) for k in range(b)])
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)
    # at the true conditional ratios the entropy is exactly zero (and it is >= 0 everywhere)
    assert bool((got >= -1e-12).all())
    for k in range(8):
        p = kernel(graph, float(sigma[k]))
        r = torch.log(p[x0[k]] / p[x0[k].unsqueeze(-1), z[k].unsqueeze(-1)].clamp_min(1e-300))  # log r_y per pos
        ent = graph.score_entropy(r[None], sigma[k : k + 1], z[k : k + 1], x0[k : k + 1])
        assert torch.allclose(ent, torch.zeros_like(ent), atol=1e-10)


def test_perturbation_matches_transition_kernel():
    """Empirical frequencies of x_t per (x0, x_t) match expm(sigma Q) (chi-square, p > 1e-3 by a 4-sigma rule)."""
    n = 40000
    for graph in (AbsorbingGraph(V), UniformGraph(V)):
        g = generator(1)
        x0 = torch.full((n, 1), 1)
        sigma = torch.full((n,), 0.7, dtype=F64)
        u = torch.rand(2, n, 1, generator=g, dtype=F64)
        z = graph.perturb(x0, torch.ones(n, 1, dtype=torch.bool), sigma, u[0], u[1])[:, 0]
        freq = torch.bincount(z, minlength=graph.dim).to(F64) / n
        p = kernel(graph, 0.7)[1]
        se = torch.sqrt(p * (1 - p) / n)
        assert bool(((freq - p).abs() <= 4 * se + 1e-12).all()), (graph, freq, p)


@pytest.mark.parametrize(
    "graph,schedule",
    [
        (AbsorbingGraph(V), LogLinearNoise(1e-3)),
        (UniformGraph(V), GeometricNoise(1e-4, 20.0)),
        (UniformGraph(V), LogLinearNoise(1e-3)),
    ],
    ids=["absorb-loglinear", "uniform-geometric", "uniform-loglinear"],
)
@pytest.mark.parametrize("scheme", ["iid", "antithetic"])
def test_sedd_mc_is_unbiased(graph, schedule, scheme):
    net = ScoreNet(graph, seed=2)
    x0 = torch.tensor([[0, 2, 1], [1, 1, 0]])
    sm = torch.tensor([[True, True, True], [False, True, True]])  # second: first token is clean context
    eps = 1e-3
    est = sedd_bound_mc(net, x0, sm, [5, 6], graph=graph, schedule=schedule, num_samples=3000,
                        time_sampling=scheme, sampling_eps=eps, batch_size=4096)
    assert est.settings["stderr"] == ("collapsed_strata" if scheme == "antithetic" else "iid")
    for r in range(2):
        scored = sm[r]
        exact = _exact_with_context(graph, schedule, net, x0[r], scored, eps)
        assert abs(est.mean[r] - exact) < 4 * est.stderr[r], (r, est.mean[r], exact, est.stderr[r])


def _exact_with_context(graph, schedule, net, x0, scored, t0) -> float:
    """E_{t~U[t0,1]} of the integrand, context positions kept clean (their kernel is the identity)."""
    nodes, weights = gauss_legendre(t0, 1.0)
    total = 0.0
    for t, w in zip(nodes, weights):
        tt = torch.tensor([t], dtype=F64)
        sigma, dsigma = float(schedule.sigma(tt)), float(schedule.dsigma(tt))
        z, prob = transition_probs(graph, x0, sigma)
        keep = ((z == x0) | scored).all(-1)  # context never moves
        z = z[keep]
        prob = torch.ones(len(z), dtype=F64)
        p = kernel(graph, sigma)
        for j in range(L):
            if scored[j]:
                prob = prob * p[int(x0[j]), z[:, j]]
        log_score = net(z, torch.full((len(z),), sigma, dtype=F64))
        ent = torch.stack([generic_entropy(graph, log_score[k], sigma, z[k], x0) * scored for k in range(len(z))])
        total += w * dsigma * float((prob * ent.sum(-1)).sum())
    return total / (1.0 - t0)


@pytest.mark.parametrize("graph", [AbsorbingGraph(V), UniformGraph(V)], ids=["absorb", "uniform"])
def test_oracle_score_makes_the_bound_tight(graph):
    """int_0^1 DWDSE(oracle) + KL(p_{1|0}(.|x0) || p_1) = -log p0(x0) (exact reverse process from p_1)."""
    schedule = LogLinearNoise(1e-3)
    joint = random_joint(3)
    oracle = OracleScore(graph, joint)
    p1 = oracle.marginal(float(schedule.sigma(torch.tensor(1.0, dtype=F64))))
    for x0 in [torch.tensor([0, 2, 1]), torch.tensor([2, 2, 2])]:
        integral = exact_integral(
            graph, schedule, oracle, x0, 0.0,
            lambda ls, sigma, z, x0=x0: graph.score_entropy(ls[None], torch.tensor([sigma], dtype=F64), z[None], x0[None])[0],
        )
        z, prob = transition_probs(graph, x0, float(schedule.sigma(torch.tensor(1.0, dtype=F64))))
        kl = float((prob * (torch.log(prob) - torch.log(p1[oracle.index(z)]))).sum())
        nll = -math.log(float(joint[(x0 * V ** torch.arange(L - 1, -1, -1)).sum()]))
        assert integral + kl == pytest.approx(nll, rel=1e-7), (integral, kl, nll)


def test_absorbing_oracle_integrand_equals_mdlm_integrand():
    """With the true absorbing score s = p(y | unmasked) / (e^sigma - 1), dsigma * ent = -(1/t) log p (RADD)."""
    graph, schedule = AbsorbingGraph(V), LogLinearNoise(1e-3)
    oracle = OracleScore(graph, random_joint(4))
    x0 = torch.tensor([[1, 0, 2]] * 5)
    z = torch.tensor([[3, 0, 2], [3, 3, 2], [3, 3, 3], [1, 3, 3], [1, 0, 2]])
    t = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.95], dtype=F64)
    sigma, dsigma = schedule.sigma(t), schedule.dsigma(t)
    ls = oracle(z, sigma)
    dwdse = dsigma * graph.score_entropy(ls, sigma, z, x0).sum(-1)
    # p(x0_i | unmasked) = s_{x0_i} (e^sigma - 1) for masked i
    log_p = ls + torch.log(torch.expm1(sigma))[:, None, None]
    mdlm = masked_nll_sum(log_p, x0, z == graph.mask_id, schedule.masked_weight(t))
    assert torch.allclose(dwdse, mdlm, rtol=1e-9)


def test_prior_term():
    x0 = torch.tensor([[0, 1, 2]])
    sm = torch.tensor([[True, True, False]])
    uni, geo = UniformGraph(V), GeometricNoise(1e-4, 2.0)
    p = kernel(uni, 2.0)
    want = sum(float((p[i] * torch.log(p[i] * V)).sum()) for i in (0, 1))
    assert float(sedd_prior_kl(x0, sm, graph=uni, schedule=geo)[0]) == pytest.approx(want, rel=1e-10)
    absorb = AbsorbingGraph(V)
    assert math.isinf(float(sedd_prior_kl(x0, sm, graph=absorb, schedule=LogLinearNoise(1e-3))[0]))
    assert float(sedd_prior_kl(x0, sm, graph=absorb, schedule=LogLinearNoise(0.0))[0]) == 0.0


@pytest.mark.parametrize("scheme", ["iid", "antithetic"])
def test_sedd_stderr_matches_replicate_runs(scheme):
    """400 independent K = 32 estimates of one sequence (absorbing graph, log-linear schedule): the reported
    stderr against the replicate variance (``tests/replicate_stderr.py``); iid: unbiased; antithetic: collapsed
    strata, conservative by at most +25%."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from replicate_stderr import assert_stderr_matches

    graph, n = AbsorbingGraph(V), 400
    net = ScoreNet(graph, seed=4)
    x0 = torch.tensor([[0, 2, 1]]).repeat(n, 1)
    est = sedd_bound_mc(net, x0, torch.ones_like(x0, dtype=torch.bool), list(range(n)), graph=graph,
                        schedule=LogLinearNoise(1e-3), num_samples=32, time_sampling=scheme, batch_size=16384)
    assert_stderr_matches(est.mean, est.stderr, conservative_up_to=0.25 if scheme == "antithetic" else 0.0)
