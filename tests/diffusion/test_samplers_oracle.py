"""Oracles for the sampler tests: exact denoisers and scores computed from a known joint distribution over
a tiny ``V^L``, an exact dynamic program for the ancestral sampler's output law, and statistics helpers.
Also checks the oracles themselves against direct enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy import stats


def random_joint(v: int, l: int, seed: int, concentration: float = 1.0) -> torch.Tensor:
    """A full-support joint ``[v] * l`` (float64), Dirichlet-distributed."""
    g = np.random.default_rng(seed)
    return torch.tensor(g.dirichlet(np.full(v**l, concentration)).reshape([v] * l), dtype=torch.float64)


class JointOracle:
    """Exact ``p(x0 | x_t)`` from a joint over ``V^L``; the mask token is ``V``."""

    def __init__(self, joint: torch.Tensor):
        self.joint = joint
        self.v, self.l = joint.shape[0], joint.ndim
        self.mask_id = self.v
        self.states = torch.tensor(list(itertools.product(range(self.v), repeat=self.l)), dtype=torch.long)
        self.p = joint.reshape(-1)
        self.onehot = torch.nn.functional.one_hot(self.states, self.v).to(torch.float64)  # [S, L, V]
        self.calls = 0

    def _marginals(self, x_t: torch.Tensor) -> torch.Tensor:
        ok = ((x_t[:, None, :] == self.mask_id) | (x_t[:, None, :] == self.states[None])).all(dim=-1)
        w = ok.to(torch.float64) * self.p[None]
        return torch.einsum("bs,slv->blv", w, self.onehot) / w.sum(dim=-1)[:, None, None]

    def log_probs(self, x_t: torch.Tensor, sigma=None) -> torch.Tensor:
        """``[B, L, V + 1]``: exact conditionals (one-hot at unmasked positions), mask column ``-inf``."""
        self.calls += 1
        m = self._marginals(x_t)
        out = torch.cat([m.log(), torch.full((*m.shape[:2], 1), float("-inf"), dtype=torch.float64)], dim=-1)
        return out

    def time_free(self, x_t: torch.Tensor) -> torch.Tensor:
        return self.log_probs(x_t, None)

    def prob_of(self, seqs: np.ndarray) -> np.ndarray:
        return self.joint.numpy()[tuple(seqs.T)]


class ScoreOracle:
    """Exact concrete scores ``p_t(x^{i<-y}) / p_t(x)`` by enumerating ``p_t`` over every noisy state.

    ``graph = "absorbing"``: states over ``V + 1`` symbols, ``K(z|x0) = e^{-sigma} [z = x0] + (1 - e^{-sigma}) [z = M]``;
    ``"uniform"``: states over ``V``, ``K(z|x0) = e^{-sigma} [z = x0] + (1 - e^{-sigma}) / V``.
    """

    def __init__(self, joint: torch.Tensor, graph: str, clean: list[int] | None = None):
        self.v, self.l = joint.shape[0], joint.ndim
        self.graph = graph
        self.dim = self.v + 1 if graph == "absorbing" else self.v
        self.x0s = torch.tensor(list(itertools.product(range(self.v), repeat=self.l)), dtype=torch.long)
        self.zs = torch.tensor(list(itertools.product(range(self.dim), repeat=self.l)), dtype=torch.long)
        self.p = joint.reshape(-1)
        self.base = self.dim ** torch.arange(self.l - 1, -1, -1)
        self.clean = set(clean or [])  # positions kept noiseless (conditioning), identity kernel

    def table(self, sigma: float) -> torch.Tensor:
        a = float(np.exp(-sigma))
        k = torch.zeros(self.dim, self.v, dtype=torch.float64)
        for z in range(self.dim):
            for x in range(self.v):
                if self.graph == "absorbing":
                    k[z, x] = a * (z == x) + (1 - a) * (z == self.v)
                else:
                    k[z, x] = a * (z == x) + (1 - a) / self.v
        prod = torch.ones(len(self.zs), len(self.x0s), dtype=torch.float64)
        ident = torch.eye(self.dim, self.v, dtype=torch.float64)
        for i in range(self.l):
            ki = ident if i in self.clean else k
            prod = prod * ki[self.zs[:, i]][:, self.x0s[:, i]]
        return prod @ self.p

    def __call__(self, x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        assert torch.allclose(sigma, sigma[0]), "oracle assumes one time per call"
        tab = self.table(float(sigma[0]))
        idx = (x_t * self.base).sum(dim=-1)  # [B]
        y = torch.arange(self.dim)
        nb = idx[:, None, None] + (y[None, None, :] - x_t[..., None]) * self.base[None, :, None]
        return torch.log(tab[nb]) - torch.log(tab[idx])[:, None, None]


def ancestral_law(joint: torch.Tensor, unmask_probs: list[float], final: str, canvas: tuple[int, ...] | None = None) -> dict[tuple, float]:
    """Exact output law of an ancestral masked sampler with an exact denoiser, by dynamic programming over
    partially masked states (a dict, written independently of the sampler's tensors): at each step every
    masked position independently unmasks with probability ``pi`` to a token drawn from
    ``p(x0_i | unmasked tokens)``; at the end masks left are filled by ``final`` (``argmax`` per position, or
    ``sample`` = independent draws from the conditionals)."""
    v, l = joint.shape[0], joint.ndim
    mask = v
    jp = joint.numpy()

    def cond(z: tuple) -> list[np.ndarray]:
        sl = tuple(slice(None) if zi == mask else zi for zi in z)
        sub = jp[sl]
        free = [i for i in range(l) if z[i] == mask]
        out = []
        for i in range(l):
            if z[i] != mask:
                out.append(None)
                continue
            axis = free.index(i)
            other = tuple(a for a in range(len(free)) if a != axis)
            m = sub.sum(axis=other) if other else sub
            out.append(m / m.sum())
        return out

    cache: dict[tuple, list] = {}
    law = {canvas or tuple([mask] * l): 1.0}
    for pi in unmask_probs:
        nxt: dict[tuple, float] = {}
        for z, pz in law.items():
            if z not in cache:
                cache[z] = cond(z)
            c = cache[z]
            options = []
            for i in range(l):
                if z[i] != mask:
                    options.append([(z[i], 1.0)])
                else:
                    options.append([(mask, 1.0 - pi)] + [(y, pi * c[i][y]) for y in range(v)])
            for combo in itertools.product(*options):
                w = pz
                for _, q in combo:
                    w *= q
                if w > 0:
                    key = tuple(s for s, _ in combo)
                    nxt[key] = nxt.get(key, 0.0) + w
        law = nxt
    out: dict[tuple, float] = {}
    for z, pz in law.items():
        c = cond(z) if mask in z else None
        options = []
        for i in range(l):
            if z[i] != mask:
                options.append([(z[i], 1.0)])
            elif final == "argmax":
                options.append([(int(np.argmax(c[i])), 1.0)])
            else:
                options.append([(y, c[i][y]) for y in range(v)])
        for combo in itertools.product(*options):
            w = pz
            for _, q in combo:
                w *= q
            key = tuple(s for s, _ in combo)
            out[key] = out.get(key, 0.0) + w
    return out


def counts_of(samples: torch.Tensor, v: int) -> np.ndarray:
    """Histogram of ``[N, L]`` samples over ``V^L`` in lexicographic order."""
    l = samples.shape[1]
    idx = (samples * (v ** torch.arange(l - 1, -1, -1))).sum(dim=-1)
    return np.bincount(idx.numpy(), minlength=v**l)


def law_vector(law: dict[tuple, float], v: int, l: int) -> np.ndarray:
    return np.array([law.get(s, 0.0) for s in itertools.product(range(v), repeat=l)])


def chi2_pvalue(counts: np.ndarray, probs: np.ndarray) -> float:
    """Pearson chi-square p-value of ``counts`` against ``probs`` (cells with expected count < 5 pooled)."""
    n = counts.sum()
    exp = probs * n
    keep = exp >= 5
    c = np.append(counts[keep], counts[~keep].sum())
    e = np.append(exp[keep], exp[~keep].sum())
    if e[-1] == 0:
        c, e = c[:-1], e[:-1]
    return float(stats.chisquare(c, e).pvalue)


def tv(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.abs(p - q).sum())


# --- the oracles themselves ----------------------------------------------------------------------


def test_joint_oracle_conditionals_match_enumeration():
    joint = random_joint(3, 3, seed=0)
    o = JointOracle(joint)
    m = o.mask_id
    x = torch.tensor([[m, 1, m], [2, m, 0], [m, m, m], [0, 1, 2]])
    lp = o.log_probs(x)
    j = joint.numpy()
    # p(x0_0 | x1 = 1) and p(x0_2 | x1 = 1) by direct summation
    np.testing.assert_allclose(lp[0, 0, :3].exp().numpy(), j[:, 1, :].sum(1) / j[:, 1, :].sum(), rtol=1e-12)
    np.testing.assert_allclose(lp[0, 2, :3].exp().numpy(), j[:, 1, :].sum(0) / j[:, 1, :].sum(), rtol=1e-12)
    np.testing.assert_allclose(lp[1, 1, :3].exp().numpy(), j[2, :, 0] / j[2, :, 0].sum(), rtol=1e-12)
    np.testing.assert_allclose(lp[2, 0, :3].exp().numpy(), j.sum((1, 2)), rtol=1e-12)
    assert torch.equal(lp[3, :, :3].argmax(-1), x[3]) and (lp[..., 3] == float("-inf")).all()


def test_absorbing_score_oracle_matches_closed_form():
    # exact absorbing score at a masked position: s_y = p0(y | unmasked) / (e^sigma - 1)
    joint = random_joint(3, 3, seed=1)
    o, so = JointOracle(joint), ScoreOracle(joint, "absorbing")
    x = torch.tensor([[3, 1, 3], [3, 3, 3]])
    sigma = torch.tensor([0.7, 0.7], dtype=torch.float64)
    s = so(x, sigma).exp()
    want = o.log_probs(x)[..., :3].exp() / np.expm1(0.7)
    torch.testing.assert_close(s[:, 0, :3], want[:, 0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s[0, 2, :3], want[0, 2], rtol=1e-10, atol=1e-12)
    assert torch.allclose(s[0, 1, 1], torch.tensor(1.0, dtype=torch.float64))


def test_ancestral_law_with_all_unmasked_at_once_is_product_of_marginals():
    joint = random_joint(3, 2, seed=2)
    law = ancestral_law(joint, [1.0], final="argmax")
    j = joint.numpy()
    prod = np.outer(j.sum(1), j.sum(0))
    np.testing.assert_allclose(law_vector(law, 3, 2).reshape(3, 3), prod, rtol=1e-12)
