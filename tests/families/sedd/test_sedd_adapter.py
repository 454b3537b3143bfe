"""SEDD adapter on tiny checkpoints written in the published formats, loaded through a model card and
``load_model``. Ground truth: the estimator called directly on the published score head, the bound's
integral over t by quadrature, and direct greedy decodes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tiny_dit import make_tiny, request_row

import dlmbench
from dlmbench.families import load_model
from dlmbench.nets.dit import sedd_log_score
from dlmbench.interface import ScoreRequest
from dlmbench.errors import BadSetting, CheckpointError
from dlmbench.families.sedd.estimator import AbsorbingGraph, sedd_bound_mc
from dlmbench.diffusion.schedules import LogLinearNoise
from dlmbench.registry import Registry
from dlmbench.seeding import request_seed

EPS = 1e-3


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    info = make_tiny(tmp_path_factory.mktemp("sedd"), "sedd", max_length=32)
    spec = Registry.default([info["specs"]]).model("tiny-sedd")
    return info, spec, load_model(spec)


def _published_score(model):
    def score(x_t, sigma):
        return sedd_log_score(model.backbone(x_t, sigma.float()), x_t, sigma, scale_by_sigma=True).double()

    return score


def _ids(model, n=12):
    return model.tokenizer.encode("In the beginning God created the heaven and the earth.")[:n]


def test_card_loads_the_published_format(tiny):
    info, _, model = tiny
    assert model.family == "sedd" and model.bound == "upper" and model.mask_id == info["n_tokens"]
    d = model.describe()
    assert d["format"] == "hf-sedd" and d["time_conditioning"] is True and d["graph"] == "absorb"
    assert d["schedule"] == repr(LogLinearNoise(EPS)) and d["sampler"] == "analytic"
    sd = model.backbone.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in info["state"].items())


def test_conditional_nll_equals_the_estimator_on_the_published_head(tiny):
    _, _, model = tiny
    ids = _ids(model)
    reqs = [ScoreRequest((0,) + tuple(ids[:4]), tuple(ids[4:9]), seed=5), ScoreRequest((0,), tuple(ids[:7]), seed=6)]
    res = model.conditional_nll(reqs)
    assert res.bound == "upper" and res.mc_samples == 4 and res.settings["time_sampling"] == "antithetic"
    assert res.settings["prior_term"] == "excluded"
    for r, req in enumerate(reqs):
        x0, mask = request_row(req)
        with torch.no_grad():
            est = sedd_bound_mc(_published_score(model), x0, mask, [request_seed(req.seed, "piece", 0)],
                                graph=AbsorbingGraph(model.mask_id), schedule=LogLinearNoise(EPS), num_samples=4,
                                time_sampling="antithetic", sampling_eps=EPS)
        assert res.nll[r] == pytest.approx(est.mean[0], rel=1e-5)
        assert res.stderr[r] == pytest.approx(est.stderr[0], rel=1e-4)


def test_single_token_bound_matches_its_integral_over_time(tiny):
    """One scored token: E[draw] = int_eps^1 dsigma(t) (1 - e^-sigma(t)) ent(sigma(t)) dt / (1 - eps), with
    ent = sum_{y != M} s_y - a log s_x0 + a (log a - 1), a = 1/(e^sigma - 1); computed by the midpoint rule."""
    _, spec, model = tiny
    ctx, tok = (0, 41, 78, 261), 324
    sched = LogLinearNoise(EPS)
    n = 4000
    t = EPS + (torch.arange(n, dtype=torch.float64) + 0.5) * (1 - EPS) / n
    sigma = sched.sigma(t)
    x_t = torch.tensor([list(ctx) + [model.mask_id]]).expand(n, -1)
    with torch.no_grad():
        ls = _published_score(model)(x_t, sigma)[:, -1]  # [n, V] at the masked position
    a = 1 / torch.expm1(sigma)
    ent = ls[:, : model.mask_id].exp().sum(-1) - a * ls[:, tok] + a * (a.log() - 1)
    expect = float((sched.dsigma(t) * -torch.expm1(-sigma) * ent).mean())  # mean over t = integral / (1 - eps)
    res = load_model(spec, batch_size=64).conditional_nll([ScoreRequest(ctx, (tok,), seed=s) for s in range(120)])
    mean, se = res.nll.mean(), res.nll.std(ddof=1) / math.sqrt(len(res.nll))
    assert abs(mean - expect) < 4 * se


def test_numbers_do_not_depend_on_batch_size(tiny):
    _, spec, model = tiny
    ids = _ids(model)
    reqs = [ScoreRequest((0,), tuple(ids[:5]), 1), ScoreRequest((0,) + tuple(ids[:2]), tuple(ids[2:9]), 2),
            ScoreRequest((0,), tuple(range(1, 50)), 3)]
    a = model.conditional_nll(reqs).nll
    b = load_model(spec, batch_size=1).conditional_nll(reqs).nll
    c = np.concatenate([model.conditional_nll([r]).nll for r in reqs])
    np.testing.assert_allclose(a, b, rtol=1e-6)  # same draws; only float32 rounding of batched passes differs
    np.testing.assert_allclose(a, c, rtol=1e-6)


def _direct_masked_log_probs(model, x):
    """p(x0 | x_t) ∝ s over real tokens, at the sigma whose masking probability is the masked fraction."""
    frac = (x == model.mask_id).double().mean(-1).clamp(EPS * (1 - EPS), 1 - EPS)
    logits = model.backbone(x, (-torch.log1p(-frac)).float()).double()
    return torch.log_softmax(logits[..., : model.mask_id], dim=-1)


def _direct_iterative(model, ctx, n):
    x = torch.tensor([list(ctx) + [model.mask_id] * n])
    with torch.no_grad():
        for _ in range(n):
            conf, pred = _direct_masked_log_probs(model, x)[0].max(-1)
            conf[x[0] != model.mask_id] = -math.inf
            pos = int(conf.argmax())
            x[0, pos] = pred[pos]
    return tuple(x[0, len(ctx):].tolist())


@pytest.mark.parametrize("variant", ["iterative_confidence", "one_shot_argmax"])
def test_greedy_variants_against_direct_decodes(tiny, variant):
    _, spec, model = tiny
    m = load_model(spec.with_settings({"greedy": variant}))
    ctx = (0, 41, 78, 261)
    if variant == "iterative_confidence":
        cont = _direct_iterative(model, ctx, 4)
    else:
        with torch.no_grad():
            cont = tuple(_direct_masked_log_probs(model, torch.tensor([list(ctx) + [model.mask_id] * 4]))[0, 4:].argmax(-1).tolist())
    wrong = ((cont[0] + 1) % model.mask_id,) + cont[1:]
    res = m.greedy_match([ScoreRequest(ctx, cont), ScoreRequest(ctx, wrong)])
    assert res.matches.tolist() == [True, False] and res.method == variant
    assert m.describe()["greedy"] == variant and m.describe()["greedy_sigma"] == "masked_fraction"


@pytest.mark.parametrize("sampler", ["analytic", "euler"])
def test_samples_shapes_nfe_and_seeding(tiny, sampler):
    _, spec, model = tiny
    prefix = _ids(model, 3)
    out = model.sample(3, 10, prefix=prefix, steps=6, seed=7, sampler=sampler)
    assert len(out.tokens) == 3 and all(len(t) == 10 for t in out.tokens)
    assert all(0 <= tok < model.mask_id for row in out.tokens for tok in row)  # the denoiser fills every mask
    assert out.nfe == 6 + 1 and out.settings["sampler"] == sampler and out.settings["denoise"] is True
    assert model.sample(3, 10, prefix=prefix, steps=6, seed=7, sampler=sampler).tokens == out.tokens
    one_by_one = load_model(spec, batch_size=1).sample(3, 10, prefix=prefix, steps=6, seed=7, sampler=sampler)
    assert one_by_one.tokens == out.tokens and one_by_one.nfe == 3 * 7  # three chunks of one row
    assert model.sample(3, 10, prefix=prefix, steps=6, seed=8, sampler=sampler).tokens != out.tokens


def test_sampling_settings_recorded_and_unknown_sampler(tiny):
    _, _, model = tiny
    out = model.sample(2, 8, steps=3, seed=1, top_p=0.8, precision="float32")
    assert (out.settings["top_p"], out.settings["precision"], out.settings["steps"]) == (0.8, "float32", 3)
    with pytest.raises(BadSetting, match="sedd sampling: setting 'sampler' = 'eular' is not allowed: Input should be 'analytic', 'euler' or 'confidence'"):
        model.sample(1, 4, sampler="eular")


@pytest.mark.parametrize("sampler", ["analytic", "euler"])
def test_zero_temperature_unmasks_to_the_argmax(tiny, sampler):
    """One masked token: at temperature 0 it becomes the argmax of the score at the noise level of the step
    where it unmasks (one of the sampler's times, or the final denoiser at sigma(eps))."""
    _, _, model = tiny
    ctx, steps = (0, 41, 78, 261), 4
    times = torch.linspace(1.0, 1e-5, steps + 1, dtype=torch.float64)
    x = torch.tensor([list(ctx) + [model.mask_id]]).expand(len(times), -1)
    with torch.no_grad():
        logits = model.backbone(x, LogLinearNoise(EPS).sigma(times).float())[:, -1, : model.mask_id]
    allowed = set(logits.argmax(-1).tolist())
    for seed in range(3):
        out = model.sample(1, 1, prefix=ctx, steps=steps, seed=seed, sampler=sampler, temperature=0)
        assert out.tokens[0][0] in allowed and out.settings["temperature"] == 0


def test_infill_keeps_the_known_tokens(tiny):
    _, _, model = tiny
    ids = _ids(model, 8)
    holes = [ids[0], None, ids[2], None, None, ids[5]]
    out = model.infill(holes, steps=4, seed=3)
    assert len(out.tokens[0]) == 6 and all(f == h for f, h in zip(out.tokens[0], holes) if h is not None)
    assert out.nfe == 5


def test_mdlm_repo_sedd_checkpoint_loads_ema_weights(tmp_path):
    info = make_tiny(tmp_path, "sedd", fmt="lightning")  # MDLM's sedd.ckpt: parameterization=sedd, EMA
    model = load_model(Registry.default([info["specs"]]).model("tiny-sedd"))
    sd = model.backbone.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in info["ema"].items())
    assert model.config.scale_by_sigma and model.config.time_conditioning
    res = model.conditional_nll([ScoreRequest((0, 5), (6, 7, 8), seed=1)])
    assert np.isfinite(res.nll).all() and res.bound == "upper"


def test_packaged_cards_offline_fail_in_one_line():
    reg = Registry.default()
    assert reg.model("sedd").name == "sedd-small"
    for name, hub in (("sedd-small", "louaaron/sedd-small"), ("sedd-medium", "louaaron/sedd-medium")):
        with pytest.raises(CheckpointError) as e:
            load_model(reg.model(name))
        assert "\n" not in str(e.value) and hub in str(e.value)


def test_evaluate_runs_kjv_end_to_end(tiny, tmp_path):
    info, _, _ = tiny
    df = dlmbench.evaluate("tiny-sedd", "kjv", limit=3, out=tmp_path, specs=[info["specs"]])  # a tidy DataFrame
    rows = df.set_index("metric")
    assert rows.loc["perplexity", "bound"] == "upper" and rows.loc["perplexity", "family"] == "sedd"
    assert 1 < rows.loc["perplexity", "value"] < math.inf and rows.loc["nll_per_token", "stderr"] is not None
    assert set(df["n"]) == {3} and (tmp_path / "runs").exists() and df.attrs["run_folder"].startswith(str(tmp_path))
