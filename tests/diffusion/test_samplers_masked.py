"""MDLM ancestral / cached ancestral / first-hitting / semi-AR samplers against exact oracles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_samplers_oracle import (
    JointOracle,
    ancestral_law,
    chi2_pvalue,
    counts_of,
    law_vector,
    random_joint,
    tv,
)

from dlmbench.diffusion.schedules import LogLinearNoise
from dlmbench.diffusion.sampling import SamplerOutput, masked_canvas
from dlmbench.diffusion.masked_samplers import ddpm, ddpm_cache, first_hitting, mdlm_ancestral, semi_autoregressive
from dlmbench.seeding import generator

V, L, N = 3, 3, 20_000


@pytest.fixture(scope="module")
def oracle():
    return JointOracle(random_joint(V, L, seed=10))


def _ddpm_unmask_probs(steps: int, eps: float = 1e-5) -> list[float]:
    t = np.linspace(1.0, eps, steps + 1)
    return [1.0 - t[i + 1] / t[i] for i in range(steps)]  # 1 - m_s/m_t for the log-linear schedule


def test_first_hitting_reproduces_the_joint_and_uses_one_call_per_token(oracle):
    x = masked_canvas(N, L, oracle.mask_id)
    out = first_hitting(oracle.log_probs, x, mask_id=oracle.mask_id, generator=generator(1))
    assert out.nfe == L and torch.equal(out.row_nfe, torch.full((N,), L))
    assert chi2_pvalue(counts_of(out.tokens, V), oracle.p.numpy()) > 1e-3


def test_first_hitting_times_follow_the_hitting_law(oracle):
    # with n masked tokens at level m, the next event is at m * U^(1/n): record the sigmas the denoiser sees
    seen = []

    def spy(x_t, sigma):
        seen.append(sigma.clone())
        return oracle.log_probs(x_t, sigma)

    first_hitting(spy, masked_canvas(N, L, oracle.mask_id), mask_id=oracle.mask_id, generator=generator(2), schedule=LogLinearNoise(eps=0.0))
    m1 = -torch.expm1(-seen[0])  # first event: max of L uniforms = U^(1/L) -> P(m <= a) = a^L
    for a in (0.3, 0.6, 0.9):
        frac = float((m1 <= a).double().mean())
        assert abs(frac - a**L) < 4 * np.sqrt(a**L * (1 - a**L) / N)
    m_last = -torch.expm1(-seen[-1])  # last event: min of L uniforms -> P(m <= a) = 1 - (1-a)^L
    frac = float((m_last <= 0.2).double().mean())
    want = 1 - 0.8**L
    assert abs(frac - want) < 4 * np.sqrt(want * (1 - want) / N)


@pytest.mark.parametrize("steps", [2, 8])
def test_ddpm_matches_exact_dynamic_program(oracle, steps):
    out = ddpm(oracle.log_probs, masked_canvas(N, L, oracle.mask_id), mask_id=oracle.mask_id, steps=steps, generator=generator(3))
    law = law_vector(ancestral_law(oracle.joint, _ddpm_unmask_probs(steps), final="argmax"), V, L)
    assert chi2_pvalue(counts_of(out.tokens, V), law) > 1e-3
    assert out.nfe == steps or out.nfe == steps + 1  # +1 only if a mask survived the loop


def test_ancestral_total_variation_decreases_with_steps(oracle):
    joint = oracle.p.numpy()
    tvs = [tv(law_vector(ancestral_law(oracle.joint, _ddpm_unmask_probs(k), final="argmax"), V, L), joint) for k in (1, 4, 32, 256)]
    assert all(a > b for a, b in zip(tvs, tvs[1:])), tvs
    assert tvs[-1] < 0.01 * tvs[0] + 1e-3
    # and the sampler itself at many steps is statistically indistinguishable from the joint
    out = ddpm_cache(oracle.log_probs, masked_canvas(N, L, oracle.mask_id), mask_id=oracle.mask_id, steps=256, generator=generator(4))
    assert chi2_pvalue(counts_of(out.tokens, V), joint) > 1e-3


def test_cached_sampler_same_law_and_fewer_calls(oracle):
    steps = 64
    x = masked_canvas(N, L, oracle.mask_id)
    out = ddpm_cache(oracle.log_probs, x, mask_id=oracle.mask_id, steps=steps, generator=generator(5))
    law = law_vector(ancestral_law(oracle.joint, _ddpm_unmask_probs(steps), final="argmax"), V, L)
    assert chi2_pvalue(counts_of(out.tokens, V), law) > 1e-3
    # a row is evaluated once at the start and once after each step that changed it (at most L - 1 useful
    # re-evaluations: after the last change nothing is left to predict), +1 if a mask survives the loop
    assert out.nfe <= steps + 1
    assert int(out.row_nfe.max()) <= L + 1 and float(out.row_nfe.double().mean()) < L + 0.01
    plain = ddpm(oracle.log_probs, x[:64], mask_id=oracle.mask_id, steps=steps, generator=generator(5))
    assert plain.nfe >= steps


def test_cached_and_plain_ddpm_agree_draw_for_draw_with_per_row_seeds(oracle):
    # with a time-agnostic denoiser the cache changes no probability, and per-row seeds make draws
    # independent of which rows are evaluated together
    x = masked_canvas(50, L, oracle.mask_id)
    seeds = list(range(100, 150))
    a = ddpm(oracle.log_probs, x, mask_id=oracle.mask_id, steps=16, seeds=seeds)
    b = ddpm_cache(oracle.log_probs, x, mask_id=oracle.mask_id, steps=16, seeds=seeds)
    c = ddpm_cache(oracle.log_probs, x[7:9], mask_id=oracle.mask_id, steps=16, seeds=seeds[7:9])
    assert torch.equal(a.tokens, b.tokens) and torch.equal(b.tokens[7:9], c.tokens)
    assert b.nfe < a.nfe


def test_infilling_fixed_tokens_never_change_and_holes_follow_the_conditional(oracle):
    m = oracle.mask_id
    fixed = {1: 2}
    x = masked_canvas(N, L, m, fixed=fixed)
    j = oracle.joint.numpy()
    cond = (j[:, 2, :] / j[:, 2, :].sum()).reshape(-1)  # p(x0, x2 | x1 = 2)
    for sampler in ("first_hitting", "ddpm"):
        if sampler == "first_hitting":
            out = first_hitting(oracle.log_probs, x, mask_id=m, generator=generator(6))
            assert out.nfe == 2
            want = cond
        else:
            out = ddpm_cache(oracle.log_probs, x, mask_id=m, steps=8, generator=generator(6))
            law = ancestral_law(oracle.joint, _ddpm_unmask_probs(8), final="argmax", canvas=(m, 2, m))
            want = law_vector(law, V, L).reshape(V, V, V)[:, 2, :].reshape(-1)
        assert (out.tokens[:, 1] == 2).all()
        holes = out.tokens[:, [0, 2]]
        assert chi2_pvalue(np.bincount((holes[:, 0] * V + holes[:, 1]).numpy(), minlength=V * V), want) > 1e-3


def _product_oracle(marginals: torch.Tensor, mask_id: int):
    """A denoiser whose clean distribution at every position is ``marginals [L, V]`` (independent)."""

    def den(x_t, sigma=None):
        lp = marginals.log()[None].expand(x_t.shape[0], -1, -1)
        return torch.cat([lp, torch.full((*lp.shape[:2], 1), float("-inf"), dtype=lp.dtype)], dim=-1)

    return den


def test_top_p_never_leaves_the_nucleus_and_renormalises():
    marg = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.05, 0.1, 0.25, 0.6]], dtype=torch.float64)
    # nucleus at p = 0.7: tokens whose preceding mass (descending) is < 0.7
    nucleus = [[0, 1], [3, 2]]
    den = _product_oracle(marg, 4)
    x = masked_canvas(N, 2, 4)
    for name, fn, kw in (("fh", first_hitting, {}), ("ddpm", ddpm, {"steps": 16}), ("cache", ddpm_cache, {"steps": 16})):
        out = fn(den, x, mask_id=4, generator=generator(7), top_p=0.7, **kw)
        for i in range(2):
            col = out.tokens[:, i]
            assert set(col.unique().tolist()) <= set(nucleus[i]), name
            keep = marg[i, nucleus[i]].numpy()
            c = np.array([(col == k).sum().item() for k in nucleus[i]])
            assert chi2_pvalue(c, keep / keep.sum()) > 1e-3, name


def test_semi_autoregressive_windows_sample_a_markov_chain():
    # a stationary Markov chain; the exact window denoiser of length W conditions correctly on the kept
    # prefix, so the stitched 5-token sequences follow the chain's joint exactly
    v, w, stride, total = 3, 3, 2, 5
    trans = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]], dtype=torch.float64)
    evals, evecs = np.linalg.eig(trans.numpy().T)
    pi0 = np.real(evecs[:, np.argmin(np.abs(evals - 1))])
    pi0 = torch.tensor(pi0 / pi0.sum())

    def chain(n):
        j = pi0.clone()
        for _ in range(n - 1):
            j = j[..., None] * trans.reshape([1] * (j.ndim - 1) + [v, v])
        return j

    win = JointOracle(chain(w))
    n = 20_000

    def run(canvas, r):
        return first_hitting(win.log_probs, canvas, mask_id=v, seeds=[1000 * r + i for i in range(canvas.shape[0])])

    out = semi_autoregressive(run, batch=n, total_length=total, window=w, stride=stride, mask_id=v)
    assert out.tokens.shape == (n, total)
    assert out.nfe == w + stride  # first window: w tokens; then one window of `stride` new tokens
    assert chi2_pvalue(counts_of(out.tokens, v), chain(total).reshape(-1).numpy()) > 1e-3


def test_samplers_never_touch_unmasked_tokens_even_with_a_bad_denoiser():
    # a denoiser that puts all mass on token 0 everywhere, including at unmasked positions
    def bad(x_t, sigma=None):
        lp = torch.full((*x_t.shape, 4), float("-inf"), dtype=torch.float64)
        lp[..., 0] = 0.0
        return lp

    x = torch.tensor([[3, 2, 3, 1], [1, 3, 3, 2]])
    for out in (
        first_hitting(bad, x, mask_id=3, generator=generator(0)),
        ddpm(bad, x, mask_id=3, steps=4, generator=generator(0)),
        ddpm_cache(bad, x, mask_id=3, steps=4, generator=generator(0)),
    ):
        assert isinstance(out, SamplerOutput)
        keep = x != 3
        assert torch.equal(out.tokens[keep], x[keep]) and (out.tokens[~keep] == 0).all()


def test_unpacks_as_tokens_and_nfe():
    oracle = JointOracle(random_joint(2, 2, seed=0))
    toks, nfe = mdlm_ancestral(oracle.log_probs, masked_canvas(4, 2, 2), mask_id=2, steps=3, generator=generator(0))
    assert toks.shape == (4, 2) and isinstance(nfe, int)
