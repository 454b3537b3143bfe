"""LLaDA remasking (random / low-confidence, blocks, CFG) and diffusion-vs-ar top-k decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_samplers_oracle import JointOracle, chi2_pvalue, counts_of, random_joint

from dlmbench.diffusion.remasking import low_confidence_remasking, topk_decoding, transfer_counts
from dlmbench.diffusion.sampling import masked_canvas
from dlmbench.seeding import generator

V, L, N = 3, 3, 20_000


@pytest.fixture(scope="module")
def oracle():
    return JointOracle(random_joint(V, L, seed=30))


@pytest.mark.parametrize("block", [3, 1])
def test_random_remasking_one_token_per_step_is_exact(oracle, block):
    x = masked_canvas(N, L, oracle.mask_id)
    out = low_confidence_remasking(oracle.time_free, x, mask_id=oracle.mask_id, steps=L, block_length=block, remasking="random", temperature=1.0, generator=generator(1))
    assert out.nfe == L
    assert chi2_pvalue(counts_of(out.tokens, V), oracle.p.numpy()) > 1e-3


def test_random_remasking_with_prompt_samples_the_conditional(oracle):
    x = masked_canvas(N, L, oracle.mask_id, prefix=[1])
    out = low_confidence_remasking(oracle.time_free, x, mask_id=oracle.mask_id, prompt_length=1, steps=2, remasking="random", temperature=1.0, generator=generator(2))
    assert (out.tokens[:, 0] == 1).all()
    j = oracle.joint.numpy()[1]
    assert chi2_pvalue(np.bincount((out.tokens[:, 1] * V + out.tokens[:, 2]).numpy(), minlength=V * V), (j / j.sum()).reshape(-1)) > 1e-3


def _greedy_reference(joint, mask):
    """Low-confidence remasking at T=0, one token per step, written as a plain loop over partial states."""
    o = JointOracle(joint)
    z = [mask] * joint.ndim
    while mask in z:
        lp = o.log_probs(torch.tensor([z]))[0, :, : joint.shape[0]]
        best = max((float(lp[i].max()), -i, i) for i in range(len(z)) if z[i] == mask)
        i = best[2]
        z[i] = int(lp[i].argmax())
    return z


def test_low_confidence_greedy_matches_a_plain_loop():
    for seed in range(5):
        joint = random_joint(3, 3, seed=100 + seed)
        o = JointOracle(joint)
        out = low_confidence_remasking(o.time_free, masked_canvas(1, 3, 3), mask_id=3, steps=3)
        assert out.tokens[0].tolist() == _greedy_reference(joint, 3)


def test_transfer_counts_split_the_block_evenly():
    c = transfer_counts(torch.tensor([7, 2, 0]), 3)
    assert c.tolist() == [[3, 2, 2], [1, 1, 0], [0, 0, 0]]


def test_blocks_are_filled_left_to_right_and_prompt_is_kept():
    seen = []

    def den(x):
        seen.append(x.clone())
        return torch.zeros(*x.shape, 5)

    x = masked_canvas(2, 7, 4, prefix=[1, 2, 3])
    out = low_confidence_remasking(den, x, mask_id=4, prompt_length=3, steps=4, block_length=2, remasking="random", temperature=1.0, seeds=[5, 6])
    assert out.nfe == 4 and torch.equal(out.tokens[:, :3], x[:, :3]) and (out.tokens != 4).all()
    # after the two steps of block 0, positions 3-4 are decoded and 5-6 untouched
    assert (seen[2][:, 3:5] != 4).all() and (seen[2][:, 5:] == 4).all()


def test_cfg_combines_conditional_and_unconditional_logits():
    cond = torch.tensor([2.0, 1.0, 0.0, -9.0])
    un = torch.tensor([2.5, 0.0, 0.0, -9.0])
    # guided = un + (w+1)(cond - un): w = 1 -> [1.5, 2.0, 0, ...]: token 1 wins though cond prefers 0
    den = lambda x: cond.expand(*x.shape, 4)  # noqa: E731
    unc = lambda x: un.expand(*x.shape, 4)  # noqa: E731
    x = masked_canvas(1, 2, 3)
    plain = low_confidence_remasking(den, x, mask_id=3, steps=2)
    guided = low_confidence_remasking(den, x, mask_id=3, steps=2, cfg_scale=1.0, uncond_denoiser=unc)
    assert plain.tokens.tolist() == [[0, 0]] and guided.tokens.tolist() == [[1, 1]]
    assert plain.nfe == 2 and guided.nfe == 4


def test_cfg_default_unconditional_pass_masks_the_prompt():
    inputs = []

    def den(x):
        inputs.append(x.clone())
        return torch.zeros(*x.shape, 4)

    x = masked_canvas(1, 3, 3, prefix=[0, 1])
    low_confidence_remasking(den, x, mask_id=3, prompt_length=2, steps=1, cfg_scale=0.5)
    assert inputs[0].tolist() == [[0, 1, 3]] and inputs[1].tolist() == [[3, 3, 3]]


def test_per_row_seeds_do_not_depend_on_the_batch(oracle):
    x = masked_canvas(6, L, oracle.mask_id)
    a = low_confidence_remasking(oracle.time_free, x, mask_id=oracle.mask_id, steps=L, remasking="random", temperature=1.0, seeds=list(range(6)))
    b = low_confidence_remasking(oracle.time_free, x[2:4], mask_id=oracle.mask_id, steps=L, remasking="random", temperature=1.0, seeds=[2, 3])
    assert torch.equal(a.tokens[2:4], b.tokens)


def _topk_reference(den, x, mask_id, steps):
    """diffusion-vs-ar deterministic-linear decoding, written per row with Python lists."""
    rows = []
    for r in range(x.shape[0]):
        src = x[r].tolist()
        maskable = [t == mask_id for t in src]
        n = sum(maskable)
        xt = list(src)
        for t in range(steps - 1, -1, -1):
            lp = den(torch.tensor([xt]))[0]
            lp[:, mask_id] = float("-inf")
            lp = torch.log_softmax(lp, -1)
            x0 = [int(lp[i].argmax()) if maskable[i] else src[i] for i in range(len(src))]
            if t == 0:
                xt = x0
                break
            k = int(n * t / steps)
            cand = sorted((float(lp[i].max()), i) for i in range(len(src)) if maskable[i])
            low = {i for _, i in cand[:k]}
            xt = [mask_id if i in low else x0[i] for i in range(len(src))]
        rows.append(xt)
    return rows


def test_topk_decoding_deterministic_matches_reference_loop():
    torch.manual_seed(0)
    w = torch.randn(5, 6, 5, dtype=torch.float64)

    def den(x):  # a tiny "network": logits at each position depend on its token and on the whole input
        xd = x.double()
        return xd[..., None] * w[0, : x.shape[1], :5][None] + xd.sum(-1)[:, None, None] * w[1, : x.shape[1], :5][None]

    x = torch.tensor([[1, 4, 4, 2, 4, 4], [4, 4, 0, 4, 4, 3]])
    out = topk_decoding(den, x, mask_id=4, steps=4, strategy="deterministic-linear")
    assert out.nfe == 4
    assert out.tokens.tolist() == _topk_reference(den, x, 4, 4)
    assert out.tokens[0, 0] == 1 and out.tokens[0, 3] == 2 and out.tokens[1, 2] == 0 and out.tokens[1, 5] == 3


def test_topk_decoding_stochastic_keeps_source_and_fills_everything(oracle):
    x = masked_canvas(64, L, oracle.mask_id, fixed={1: 0})
    out = topk_decoding(oracle.time_free, x, mask_id=oracle.mask_id, steps=3, strategy="stochastic0.5-cosine", generator=generator(3))
    assert (out.tokens[:, 1] == 0).all() and (out.tokens != oracle.mask_id).all() and out.nfe == 3
