"""Categorical draws (dlmbench.diffusion.categorical) against the exact distributions they should follow.

Chi-square goodness of fit with fixed seeds; critical values are the upper 1e-3 quantiles of the
chi-square distribution (df=3: 16.266, df=4: 18.467), i.e. the test fails with probability 1e-3 if
the sampler is exact.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlmbench.diffusion.categorical import filter_logits, sample_from_logits, sample_from_probs
from dlmbench.seeding import generator

CHI2_CRIT = {3: 16.266, 4: 18.467}


def _chi2(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = counts.sum() * probs
    keep = probs > 0
    return float((((counts - expected) ** 2)[keep] / expected[keep]).sum())


def _draw(probs: np.ndarray, n: int, seed: int, precision: str = "float64") -> np.ndarray:
    p = torch.tensor(probs, dtype=torch.float64).expand(n, -1)
    idx = sample_from_probs(p, generator(seed), precision).numpy()
    return np.bincount(idx, minlength=len(probs))


def test_float64_frequencies_match_including_rare_token():
    probs = np.array([0.5, 0.3, 0.15, 0.0495, 0.0005])  # the last token: 100 expected draws in 2e5
    counts = _draw(probs, 200_000, seed=11)
    assert _chi2(counts, probs) < CHI2_CRIT[4]
    # the rare token alone within 4 standard deviations of its binomial expectation
    n, p = counts.sum(), probs[-1]
    assert abs(counts[-1] - n * p) < 4 * np.sqrt(n * p * (1 - p))


def test_zero_probability_never_drawn():
    probs = np.array([0.0, 0.7, 0.0, 0.3])
    counts = _draw(probs, 50_000, seed=3)
    assert counts[0] == counts[2] == 0


def test_float32_reference_sampler_also_close_on_a_coarse_distribution():
    # the float32 truncation only touches events of probability ~2^-24 per draw; coarse masses agree
    probs = np.array([0.4, 0.3, 0.2, 0.1])
    counts = _draw(probs, 100_000, seed=5, precision="float32")
    assert _chi2(counts, probs) < CHI2_CRIT[3]


def _toy_logits() -> torch.Tensor:
    return torch.log(torch.tensor([0.05, 0.4, 0.02, 0.25, 0.2, 0.08], dtype=torch.float64))


@pytest.mark.parametrize(
    "kw, allowed",
    [({"top_k": 3}, [1, 3, 4]), ({"top_p": 0.6}, [1, 3]), ({"top_p": 0.65}, [1, 3]), ({"top_p": 0.66}, [1, 3, 4])],
)
def test_top_k_top_p_allowed_set_and_renormalised_frequencies(kw, allowed):
    # sorted masses: 0.4, 0.25, 0.2, 0.08, ...; nucleus = smallest prefix whose mass reaches p
    logits = _toy_logits()
    kept = torch.isfinite(filter_logits(logits, **kw))
    assert sorted(torch.nonzero(kept).flatten().tolist()) == allowed
    n = 60_000
    idx = sample_from_logits(logits.expand(n, -1), generator(9), **kw).numpy()
    counts = np.bincount(idx, minlength=6)
    assert set(np.nonzero(counts)[0].tolist()) <= set(allowed)
    p = np.exp(logits.numpy())
    target = np.zeros(6)
    target[allowed] = p[allowed] / p[allowed].sum()
    df = len(allowed) - 1
    if df in CHI2_CRIT:
        assert _chi2(counts, target) < CHI2_CRIT[df]
    else:  # two tokens: binomial within 4 standard deviations
        q = target[allowed[0]]
        assert abs(counts[allowed[0]] - n * q) < 4 * np.sqrt(n * q * (1 - q))


def test_temperature_scales_logits():
    logits = _toy_logits()
    T = 2.0
    n = 60_000
    idx = sample_from_logits(logits.expand(n, -1), generator(4), temperature=T).numpy()
    target = torch.softmax(logits / T, -1).numpy()
    counts = np.bincount(idx, minlength=6)
    assert _chi2(counts, target) < 20.515  # df=5, 1e-3
    assert (sample_from_logits(logits.expand(3, -1), generator(0), temperature=0) == 1).all()


def test_same_seed_same_draws():
    logits = torch.randn(4, 50, generator=generator(1), dtype=torch.float64)
    a = sample_from_logits(logits, generator(123), top_p=0.9)
    b = sample_from_logits(logits, generator(123), top_p=0.9)
    assert torch.equal(a, b)


@pytest.mark.parametrize("precision, expected", [("float64", 1), ("float32", 0)])
def test_rare_tail_token_reachable_only_in_float64(monkeypatch, precision, expected):
    """A token of probability 1e-9 next to one of probability ~1: frequency testing it needs ~1e10 draws, so
    this checks the support of the sampler at the uniforms most favourable to the rare token instead. The
    race draws the rare token iff p_r / E_r > p_c / E_c, so it needs a tiny E_r and a large E_c.
    float64 (E = -log1p(-u)): u_r = 2^-40 (a value float64 uniforms take) gives E_r ≈ 9e-13 and the rare
    token wins. float32 reference (E = 1e-10 - log(u + 1e-10)): the smallest E_r comes from the largest
    float32 below 1, u_r = 1 - 2^-24 (E_r ≈ 6e-8), the largest E_c from u_c = 0 (E_c ≈ 23); even then
    p_r / E_r ≈ 0.017 < p_c / E_c ≈ 0.043, so float32 never emits the token."""
    import dlmbench.diffusion.categorical as cat

    probs = torch.tensor([[1 - 1e-9, 1e-9]], dtype=torch.float64)
    f32_below_one = float(torch.nextafter(torch.tensor(1.0, dtype=torch.float32), torch.tensor(0.0, dtype=torch.float32)))
    assert f32_below_one == 1.0 - 2.0**-24
    u_common, u_rare = {"float64": (1.0 - 2.0**-53, 2.0**-40), "float32": (0.0, f32_below_one)}[precision]

    def extreme_rand(shape, dtype, generator, device):  # noqa: ARG001 - same signature as the call site
        u = torch.full(shape, u_common, dtype=dtype, device=device)
        u[..., 1] = u_rare
        return u

    monkeypatch.setattr(cat.torch, "rand", extreme_rand)
    assert int(sample_from_probs(probs, generator(0), precision)[0]) == expected
