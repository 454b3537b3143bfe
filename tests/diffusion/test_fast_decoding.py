"""Fast-dLLM's parallel decoding rule and its use in LLaDA's sampler (threshold / factor), checked against plain loops
and against the one-token-per-step sampler it must reduce to."""

from __future__ import annotations

import itertools

import pytest
import torch
from test_samplers_oracle import JointOracle, random_joint

from dlmbench.diffusion.remasking import low_confidence_remasking, parallel_commit
from dlmbench.diffusion.sampling import masked_canvas


def _commit_loop(conf: list[float], eligible: list[bool], threshold=None, factor=None) -> set[int]:
    """The rule written from the paper's words, one row: sort eligible positions by confidence (ties: lower
    position first); threshold: all with c >= tau, and the top one; factor: the largest n with
    (n + 1)(1 - c_n) <= f for every k <= n, at least one."""
    idx = sorted((i for i in range(len(conf)) if eligible[i]), key=lambda i: (-conf[i], i))
    if not idx:
        return set()
    if threshold is not None:
        return {idx[0]} | {i for i in idx if conf[i] >= threshold}
    n = 0
    for k, i in enumerate(idx, start=1):
        if (k + 1) * (1 - conf[i]) <= factor:
            n = k
        else:
            break
    return set(idx[: max(n, 1)])


@pytest.mark.parametrize("rule", [{"threshold": 0.9}, {"threshold": 0.5}, {"threshold": 1.0}, {"factor": 1.0}, {"factor": 0.3}])
def test_parallel_commit_equals_a_plain_loop(rule):
    g = torch.Generator().manual_seed(5)
    for _ in range(30):
        conf = torch.rand(4, 9, generator=g, dtype=torch.float64) ** 0.2  # many near 1
        conf[0, 3] = conf[0, 5]  # a tie
        eligible = torch.rand(4, 9, generator=g) < 0.7
        eligible[1] = False  # a row with nothing to commit
        got = parallel_commit(conf, eligible, **rule)
        for r in range(4):
            want = _commit_loop(conf[r].tolist(), eligible[r].tolist(), **rule)
            assert set(got[r].nonzero().squeeze(-1).tolist()) == want


def _oracle_joint(v: int, length: int, seed: int) -> JointOracle:
    return JointOracle(random_joint(v, length, seed=seed, concentration=0.3))


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("block", [4, 2])
def test_threshold_one_equals_one_token_per_step(temperature, block):
    """threshold = 1 commits one token per step: the outputs, row NFE and draws of steps = gen_length."""
    o = _oracle_joint(3, 4, seed=11)
    x = masked_canvas(16, 5, o.mask_id, prefix=[1])
    kw = dict(mask_id=o.mask_id, prompt_length=1, block_length=block, temperature=temperature, seeds=list(range(16)))
    want = low_confidence_remasking(lambda z: _pad(o, z), x, steps=4, **kw)
    got = low_confidence_remasking(lambda z: _pad(o, z), x, steps=2 if block == 2 else 1, threshold=1.0, **kw)
    assert torch.equal(got.tokens, want.tokens)
    assert got.row_nfe.tolist() == want.row_nfe.tolist() == [4] * 16


def _pad(o: JointOracle, z: torch.Tensor) -> torch.Tensor:
    """The oracle over the 4 positions after a 1-token prompt it ignores (logits of the prompt row: zeros)."""
    lp = o.time_free(z[:, 1:])
    return torch.cat([torch.zeros_like(lp[:, :1]), lp], dim=1)


def test_threshold_saves_steps_on_a_confident_model_and_counts_per_row():
    # a joint that is almost a point mass: every position is confident at once
    joint = torch.full((3,) * 4, 1e-6, dtype=torch.float64)
    joint[1, 2, 0, 1] = 1.0
    o = JointOracle(joint / joint.sum())
    x = masked_canvas(3, 4, o.mask_id)
    x[2, :] = torch.tensor([1, 2, 0, o.mask_id])  # one row with a single masked position
    out = low_confidence_remasking(o.time_free, x, mask_id=o.mask_id, steps=1, threshold=0.9)
    assert out.tokens[:2].tolist() == [[1, 2, 0, 1]] * 2
    assert out.row_nfe.tolist() == [1, 1, 1]
    assert out.nfe == 1


def test_factor_and_threshold_never_exceed_one_step_per_token_and_fill_every_mask():
    for seed, rule in itertools.product(range(4), [{"threshold": 0.7}, {"factor": 1.0}]):
        o = _oracle_joint(3, 4, seed=40 + seed)
        x = masked_canvas(8, 4, o.mask_id)
        out = low_confidence_remasking(o.time_free, x, mask_id=o.mask_id, steps=2, block_length=2, temperature=1.0,
                                       seeds=list(range(8)), **rule)
        assert (out.tokens != o.mask_id).all()
        assert (out.row_nfe <= 4).all() and (out.row_nfe >= 2).all()  # at least one step per block


def test_bad_fast_decoding_arguments():
    o = _oracle_joint(3, 2, seed=1)
    x = masked_canvas(1, 2, o.mask_id)
    for kw in ({"threshold": 0.0}, {"threshold": 1.5}, {"factor": 0.0}, {"threshold": 0.9, "factor": 1.0},
               {"threshold": 0.9, "remasking": "random", "seed": 0}, {"cache": "prefix"}, {"cache": "full"}):
        with pytest.raises(ValueError):
            low_confidence_remasking(o.time_free, x, mask_id=o.mask_id, steps=2, **kw)
