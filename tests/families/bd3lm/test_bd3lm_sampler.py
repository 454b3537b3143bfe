"""The block sampler against an oracle whose joint over V^L is known: block-by-block first-hitting and cached
ancestral sampling with the exact conditionals must draw from that joint (chi-square over all V^L outcomes);
plus seeding per row, the clean prefix, and one block = the plain masked-diffusion sampler. (Ancestral steps draw
the tokens that unmask together independently, so they are exact only in the limit of many steps.)"""

from __future__ import annotations

import itertools

import pytest
import torch

from dlmbench.diffusion.masked_samplers import first_hitting
from dlmbench.diffusion.schedules import LogLinearNoise
from dlmbench.families.bd3lm.samplers import block_semi_ar
from dlmbench.seeding import request_seed

V, L, BS = 2, 4, 2
MASK = V
F64 = torch.float64
ALL_X = torch.tensor(list(itertools.product(range(V), repeat=L)))


def joint(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    gam = torch._standard_gamma(torch.full((V**L,), 0.5, dtype=F64), generator=g)
    return 0.9 * gam / gam.sum() + 0.1 / V**L


class BlockCausalOracle:
    """p(x_i = y | the visible tokens of x[:e]) with the positions from e on marginalised: what a perfect
    block-causal network returns for a view x [B, e] whose earlier blocks are clean."""

    def __init__(self, p):
        self.p = p
        self.calls = 0

    def __call__(self, x, sigma):
        self.calls += 1
        e = x.shape[1]
        ok = ((x[:, None, :] == MASK) | (x[:, None, :] == ALL_X[None, :, :e])).all(-1)  # [B, N]
        w = ok.to(F64) * self.p[None]
        onehot = torch.nn.functional.one_hot(ALL_X[:, :e], V).to(F64).reshape(len(ALL_X), e * V)
        probs = (w @ onehot).reshape(-1, e, V) / w.sum(-1)[:, None, None]
        return torch.cat([probs.log(), torch.full((x.shape[0], e, 1), float("-inf"), dtype=F64)], dim=-1)


def chi_square(samples: torch.Tensor, p: torch.Tensor) -> float:
    idx = (samples * (V ** torch.arange(L - 1, -1, -1))).sum(-1)
    counts = torch.bincount(idx, minlength=V**L).to(F64)
    expected = p * len(samples)
    return float(((counts - expected) ** 2 / expected).sum())


@pytest.mark.parametrize("sampler", ["first_hitting", "ddpm_cache"])
def test_block_sampler_draws_from_the_oracle_joint(sampler):
    p = joint(2)
    n = 2000 if sampler == "first_hitting" else 600
    x = torch.full((n, L), MASK)
    out = block_semi_ar(BlockCausalOracle(p), x, block_size=BS, mask_id=MASK, seeds=list(range(n)),
                        schedule=LogLinearNoise(0.0), sampler=sampler, steps=64, final="sample")
    assert not (out.tokens == MASK).any()
    # 15 degrees of freedom: P(chi2 > 37.7) = 0.001
    assert chi_square(out.tokens, p) < 37.7
    if sampler == "first_hitting":
        assert out.row_nfe.tolist() == [L] * n  # one network call per token


def test_prefix_is_kept_and_rows_do_not_depend_on_the_batch():
    p = joint(3)
    x = torch.full((5, L), MASK)
    x[:, 0] = 1
    kw = dict(block_size=BS, mask_id=MASK, schedule=LogLinearNoise(0.0), sampler="first_hitting")
    full = block_semi_ar(BlockCausalOracle(p), x, seeds=[10, 11, 12, 13, 14], **kw)
    alone = block_semi_ar(BlockCausalOracle(p), x[2:3], seeds=[12], **kw)
    assert (full.tokens[:, 0] == 1).all()
    assert torch.equal(full.tokens[2], alone.tokens[0])
    assert full.row_nfe.tolist() == [L - 1] * 5


def test_one_block_is_the_plain_first_hitting_sampler():
    p = joint(4)
    x = torch.full((3, L), MASK)
    kw = dict(mask_id=MASK, schedule=LogLinearNoise(0.0))
    got = block_semi_ar(BlockCausalOracle(p), x, block_size=L, seeds=[1, 2, 3], sampler="first_hitting", **kw)
    want = first_hitting(BlockCausalOracle(p), x, seeds=[request_seed(s, "block", 0) for s in (1, 2, 3)], **kw)
    assert torch.equal(got.tokens, want.tokens)


def test_window_limits_what_the_denoiser_reads():
    seen = []

    def recorder(x, sigma):
        seen.append(x.shape[1])
        return torch.zeros(x.shape[0], x.shape[1], V + 1, dtype=F64)

    x = torch.full((1, 8), MASK)
    block_semi_ar(recorder, x, block_size=2, mask_id=MASK, seeds=[0], schedule=LogLinearNoise(0.0), window=4)
    assert max(seen) == 4 and set(seen) == {2, 4}
