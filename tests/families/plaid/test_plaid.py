"""Plaid: released-format checkpoints, the forward pass against an independent implementation, the noise
schedule, the variational bound against numerical integration and an oracle, the sampler, the adapter."""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlmbench.families.plaid.backbone import (
    GammaBounds,
    PlaidConfig,
    PlaidModules,
    save_plaid_modules,
)
from dlmbench.families.plaid.writer import random_plaid_modules, tiny_plaid_config, write_tiny_plaid
from dlmbench.interface import ScoreRequest
from dlmbench.families.plaid.adapter import load_plaid
from dlmbench.errors import BadSetting, CheckpointError
from dlmbench.families.plaid.estimator import plaid_vlb_mc
from dlmbench.families.plaid.samplers import vdm_ancestral_sample
from dlmbench.specs import ModelSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from replicate_stderr import assert_stderr_matches  # noqa: E402


def _spec(folder, **settings):
    return ModelSpec.from_dict({"name": "plaid-tiny", "family": "plaid", "checkpoint": {"local": str(folder)},
                                "max_length": 64, "settings": settings})


def _probe(mods, seed=0, b=3, length=7):
    g = torch.Generator().manual_seed(seed)
    e = mods.config.embed_dim
    z = torch.randn(b, length, e, generator=g)
    gamma = torch.tensor([-2.5, 0.3, 5.0][:b], dtype=torch.float64)
    x_sc = torch.randn(b, length, e, generator=g) * 0.3
    return z, gamma, x_sc


# ----------------------------------------------------------------------------------------------------
# Format and loading
# ----------------------------------------------------------------------------------------------------


