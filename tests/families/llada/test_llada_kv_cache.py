"""Fast-dLLM's block-wise key/value cache on the LLaDA backbone: the cached forward equals the uncached one on the
positions and states where it claims to be exact, is only approximate elsewhere, and the sampler with the cache
reproduces the uncached sampler exactly where the cache is exact (a one-layer network)."""

from __future__ import annotations

import pytest
import torch

from dlmbench.diffusion.remasking import low_confidence_remasking
from dlmbench.families.llada.backbone import LLaDABackbone
from dlmbench.families.llada.writer import random_state_dict, tiny_llada_config

V, MASK = 64, 63


def _net(n_layers: int, **overrides) -> LLaDABackbone:
    cfg = tiny_llada_config(vocab_size=V, embedding_size=V, mask_token_id=MASK, n_layers=n_layers, **overrides)
    m = LLaDABackbone(cfg, dtype=torch.float64)
    m.load_state_dict(random_state_dict(cfg, seed=7, dtype=torch.float64), strict=True)
    return m.eval()


class _Cached:
    """The backbone as a BlockCachedDenoiser (raw logits), written here so the sampler test does not go through
    the adapter under test."""

    def __init__(self, net):
        self.net = net

    def refresh(self, x):
        return self.net.forward_kv(x)

    def window(self, x_w, state, lo):
        return self.net.forward_window(x_w, state, lo)

    def select(self, state, rows):
        return [(k[rows], v[rows]) for k, v in state]


@pytest.mark.parametrize("overrides", [{}, {"n_heads": 4, "n_kv_heads": 2}], ids=["mha", "gqa"])
def test_window_over_unchanged_tokens_equals_the_full_forward(overrides):
    net = _net(3, **overrides)
    x = torch.randint(0, V - 1, (2, 12), generator=torch.Generator().manual_seed(0))
    x[:, 6:] = MASK
    with torch.no_grad():
        full = net(x)
        refreshed, kv = net.forward_kv(x)
        assert torch.equal(refreshed, full)
        for lo, hi in ((4, 12), (4, 8), (0, 3), (11, 12)):  # prefix window [lo, L) and dual windows [lo, hi)
            got = net.forward_window(x[:, lo:hi], kv, lo)
            assert torch.allclose(got, full[:, lo:hi], rtol=0, atol=1e-10)


def test_one_layer_cache_is_exact_after_the_window_changes():
    net = _net(1)
    x = torch.randint(0, V - 1, (2, 10), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, kv = net.forward_kv(x)
        y = x.clone()
        y[:, 4:7] = torch.tensor([[5, 6, 7], [8, 9, 10]])  # the block changes after the refresh
        for lo, hi in ((4, 10), (4, 7)):
            assert torch.allclose(net.forward_window(y[:, lo:hi], kv, lo), net(y)[:, lo:hi], rtol=0, atol=1e-10)


def test_deeper_cache_is_approximate_after_the_window_changes():
    """What the docstrings call approximate is: with two layers the prefix's cached keys/values are stale."""
    net = _net(2)
    x = torch.randint(0, V - 1, (1, 10), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        _, kv = net.forward_kv(x)
        y = x.clone()
        y[:, 4:7] = torch.tensor([5, 6, 7])
        diff = (net.forward_window(y[:, 4:], kv, 4) - net(y)[:, 4:]).abs().max()
    assert diff > 1e-6


@pytest.mark.parametrize("cache", ["prefix", "dual"])
@pytest.mark.parametrize("rule", [{}, {"threshold": 0.2}, {"factor": 1.5}], ids=["quota", "threshold", "factor"])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_sampler_with_cache_equals_uncached_on_a_one_layer_network(cache, rule, temperature):
    net = _net(1)
    x = torch.full((4, 3 + 8), MASK, dtype=torch.long)
    x[:, :3] = torch.tensor([3, 4, 5])
    kw = dict(mask_id=MASK, prompt_length=3, steps=4, block_length=4, temperature=temperature, seeds=[0, 1, 2, 3], **rule)
    with torch.no_grad():
        want = low_confidence_remasking(net, x, **kw)
        got = low_confidence_remasking(_Cached(net), x, cache=cache, **kw)
    assert torch.equal(got.tokens, want.tokens)
    assert got.row_nfe.tolist() == want.row_nfe.tolist()


def test_sampler_with_cache_on_a_deeper_network_fills_every_mask_in_the_same_steps():
    net = _net(2)
    x = torch.full((3, 2 + 8), MASK, dtype=torch.long)
    x[:, :2] = torch.tensor([3, 4])
    with torch.no_grad():
        for cache in ("prefix", "dual"):
            out = low_confidence_remasking(_Cached(net), x, mask_id=MASK, prompt_length=2, steps=8, block_length=4, cache=cache)
            assert (out.tokens[:, :2] == torch.tensor([3, 4])).all() and (out.tokens != MASK).all()
            assert out.row_nfe.tolist() == [8, 8, 8]
