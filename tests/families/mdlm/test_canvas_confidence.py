"""The ``confidence`` sampler of the canvas families (MDLM, SEDD): LLaDA's low-confidence remasking over the canvas
with Fast-dLLM's parallel rule, through the real loading path of tiny checkpoints."""

from __future__ import annotations

import pytest
import torch
from tiny_dit import make_tiny

from dlmbench.errors import BadSetting
from dlmbench.families import load_model
from dlmbench.registry import Registry


@pytest.fixture(scope="module", params=["mdlm", "sedd"])
def tiny(request, tmp_path_factory):
    info = make_tiny(tmp_path_factory.mktemp(request.param), request.param, max_length=32)
    return load_model(Registry.default([info["specs"]]).model(f"tiny-{request.param}"))


def test_threshold_one_equals_one_token_per_step(tiny):
    for temperature in (0.0, 1.0):
        want = tiny.sample(3, 8, prefix=[5, 6], steps=8, seed=2, sampler="confidence", temperature=temperature)
        got = tiny.sample(3, 8, prefix=[5, 6], steps=1, seed=2, sampler="confidence", temperature=temperature, threshold=1.0)
        assert got.tokens == want.tokens
        assert got.settings["nfe_per_sample"] == want.settings["nfe_per_sample"] == 8.0
        assert got.settings["sampler"] == "confidence" and got.settings["threshold"] == 1.0


def test_greedy_one_token_per_step_equals_a_plain_most_confident_loop(tiny):
    """Temperature 0, one token per call: fill the most confident masked position with its argmax, by hand."""
    den = tiny._clean_denoiser()
    x = torch.tensor([[5, 6] + [tiny.mask_id] * 6])
    with torch.inference_mode():
        while (x == tiny.mask_id).any():
            lp = den(x, None)[0].double()
            lp[:, tiny.mask_id] = float("-inf")
            lp = torch.log_softmax(lp, -1)
            best = max((float(lp[i].max()), -i) for i in range(x.shape[1]) if x[0, i] == tiny.mask_id)
            x[0, -best[1]] = int(lp[-best[1]].argmax())
    got = tiny.sample(1, 6, prefix=[5, 6], steps=6, seed=0, sampler="confidence", temperature=0.0)
    assert got.tokens[0] == x[0, 2:].tolist()


def test_a_threshold_below_every_confidence_takes_one_call(tiny):
    out = tiny.sample(4, 16, steps=16, seed=1, sampler="confidence", temperature=0.0, threshold=1e-12)
    assert out.settings["nfe_per_sample"] == 1.0
    assert all(tiny.mask_id not in row for row in out.tokens)


def test_threshold_needs_the_confidence_sampler(tiny):
    with pytest.raises(BadSetting, match="threshold / factor apply to sampler confidence"):
        tiny.sample(1, 8, steps=8, seed=0, threshold=0.9)
    with pytest.raises(BadSetting, match="at most one of threshold and factor"):
        tiny.sample(1, 8, steps=8, seed=0, sampler="confidence", threshold=0.9, factor=1.0)