def test_tiny_checkpoint_has_the_released_files_and_keys(tmp_path):
    write_tiny_plaid(tmp_path, tiny_plaid_config(n_blocks=2))
    # key names as derived from igul222/plaid lib/models.py, written out here by hand
    block = ["rmsnorm1.weight", "attn_qkv.weight", "attn_out.weight", "rmsnorm2.weight", "mlp.fc1.weight", "mlp.fc2.weight"]
    expected = {
        "noise_schedule": {"W1", "b1", "W2"},
        "gamma_bounds": {"gamma_0", "gamma_1"},
        "embedding_matrix": {"matrix"},
        "model": {"input_linear.weight", "selfcond_linear.weight", "gamma_linear.weight", "rotary_emb.inv_freq",
                  "output_norm.weight", "output_linear.weight", "output_linear.bias"}
        | {f"blocks.{i}.{k}" for i in range(2) for k in block},
    }
    for name, keys in expected.items():
        sd = torch.load(tmp_path / f"{name}.pt", weights_only=True, map_location="cpu")
        assert set(sd) == keys
        assert all(v.dtype == torch.float32 for v in sd.values())
    model = torch.load(tmp_path / "model.pt", weights_only=True)
    c = tiny_plaid_config()
    assert model["blocks.0.attn_qkv.weight"].shape == (3 * c.dim, c.dim)
    assert model["blocks.1.mlp.fc1.weight"].shape == (4 * c.dim, c.dim)
    assert model["gamma_linear.weight"].shape == (c.dim, 64)
    assert model["rotary_emb.inv_freq"].shape == (c.head_dim // 2,)
    assert torch.load(tmp_path / "gamma_bounds.pt", weights_only=True)["gamma_0"].shape == ()
    assert (tmp_path / "owt2_tokenizer.json").is_file()


def test_load_and_round_trip_keep_logits(tmp_path):
    a, b = tmp_path / "pt", tmp_path / "st"
    write_tiny_plaid(a, seed=3)
    model = load_plaid(_spec(a))
    mem = random_plaid_modules(tiny_plaid_config(), seed=3)
    z, gamma, x_sc = _probe(mem)
    ref_logits, ref_x = mem.denoise(z, gamma, x_sc)
    logits, x_hat = model.net.denoise(z, gamma, x_sc)
    assert torch.equal(logits, ref_logits) and torch.equal(x_hat, ref_x)
    # save the loaded modules as safetensors copies, reload through the real path: same logits, same schedule
    save_plaid_modules(model.net, b, fmt="safetensors")
    shutil.copy(a / "owt2_tokenizer.json", b / "owt2_tokenizer.json")
    again = load_plaid(_spec(b))
    assert torch.equal(again.net.denoise(z, gamma, x_sc)[0], ref_logits)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert torch.equal(again.net.gamma(t), mem.gamma(t))


class NotATensor:
    pass


def test_unsafe_pickle_is_refused_with_a_conversion_hint(tmp_path):
    write_tiny_plaid(tmp_path)
    torch.save({"W1": NotATensor()}, tmp_path / "noise_schedule.pt")
    with pytest.raises(CheckpointError, match="weights_only=True.*safetensors"):
        load_plaid(_spec(tmp_path))


def test_missing_weights_say_where_to_get_them(tmp_path):
    with pytest.raises(CheckpointError, match=r"releases/tag/v1\.0\.0.*tar xvzf"):
        load_plaid(_spec(tmp_path / "nowhere"))
    write_tiny_plaid(tmp_path, tokenizer=False)
    with pytest.raises(CheckpointError, match="owt2_tokenizer.json"):
        load_plaid(_spec(tmp_path))
    (tmp_path / "model.pt").unlink()
    with pytest.raises(CheckpointError, match="lacks model.pt"):
        load_plaid(_spec(tmp_path))


def test_wrong_shapes_are_one_line_errors(tmp_path):
    write_tiny_plaid(tmp_path)
    sd = torch.load(tmp_path / "model.pt", weights_only=True)
    sd["blocks.0.attn_out.weight"] = torch.zeros(3, 3)
    torch.save(sd, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="attn_out.weight"):
        load_plaid(_spec(tmp_path))


def test_unknown_setting_suggests_the_name(tmp_path):
    write_tiny_plaid(tmp_path)
    with pytest.raises(BadSetting, match="unknown setting 'mc_sampels' = .*; did you mean 'mc_samples'"):
        load_plaid(_spec(tmp_path, mc_sampels=4))


# ----------------------------------------------------------------------------------------------------
# Forward pass vs an independent implementation of lib/models.py
# ----------------------------------------------------------------------------------------------------


def _reference_forward(sd, emb_raw, z, gamma, x_sc, cfg: PlaidConfig):
    """lib/models.py DiffusionModel.forward, written independently: per-head loops, complex-number RoPE."""
    d, e, h = cfg.dim, cfg.embed_dim, cfg.n_heads
    hd = d // h
    E = emb_raw / (emb_raw.norm(dim=1, keepdim=True) + 1e-8)
    a2, s2 = torch.sigmoid(-gamma), torch.sigmoid(gamma)
    x = z / torch.sqrt(a2 / e + s2)[:, None, None].float()
    x = x @ sd["input_linear.weight"].T + (x_sc * math.sqrt(e)) @ sd["selfcond_linear.weight"].T
    f = torch.exp(torch.linspace(-5, 5, 32, dtype=torch.float64))
    ge = torch.cat([torch.sin(gamma[:, None] * f), torch.cos(gamma[:, None] * f)], 1).float()
    x = x + (ge @ sd["gamma_linear.weight"].T)[:, None]
    L = z.shape[1]
    theta = torch.arange(L, dtype=torch.float64)[:, None] * (1.0 / 10000 ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    rot = torch.polar(torch.ones_like(theta), theta)  # e^{i θ}, pairs (j, j + hd/2)

    def rope(v):  # v [L, hd]
        c = torch.complex(v[:, : hd // 2].double(), v[:, hd // 2 :].double()) * rot
        return torch.cat([c.real, c.imag], 1).float()

    def rms(v, w):
        return v / torch.sqrt((v * v).mean(-1, keepdim=True) + 1e-5) * w

    r = 1 / math.sqrt(cfg.n_blocks)
    for i in range(cfg.n_blocks):
        p = f"blocks.{i}."
        out = torch.empty_like(x)
        for bi in range(x.shape[0]):
            qkv = rms(x[bi], sd[p + "rmsnorm1.weight"]) @ sd[p + "attn_qkv.weight"].T
            heads = []
            for hh in range(h):
                q = rope(qkv[:, hh * hd : (hh + 1) * hd])
                k = rope(qkv[:, d + hh * hd : d + (hh + 1) * hd])
                v = qkv[:, 2 * d + hh * hd : 2 * d + (hh + 1) * hd]
                heads.append(torch.softmax(q @ k.T / math.sqrt(hd), -1) @ v)
            out[bi] = x[bi] + r * torch.cat(heads, 1) @ sd[p + "attn_out.weight"].T
        x = out
        u = rms(x, sd[p + "rmsnorm2.weight"]) @ sd[p + "mlp.fc1.weight"].T
        u = 0.5 * u * (1 + torch.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u**3)))
        x = x + r * u @ sd[p + "mlp.fc2.weight"].T
    mu, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    x = (x - mu) / torch.sqrt(var + 1e-5) * sd["output_norm.weight"] / (d / 256)
    logits = x @ sd["output_linear.weight"].T + sd["output_linear.bias"]
    logits = logits + ((a2.sqrt() / s2).float()[:, None, None] * z) @ E.T
    return logits, torch.softmax(logits, -1) @ E


def test_forward_matches_an_independent_implementation():
    cfg = tiny_plaid_config(dim=24, n_heads=3, n_blocks=2, embed_dim=4, vocab_size=11)
    mods = random_plaid_modules(cfg, seed=5)
    z, gamma, x_sc = _probe(mods, length=6)
    logits, x_hat = mods.denoise(z, gamma, x_sc)
    ref_logits, ref_x = _reference_forward(mods.model.state_dict(), mods.embedding_matrix.matrix, z, gamma, x_sc, cfg)
    torch.testing.assert_close(logits, ref_logits, atol=2e-4, rtol=2e-4)
    torch.testing.assert_close(x_hat, ref_x, atol=2e-5, rtol=2e-4)
    assert mods.config.readout_scale == 256 / 24
    assert PlaidConfig().readout_scale == 1 / 8  # Plaid 1B: output_mult / width_mult = 1 / (2048/256)


# ----------------------------------------------------------------------------------------------------
# Noise schedule
# ----------------------------------------------------------------------------------------------------


def test_noise_schedule_is_monotone_hits_the_bounds_and_its_derivative_is_right():
    mods = random_plaid_modules(tiny_plaid_config(noise_schedule_width=64), seed=2, gamma_0=-2.7, gamma_1=5.9)
    t = torch.linspace(0, 1, 2001, dtype=torch.float64)
    g = mods.gamma(t)
    assert g.dtype == torch.float64
    assert torch.all(torch.diff(g) > 0)
    assert g[0].item() == pytest.approx(-2.7, abs=1e-6) and g[-1].item() == pytest.approx(5.9, abs=1e-6)
    # γ′ analytic vs autograd (what train.py uses) and vs central differences
    tt = torch.rand(50, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    (auto,) = torch.autograd.grad(mods.gamma(tt).sum(), tt)
    torch.testing.assert_close(mods.gamma_prime(tt.detach()), auto, rtol=1e-10, atol=1e-10)
    h = 1e-6
    fd = (mods.gamma(tt.detach() + h) - mods.gamma(tt.detach() - h)) / (2 * h)
    torch.testing.assert_close(mods.gamma_prime(tt.detach()), fd, rtol=1e-6, atol=1e-6)
    assert torch.all(mods.gamma_prime(t) > 0)


# ----------------------------------------------------------------------------------------------------
# The bound: Monte Carlo vs quadrature; oracle
# ----------------------------------------------------------------------------------------------------


def _quadrature_bound(mods: PlaidModules, x: torch.Tensor, n_t=48, n_eps=24) -> float:
    """Σ_i prior + E_ε[CE at γ_0] + ∫_0^1 E_ε[−½ SNR′ ‖x̃ − x̂‖²] dt by Gauss–Legendre (t) × Gauss–Hermite (ε).

    Written independently of the estimator: γ from the raw schedule weights, γ′ by autograd, the prior by the
    Gaussian KL formula, ε over R^{L·d_e} (here L·d_e = 2) on a tensor-product Hermite grid.
    """
    sd = mods.noise_schedule.state_dict()
    g0, g1 = float(mods.gamma_bounds.gamma_0), float(mods.gamma_bounds.gamma_1)
    w1, b1, w2 = F.softplus(sd["W1"].double())[:, 0], sd["b1"].double(), 0.01 * F.softplus(sd["W2"].double())[0]

    def gamma_of(t):
        gt = lambda s: torch.tanh((s[:, None] - 0.5) * w1 + b1) @ w2  # noqa: E731
        ends = gt(torch.tensor([0.0, 1.0], dtype=torch.float64))
        return g0 + (g1 - g0) * (gt(t) - ends[0]) / (ends[1] - ends[0])

    E = mods.embeddings().double()
    xe = E[x]  # [L, d]
    L, d = xe.shape
    assert L * d == 2
    gh_x, gh_w = np.polynomial.hermite_e.hermegauss(n_eps)  # ∫ f(u) e^{-u²/2} du
    gh_w = gh_w / math.sqrt(2 * math.pi)
    u1, u2 = np.meshgrid(gh_x, gh_x, indexing="ij")
    eps = torch.tensor(np.stack([u1.ravel(), u2.ravel()], 1)).view(-1, L, d)
    weps = torch.tensor(np.outer(gh_w, gh_w).ravel())
    m = eps.shape[0]

    def net(z, gamma):
        _, xs = mods.denoise(z.float(), gamma, torch.zeros_like(z).float())
        return mods.denoise(z.float(), gamma, xs)

    # prior: KL(N(α1 x, σ1²) ‖ N(0, 1)) per coordinate
    a1sq, s1sq = 1 / (1 + math.exp(g1)), 1 / (1 + math.exp(-g1))
    prior = float((0.5 * (a1sq * xe**2 + s1sq - 1 - math.log(s1sq))).sum())
    # reconstruction at γ_0
    a0, s0 = math.sqrt(1 / (1 + math.exp(g0))), math.sqrt(1 / (1 + math.exp(-g0)))
    logits, _ = net(a0 * xe + s0 * eps, torch.full((m,), g0, dtype=torch.float64))
    ce = -torch.log_softmax(logits.double(), -1).gather(-1, x.expand(m, L)[..., None])[..., 0].sum(1)
    reconst = float((weps * ce).sum())
    # diffusion over t
    gl_x, gl_w = np.polynomial.legendre.leggauss(n_t)
    diff = 0.0
    for tn, tw in zip((gl_x + 1) / 2, gl_w / 2):
        t = torch.tensor([tn], dtype=torch.float64, requires_grad=True)
        gam = gamma_of(t)
        (gp,) = torch.autograd.grad(gam.sum(), t)
        gam, gp = gam.detach(), gp.detach()
        a, s = torch.sigmoid(-gam).sqrt(), torch.sigmoid(gam).sqrt()
        _, xh = net(a * xe + s * eps, gam.expand(m))
        sq = ((xe - xh.double()) ** 2).sum((1, 2))
        diff += tw * float((weps * (0.5 * torch.exp(-gam) * gp * sq)).sum())
    return prior + reconst + diff


@pytest.mark.parametrize("scheme", ["stratified", "systematic", "iid"])
def test_mc_bound_agrees_with_numerical_integration(scheme):
    cfg = tiny_plaid_config(dim=16, n_heads=2, n_blocks=1, embed_dim=1, vocab_size=4)
    mods = random_plaid_modules(cfg, seed=11, scale=0.5)
    x = torch.tensor([[2, 1]])
    exact = _quadrature_bound(mods, x[0])
    coarse = _quadrature_bound(mods, x[0], n_t=32, n_eps=16)
    assert abs(exact - coarse) < 1e-3 * max(1.0, abs(exact))  # the quadrature has converged
    est = plaid_vlb_mc(mods, x, torch.ones_like(x, dtype=torch.bool), [123], num_samples=16000, batch_size=16000,
                       time_sampling=scheme)
    assert est.settings["time_sampling"] == scheme and est.settings.get("reconst_rows", 2000) == 2000
    assert abs(est.mean[0] - exact) < 4 * est.stderr[0], (est.mean[0], exact, est.stderr[0])
    assert est.stderr[0] < 0.05 * abs(exact)  # the comparison has power


class _OracleNet:
    """The exact denoiser of a two-token distribution p over embeddings ±1 (d_e = 1, one position):
    logits_v = log p_v + log N(z; α e_v, σ²), x̂ = E[e | z]."""

    def __init__(self, p, schedule: PlaidModules, gamma_0, gamma_1):
        self.logp = torch.log(torch.tensor(p, dtype=torch.float64))
        self.s = schedule
        self.gamma_bounds = GammaBounds(gamma_0, gamma_1)
        self.E = torch.tensor([[1.0], [-1.0]])

    def gamma(self, t):
        g0, g1 = self.gamma_bounds()
        return g0 + (g1 - g0) * self.s.noise_schedule(t)

    def gamma_prime(self, t):
        g0, g1 = self.gamma_bounds()
        return (g1 - g0) * self.s.noise_schedule.derivative(t)

    def embeddings(self):
        return self.E

    def denoise(self, z, gamma, x_selfcond):
        a2 = torch.sigmoid(-gamma.double())[:, None, None]
        s2 = torch.sigmoid(gamma.double())[:, None, None]
        e = self.E.double()[:, 0]
        logits = self.logp - (z.double() - a2.sqrt() * e) ** 2 / (2 * s2)  # [B, L, 2]
        return logits.float(), (torch.softmax(logits, -1) @ self.E.double()).float()


def _oracle_quadrature(net, x: int, n_t=64, n_eps=80) -> float:
    """The bound of one token from the estimator's own term functions (``vlb_terms``), integrated over ε by
    Gauss–Hermite and over t by Gauss–Legendre instead of Monte Carlo."""
    from dlmbench.families.plaid.estimator import vlb_terms

    u, w = np.polynomial.hermite_e.hermegauss(n_eps)
    eps, w = torch.tensor(u).view(-1, 1, 1), torch.tensor(w) / math.sqrt(2 * math.pi)
    xs = torch.full((n_eps, 1), x)
    gx, gw = np.polynomial.legendre.leggauss(n_t)
    diff = 0.0
    for tn, tw in zip((gx + 1) / 2, gw / 2):
        terms = vlb_terms(net, xs, torch.full((n_eps,), float(tn), dtype=torch.float64), eps)
        diff += tw * float((w * terms["diffusion"][:, 0]).sum())
    return float(terms["prior"][0, 0]) + float((w * terms["reconst"][:, 0]).sum()) + diff


def test_bound_of_the_oracle_is_at_least_the_entropy_and_tight():
    """Gibbs: E_{x~p}[bound(x)] ≥ E_p[−log p_model(x)] ≥ H(p) for any model. With the exact denoiser the
    continuous-time path term is exact, so the bound is tight up to the endpoint terms (γ_0 = −5, γ_1 = 7: about
    1e-4 nats); a wrong constant (½, SNR′, the prior) would show up as an error of order 0.1–1 nats."""
    p = [0.3, 0.7]
    sched = random_plaid_modules(tiny_plaid_config(noise_schedule_width=32), seed=4)
    net = _OracleNet(p, sched, gamma_0=-5.0, gamma_1=7.0)
    bounds = np.array([_oracle_quadrature(net, x) for x in (0, 1)])
    entropy = -sum(q * math.log(q) for q in p)
    quad_tol = 5e-5  # change between (64, 80) and (128, 160) nodes is ~2e-5
    assert np.dot(p, bounds) >= entropy - quad_tol
    assert np.dot(p, bounds) <= entropy + 1e-3
    np.testing.assert_allclose(bounds, [-math.log(q) for q in p], atol=1e-3)
    # and the Monte Carlo estimator is consistent with it
    x = torch.tensor([[0], [1]])
    est = plaid_vlb_mc(net, x, torch.ones_like(x, dtype=torch.bool), [1, 2], num_samples=20000, batch_size=40000)
    assert np.all(np.abs(est.mean - bounds) < 4 * est.stderr), (est.mean, bounds, est.stderr)


def test_stratified_design_rows_and_small_k():
    """Fixed design: floor(K p + 1/2) reconstruction rows clamped to [2, K - 2] (4 of 32 at p = 1/8, as the reference's
    val_batch_size // 8); fewer than 4 draws fall back to the i.i.d. design, and the settings say so."""
    from dlmbench.families.plaid.estimator import reconst_rows

    assert [reconst_rows(k) for k in (4, 6, 16, 32, 64, 100)] == [2, 2, 2, 4, 8, 13]
    assert reconst_rows(8, 0.9) == 6
    mods = random_plaid_modules(tiny_plaid_config(), seed=1)
    x = torch.randint(1, 257, (2, 5), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(x, dtype=torch.bool)
    est = plaid_vlb_mc(mods, x, mask, [1, 2], num_samples=3)
    assert est.settings["time_sampling"] == "iid" and est.settings["stderr"] == "iid"
    est = plaid_vlb_mc(mods, x, mask, [1, 2], num_samples=8)
    assert est.settings["time_sampling"] == "stratified" and est.settings["reconst_rows"] == 2
    assert est.settings["stderr"] == "reconstruction rows: iid; diffusion rows: collapsed_strata"


def _replicates(scheme: str, n: int = 200, k: int = 32):
    mods = random_plaid_modules(tiny_plaid_config(), seed=1)
    x = torch.randint(1, 257, (1, 6), generator=torch.Generator().manual_seed(0)).repeat(n, 1)
    return plaid_vlb_mc(mods, x, torch.ones_like(x, dtype=torch.bool), list(range(n)), num_samples=k,
                        batch_size=8192, time_sampling=scheme)


def test_stderr_matches_replicate_runs_and_the_fixed_design_has_less_variance():
    """200 independent estimates (K = 32) per design of one 6-token sequence under a random tiny Plaid:
    - every design's reported stderr against the replicate variance (``tests/replicate_stderr.py``): iid unbiased,
      stratified conservative by at most +25% (collapsed strata at 28 diffusion strata), systematic conservative
      (the i.i.d. formula on a systematic sample; up to 5x);
    - the fixed designs remove the Bernoulli choice of term: less than half the variance of iid (4 sd margin),
      and stratified is no worse than the reference's systematic design (4 sd margin)."""
    est = {s: _replicates(s) for s in ("iid", "systematic", "stratified")}
    assert_stderr_matches(est["iid"].mean, est["iid"].stderr)
    assert_stderr_matches(est["stratified"].mean, est["stratified"].stderr, conservative_up_to=0.25)
    assert_stderr_matches(est["systematic"].mean, est["systematic"].stderr, conservative_up_to=4.0)

    def log_var_and_sd(m):
        d = (m - m.mean()) ** 2
        return math.log(d.mean()), float(np.std(d / d.mean(), ddof=1) / math.sqrt(len(m)))

    (li, si), (ls, ss), (lt, st) = (log_var_and_sd(est[s].mean) for s in ("iid", "systematic", "stratified"))
    assert lt - li < math.log(0.5) - 4 * math.hypot(si, st), (lt, li)
    assert lt - ls < 4 * math.hypot(ss, st), (lt, ls)


def test_mc_draws_are_per_request():
    mods = random_plaid_modules(tiny_plaid_config(), seed=1)
    x = torch.randint(1, 257, (3, 5), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(x, dtype=torch.bool)
    all3 = plaid_vlb_mc(mods, x, mask, [7, 8, 9], num_samples=5, batch_size=4)
    one = plaid_vlb_mc(mods, x[1:2], mask[1:2], [8], num_samples=5, batch_size=1)
    np.testing.assert_allclose(all3.draws[1], one.draws[0], rtol=1e-5, atol=1e-5)  # float32 batched matmul rounding


# ----------------------------------------------------------------------------------------------------
# Sampler
# ----------------------------------------------------------------------------------------------------


def test_sampler_with_the_oracle_reproduces_the_data_distribution():
    """With the exact denoiser, score temperature 1 and fine steps, VDM ancestral sampling draws from p."""
    from scipy.stats import chisquare

    p = [0.3, 0.7]
    sched = random_plaid_modules(tiny_plaid_config(noise_schedule_width=32), seed=4)
    net = _OracleNet(p, sched, gamma_0=-7.0, gamma_1=9.0)
    n = 1500
    tokens, nfe = vdm_ancestral_sample(net, n, 1, steps=150, seed=0, score_temp=1.0)
    assert nfe == 151
    counts = np.bincount(tokens[:, 0].numpy(), minlength=2)
    assert chisquare(counts, np.array(p) * n).pvalue > 1e-3


def test_sampler_is_deterministic_and_per_sample_seeded(tmp_path):
    write_tiny_plaid(tmp_path)
    model = load_plaid(_spec(tmp_path, steps=12))
    a = model.sample(3, 6, seed=5)
    b = model.sample(3, 6, seed=5)
    c = model.sample(2, 6, seed=5)
    d = model.sample(3, 6, seed=6)
    assert a.tokens == b.tokens and a.tokens[:2] == c.tokens
    assert a.tokens != d.tokens
    assert a.nfe == 13 and a.settings["steps"] == 12 and a.settings["score_temp"] == 0.9
    assert all(len(t) == 6 for t in a.tokens)
    pre = model.sample(2, 4, prefix=[40, 41], seed=1)
    assert all(len(t) == 4 for t in pre.tokens) and pre.settings["guidance_weight"] == 2.0
    filled = model.infill([40, None, None, 41], seed=1)
    assert filled.tokens[0][0] == 40 and filled.tokens[0][3] == 41
    # the old name of steps (cards, --set, per call) gives the same samples
    old = load_plaid(_spec(tmp_path, sampling_steps=12))
    assert old.settings.steps == 12 and old.sample(3, 6, seed=5).tokens == a.tokens
    assert model.sample(3, 6, seed=5, sampling_steps=12).tokens == a.tokens
    with pytest.raises(BadSetting, match="plaid sampling: setting 'sampler' = 'euler' is not allowed"):
        model.sample(1, 4, sampler="euler")
    with pytest.raises(BadSetting, match="'score_temp' = 0 is not allowed"):
        model.infill([40, None], score_temp=0)


# ----------------------------------------------------------------------------------------------------
# Adapter
# ----------------------------------------------------------------------------------------------------


def test_adapter_nll_is_seeded_per_request_and_labelled_upper(tmp_path):
    write_tiny_plaid(tmp_path)
    model = load_plaid(_spec(tmp_path, mc_samples=6, batch_size=5))
    assert model.family == "plaid" and model.bound == "upper"
    seqs = [model.tokenizer.encode("Hello world"), model.tokenizer.encode("abc")]
    r1 = model.nll(seqs, seeds=[1, 2])
    assert r1.bound == "upper" and r1.mc_samples == 6 and list(r1.n_tokens) == [len(s) for s in seqs]
    assert np.all(np.isfinite(r1.stderr)) and np.all(r1.nll > 0)
    model.settings = model.settings.model_copy(update={"batch_size": 1})
    r2 = model.nll(seqs[::-1], seeds=[2, 1])
    np.testing.assert_allclose(r1.nll, r2.nll[::-1], rtol=1e-6)
    cond = model.conditional_nll([ScoreRequest(tuple(seqs[0][:4]), tuple(seqs[0][4:]), 3)])
    assert cond.n_tokens[0] == len(seqs[0]) - 4 and np.isfinite(cond.nll[0])
    g = model.greedy_match([ScoreRequest(tuple(seqs[0][:4]), tuple(seqs[0][4:]), 0)])
    assert g.method == "replacement_ddim" and g.matches.dtype == bool
    assert model.tokenizer.decode(seqs[0]) == "Hello world"
    assert model.tokenizer.eos_id == 0


def test_greedy_check_accepts_what_it_decodes(tmp_path):
    """The greedy check is self-consistent: the decode of a context, fed back as the continuation, matches."""
    from dlmbench.families.plaid.samplers import replacement_ddim_decode

    write_tiny_plaid(tmp_path, seed=2)
    model = load_plaid(_spec(tmp_path, greedy_steps=8))
    ctx = model.tokenizer.encode("The cat")
    x0 = torch.tensor([ctx + [1, 1, 1]])
    known = torch.zeros_like(x0, dtype=torch.bool)
    known[:, : len(ctx)] = True
    pred = replacement_ddim_decode(model.net, x0, known, steps=8)[0, len(ctx):].tolist()
    req_yes = ScoreRequest(tuple(ctx), tuple(pred))
    wrong = [(t % 256) + 1 for t in pred]
    req_no = ScoreRequest(tuple(ctx), tuple(wrong))
    assert model.greedy_match([req_yes, req_no]).matches.tolist() == [True, False]


def test_state_dict_with_wrong_shapes_is_one_line():
    import torch

    from dlmbench.families.plaid.backbone import check_states, expected_shapes
    from dlmbench.families.plaid.writer import tiny_plaid_config
    from dlmbench.errors import CheckpointError

    cfg = tiny_plaid_config()
    states = {name: {k: torch.zeros(s) for k, s in shapes.items()} for name, shapes in expected_shapes(cfg).items()}
    check_states(cfg, states, "ok")  # the expected shapes pass
    key = next(iter(states["model"]))
    states["model"][key] = torch.zeros(tuple(states["model"][key].shape) + (2,))
    states["model"]["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as e:
        check_states(cfg, states, "folder")
    msg = str(e.value)
    assert "\n" not in msg and "folder/model does not match a Plaid model" in msg
    assert "unexpected extra.weight" in msg and f"mis-shaped {key}" in msg
