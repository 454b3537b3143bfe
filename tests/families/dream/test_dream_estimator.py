"""Dream's bound against ground truth: exact enumeration over every masked set, the any-order identity of an exact
denoiser (bound = −log p at ε = 0), and the shift convention (an oracle read at i − 1 scores 0, read at i it does not).

The enumerations are written here from the definition (sum over subsets S of the scored tokens, weight
``∫_ε^1 t^{|S|−1}(1−t)^{T−|S|} dt / (1−ε)`` by scipy quadrature, shifted read written as an index ``i − 1``), not
from the estimator's code."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from dlmbench.diffusion.masked import mdlm_nelbo_mc
from dlmbench.families.dream.estimator import LINEAR, dream_bound_mc, shift_logits, shifted_denoiser, source_positions

MASK = 3  # vocabulary {0, 1, 2} + mask


def _weight(n: int, T: int, eps: float) -> float:
    return quad(lambda t: t ** (n - 1) * (1 - t) ** (T - n), eps, 1.0, epsabs=1e-13, epsrel=1e-12)[0] / (1 - eps)


def _enumerate(raw_fn, x0: list[int], scored: list[int], eps: float) -> float:
    """Σ_S w(|S|) Σ_{i∈S} −log softmax(raw(x_S)[i − 1])[x0_i], S over non-empty subsets of ``scored``."""
    T, total = len(scored), 0.0
    for n in range(1, T + 1):
        w = _weight(n, T, eps)
        for S in itertools.combinations(scored, n):
            x = list(x0)
            for i in S:
                x[i] = MASK
            raw = raw_fn(torch.tensor([x]))[0].double()
            for i in S:
                total += -w * float(torch.log_softmax(raw[max(i - 1, 0)], -1)[x0[i]])
    return total


class TinyNet(torch.nn.Module):
    """A random bidirectional network (embedding, one mixing over all positions, readout): raw logits [B, L, 4]."""

    def __init__(self, L: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.emb = torch.randn(4, 8, generator=g, dtype=torch.float64)
        self.mix = torch.randn(L, L, generator=g, dtype=torch.float64) / L
        self.pos = torch.randn(L, 8, generator=g, dtype=torch.float64)
        self.out = torch.randn(8, 4, generator=g, dtype=torch.float64)

    def hidden(self, x):
        return torch.tanh(torch.einsum("ij,bjd->bid", self.mix, self.emb[x]) + self.pos)

    def head(self, h):
        return h @ self.out

    def forward(self, x):
        return self.head(self.hidden(x))


def _den(net):
    return shifted_denoiser(net.hidden, net.head, lambda z: torch.log_softmax(z.double(), -1))


@pytest.mark.parametrize("t_estimator,time_sampling", [("sampled", "stratified"), ("sampled", "systematic"),
                                                       ("integrated", "stratified"), ("sampled", "iid")])
def test_bound_matches_exact_enumeration(t_estimator, time_sampling):
    x0, scored, eps = [0, 2, 1, 1, 0, 2], [2, 3, 4, 5], 1e-3  # two clean context tokens, four scored
    net = TinyNet(len(x0), seed=1)
    exact = _enumerate(net, x0, scored, eps)
    mask = torch.zeros(1, len(x0), dtype=torch.bool)
    mask[0, scored] = True
    est = dream_bound_mc(_den(net), torch.tensor([x0]), mask, [7], mask_id=MASK, num_samples=4000,
                         time_sampling=time_sampling, sampling_eps=eps, t_estimator=t_estimator, batch_size=1000)
    se = float(est.stderr[0])
    assert 0 < se < 0.1 * exact
    assert abs(float(est.mean[0]) - exact) < 4 * se, (float(est.mean[0]), exact, se)
    assert est.settings["estimator"] == "dream_nelbo" and est.settings["logits"] == "shifted"


def _joint(T: int, seed: int) -> dict[tuple[int, ...], float]:
    g = np.random.default_rng(seed)
    p = g.dirichlet(np.full(3**T, 0.5))
    return {s: float(q) for s, q in zip(itertools.product(range(3), repeat=T), p)}


def _oracle_raw(joint, T: int):
    """Raw logits of an exact denoiser laid out as Dream's: row i − 1 holds log p(x_i | unmasked of x_1..x_T);
    position 0 is a clean context token, rows with no masked target get zeros."""

    def raw(x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], T + 1, 4, dtype=torch.float64)
        for b in range(x.shape[0]):
            obs = [int(v) for v in x[b, 1:]]
            fit = {s: q for s, q in joint.items() if all(o == MASK or o == si for o, si in zip(obs, s))}
            z = sum(fit.values())
            for i in range(T):
                if obs[i] == MASK:
                    for v in range(3):
                        out[b, i, v] = math.log(sum(q for s, q in fit.items() if s[i] == v) / z)
                    out[b, i, MASK] = -1e9
        return out

    return raw


def test_exact_denoiser_bound_equals_the_log_likelihood():
    T = 3
    joint = _joint(T, seed=4)
    raw = _oracle_raw(joint, T)
    for seq in [(0, 1, 2), (2, 2, 0)]:
        x0 = [1, *seq]
        exact = _enumerate(raw, x0, [1, 2, 3], 0.0)
        assert exact == pytest.approx(-math.log(joint[seq]), rel=1e-9)  # any-order identity at ε = 0
        # the estimator on the same oracle (through the network interface: hidden = raw, head = identity)
        den = shifted_denoiser(raw, lambda h: h, lambda z: torch.log_softmax(z, -1))
        mask = torch.tensor([[False, True, True, True]])
        est = dream_bound_mc(den, torch.tensor([x0]), mask, [3], mask_id=MASK, num_samples=400, sampling_eps=0.0,
                             t_estimator="integrated", batch_size=400)
        assert abs(float(est.mean[0]) + math.log(joint[seq])) < 4 * float(est.stderr[0]) + 1e-9


def test_shift_convention_oracle_at_previous_position_scores_zero():
    x0 = torch.tensor([[1, 0, 2, 2, 1, 0, 1]])
    L = x0.shape[1]

    def point_mass_at_previous(x):  # output at j is a point mass on x0_{j+1}
        out = torch.full((x.shape[0], L, 4), -60.0, dtype=torch.float64)
        for j in range(L - 1):
            out[:, j, x0[0, j + 1]] = 60.0
        return out

    mask = torch.zeros_like(x0, dtype=torch.bool)
    mask[0, 1:] = True
    den = shifted_denoiser(point_mass_at_previous, lambda h: h, lambda z: torch.log_softmax(z, -1))
    est = dream_bound_mc(den, x0, mask, [0], mask_id=MASK, num_samples=64)
    assert 0.0 <= float(est.mean[0]) < 1e-40  # each term log(1 + 3 e^-120): zero in float64
    # read unshifted (the output at i itself), the same network scores badly
    unshifted = lambda x_t, s: torch.log_softmax(point_mass_at_previous(x_t), -1)  # noqa: E731
    bad = mdlm_nelbo_mc(unshifted, x0, mask, [0], mask_id=MASK, schedule=LINEAR, num_samples=64)
    assert float(bad.mean[0]) > 100.0


def test_positional_rows_equal_the_full_shifted_logits():
    net = TinyNet(6, seed=2)
    den = _den(net)
    x = torch.tensor([[0, 3, 1, 3, 3, 2], [3, 1, 3, 0, 2, 3]])
    pos = x == MASK
    full = den(x, None)
    assert torch.equal(den.at_positions(x, None, pos), full[pos])
    assert torch.equal(shift_logits(net(x))[:, 1:], net(x)[:, :-1])
    assert source_positions(pos).tolist() == [0, 2, 3, 6, 7, 10]  # row 0 masks 1,3,4; row 1 masks 0,2,5 (0 reads itself)


def test_context_is_never_masked_and_numbers_do_not_depend_on_batching():
    net = TinyNet(6, seed=3)
    seen = []

    def hidden(x):
        seen.append(x.clone())
        return net.hidden(x)

    den = shifted_denoiser(hidden, net.head, lambda z: torch.log_softmax(z, -1))
    x0 = torch.tensor([[0, 1, 2, 0, 1, 2], [2, 2, 1, 0, 0, 1]])
    mask = torch.tensor([[False, False, True, True, True, True], [False, True, True, True, True, True]])
    a = dream_bound_mc(den, x0, mask, [11, 12], mask_id=MASK, num_samples=8, batch_size=3)
    stacked = torch.cat(seen)
    rows = mask.repeat_interleave(8, 0)
    assert not bool(((stacked == MASK) & ~rows).any())
    b = dream_bound_mc(den, x0[1:], mask[1:], [12], mask_id=MASK, num_samples=8, batch_size=5)
    assert np.allclose(a.draws[1], b.draws[0], rtol=1e-12, atol=0)  # same masks and times; only rounding of the batch
    assert a.settings["stderr"] == "collapsed_strata"
