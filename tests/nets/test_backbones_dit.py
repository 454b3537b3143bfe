"""MDLM / SEDD DiT backbone and checkpoint loading against independent ground truth.

Ground truths:
* the published key list and shapes of ``kuleshov-group/mdlm-owt`` / ``louaaron/sedd-*`` and the
  parameter counts derived from the published file sizes (the hub file listings of those repos);
* a second forward pass written differently here, in float64: rotary as a complex-number rotation of
  the pairs ``(x_j, x_{j+d/2})``, per-head explicit softmax attention, layer norm from mean/variance,
  the tanh-GELU formula, the sinusoidal embedding written elementwise;
* tensors written by ``dlmbench/nets/dit_writer.py`` (the published formats) read back through the same
  loaders a hub id or local folder uses, compared bit for bit with a module filled directly from those tensors;
* SUBS and the SEDD score head checked elementwise against their formulas.
"""

from __future__ import annotations

import builtins
import math
import os
import time
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from dlmbench.nets.dit_checkpoints import (
    CheckpointError,
    load_mdlm_backbone,
    load_sedd_backbone,
    read_torch_file,
)
from dlmbench.nets.dit import (
    DiT,
    DiTConfig,
    apply_rotary,
    expected_shapes,
    mdlm_subs_log_probs,
    medium_config,
    parameter_count,
    rotary_cos_sin,
    sedd_log_score,
    small_config,
)
from dlmbench.nets.dit_writer import (
    random_state_dict,
    tiny_config,
    write_mdlm_hub_folder,
    write_mdlm_lightning_ckpt,
    write_sedd_hub_folder,
)

# ---------------------------------------------------------------------------------------------------
# Published key list (kuleshov-group/mdlm-owt model.safetensors, MDLM small; SEDD = same without `backbone.`)
# ---------------------------------------------------------------------------------------------------

PUBLISHED_MDLM_SMALL = {
    "backbone.vocab_embed.embedding": (50258, 768),
    "backbone.sigma_map.mlp.0.weight": (128, 256),
    "backbone.sigma_map.mlp.0.bias": (128,),
    "backbone.sigma_map.mlp.2.weight": (128, 128),
    "backbone.sigma_map.mlp.2.bias": (128,),
    "backbone.rotary_emb.inv_freq": (32,),
    "backbone.output_layer.norm_final.weight": (768,),
    "backbone.output_layer.linear.weight": (50258, 768),
    "backbone.output_layer.linear.bias": (50258,),
    "backbone.output_layer.adaLN_modulation.weight": (1536, 128),
    "backbone.output_layer.adaLN_modulation.bias": (1536,),
}
for _i in range(12):
    PUBLISHED_MDLM_SMALL.update({
        f"backbone.blocks.{_i}.norm1.weight": (768,),
        f"backbone.blocks.{_i}.attn_qkv.weight": (2304, 768),
        f"backbone.blocks.{_i}.attn_out.weight": (768, 768),
        f"backbone.blocks.{_i}.norm2.weight": (768,),
        f"backbone.blocks.{_i}.mlp.0.weight": (3072, 768),
        f"backbone.blocks.{_i}.mlp.0.bias": (3072,),
        f"backbone.blocks.{_i}.mlp.2.weight": (768, 3072),
        f"backbone.blocks.{_i}.mlp.2.bias": (768,),
        f"backbone.blocks.{_i}.adaLN_modulation.weight": (4608, 128),
        f"backbone.blocks.{_i}.adaLN_modulation.bias": (4608,),
    })


def test_key_set_equals_published_mdlm_small():
    assert expected_shapes(small_config(), prefix="backbone.") == PUBLISHED_MDLM_SMALL
    # a module built from the config has exactly those keys and shapes
    with torch.device("meta"):
        model = DiT(small_config())
    assert {"backbone." + k: tuple(v.shape) for k, v in model.state_dict().items()} == PUBLISHED_MDLM_SMALL


def test_sedd_medium_shapes_and_parameter_counts():
    med = expected_shapes(medium_config())
    assert med["vocab_embed.embedding"] == (50258, 1024)
    assert med["output_layer.linear.weight"] == (50258, 1024)
    assert med["blocks.23.attn_qkv.weight"] == (3072, 1024)
    assert med["blocks.23.mlp.0.weight"] == (4096, 1024) and med["blocks.23.mlp.2.weight"] == (1024, 4096)
    assert med["blocks.23.adaLN_modulation.weight"] == (6144, 128)
    assert med["output_layer.adaLN_modulation.weight"] == (2048, 128)
    assert "blocks.24.norm1.weight" not in med
    # parameter counts matching the 679 MB / 1.7 GB fp32 files (hub listings of mdlm-owt, sedd-small, sedd-medium)
    assert parameter_count(small_config()) == 169_627_218
    assert parameter_count(medium_config()) == 424_477_010


# ---------------------------------------------------------------------------------------------------
# A second implementation, written differently, in float64
# ---------------------------------------------------------------------------------------------------


def _ln(x, w):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * w


def _gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _rope_complex(x, positions, base=10_000.0):
    """Rotate x [L, heads, d]: z_j = x_j + i x_{j+d/2} multiplied by exp(i p base^(-2j/d))."""
    d = x.shape[-1]
    half = d // 2
    z = torch.complex(x[..., :half], x[..., half:])
    theta = torch.tensor([base ** (-2 * j / d) for j in range(half)], dtype=torch.float64)
    rot = torch.polar(torch.ones(len(positions), half, dtype=torch.float64), positions[:, None] * theta[None])
    z = z * rot[:, None, :]
    return torch.cat((z.real, z.imag), dim=-1)


def _sinusoid(s, dim=256, max_period=10_000.0):
    half = dim // 2
    out = torch.empty(dim, dtype=torch.float64)
    for j in range(half):
        f = math.exp(-math.log(max_period) * j / half)
        out[j] = math.cos(s * f)
        out[half + j] = math.sin(s * f)
    return out


def reference_logits(state, cfg: DiTConfig, ids: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    W = {k: v.double() for k, v in state.items()}
    H, nh = cfg.hidden_size, cfg.n_heads
    d = H // nh
    out = []
    for b in range(ids.shape[0]):
        s = float(sigma[b]) if cfg.time_conditioning else 0.0
        e = _sinusoid(s, cfg.frequency_embedding_size)
        h1 = W["sigma_map.mlp.0.weight"] @ e + W["sigma_map.mlp.0.bias"]
        h1 = h1 * torch.sigmoid(h1)
        c = W["sigma_map.mlp.2.weight"] @ h1 + W["sigma_map.mlp.2.bias"]
        c = c * torch.sigmoid(c)
        x = W["vocab_embed.embedding"][ids[b]]
        L = x.shape[0]
        pos = torch.arange(L, dtype=torch.float64)
        for i in range(cfg.n_blocks):
            p = f"blocks.{i}."
            mod = W[p + "adaLN_modulation.weight"] @ c + W[p + "adaLN_modulation.bias"]
            sh_a, sc_a, g_a, sh_m, sc_m, g_m = (mod[k * H:(k + 1) * H] for k in range(6))
            a_in = _ln(x, W[p + "norm1.weight"]) * (1 + sc_a) + sh_a
            qkv = a_in @ W[p + "attn_qkv.weight"].T
            q = qkv[:, :H].reshape(L, nh, d)
            k = qkv[:, H:2 * H].reshape(L, nh, d)
            v = qkv[:, 2 * H:].reshape(L, nh, d)
            q, k = _rope_complex(q, pos, cfg.rotary_base), _rope_complex(k, pos, cfg.rotary_base)
            heads = []
            for hh in range(nh):
                scores = (q[:, hh] @ k[:, hh].T) / math.sqrt(d)
                w = torch.exp(scores - scores.max(dim=1, keepdim=True).values)
                w = w / w.sum(dim=1, keepdim=True)
                heads.append(w @ v[:, hh])
            attn = torch.cat(heads, dim=-1)
            x = x + g_a * (attn @ W[p + "attn_out.weight"].T)
            m_in = _ln(x, W[p + "norm2.weight"]) * (1 + sc_m) + sh_m
            hid = _gelu_tanh(m_in @ W[p + "mlp.0.weight"].T + W[p + "mlp.0.bias"])
            x = x + g_m * (hid @ W[p + "mlp.2.weight"].T + W[p + "mlp.2.bias"])
        mod = W["output_layer.adaLN_modulation.weight"] @ c + W["output_layer.adaLN_modulation.bias"]
        shift, scale = mod[:H], mod[H:]
        f_in = _ln(x, W["output_layer.norm_final.weight"]) * (1 + scale) + shift
        out.append(f_in @ W["output_layer.linear.weight"].T + W["output_layer.linear.bias"])
    return torch.stack(out)


@pytest.mark.parametrize("time_conditioning", [True, False])
def test_forward_equals_second_implementation(time_conditioning):
    cfg = tiny_config(time_conditioning=time_conditioning, n_heads=4)
    state = random_state_dict(cfg, seed=3)
    model = DiT(cfg)
    model.load_state_dict(state)
    model = model.double().eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (2, 11), generator=g)
    sigma = torch.tensor([0.3, 4.0], dtype=torch.float64)
    got = model(ids, sigma)
    want = reference_logits(state, cfg, ids, sigma)
    assert got.dtype == torch.float64 and got.shape == (2, 11, cfg.vocab_size)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    # not time-conditioned: sigma is ignored; time-conditioned: it matters
    other = model(ids, sigma + 1.0)
    assert torch.equal(other, got) is (not time_conditioning)


def test_rotary_equals_complex_rotation_and_leaves_norms():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 7, 2, 16, dtype=torch.float64, generator=g)
    inv_freq = 1.0 / (10_000 ** (torch.arange(0, 16, 2, dtype=torch.float64) / 16))
    cos, sin = rotary_cos_sin(inv_freq, 7)
    got = apply_rotary(x, cos, sin)
    want = torch.stack([_rope_complex(x[b], torch.arange(7, dtype=torch.float64)) for b in range(3)])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # relative-position property: <R_p q, R_r k> depends on p - r only
    q, k = x[0, 0, 0], x[0, 1, 0]
    qq = apply_rotary(q.expand(7, 1, 16)[None], cos, sin)[0, :, 0]
    kk = apply_rotary(k.expand(7, 1, 16)[None], cos, sin)[0, :, 0]
    assert torch.allclose(qq[3] @ kk[1], qq[5] @ kk[3]) and torch.allclose(qq[2] @ kk[2], q @ k)


def test_bf16_autocast_is_close_to_float32():
    """The reference's bf16 autocast of the blocks: bf16 logits within bf16 rounding of the fp32 ones."""
    cfg = tiny_config(n_heads=4)
    state = random_state_dict(cfg, seed=8)
    ref, amp = DiT(cfg).eval(), DiT(cfg, autocast_bf16=True).eval()
    ref.load_state_dict(state)
    amp.load_state_dict(state)
    ids, s = _inputs(cfg)
    with torch.no_grad():
        a, b = ref(ids, s), amp(ids, s)
    assert a.dtype == torch.float32 and b.dtype == torch.bfloat16
    # bf16 keeps 8 significant bits (relative 2^-8 per rounding); allow a few roundings' worth
    assert (b.float() - a).abs().max() < 0.05 * a.abs().max()


def test_dropout_only_in_training():
    cfg = tiny_config(dropout=0.5)
    model = DiT(cfg)
    model.load_state_dict(random_state_dict(cfg, seed=5))
    ids = torch.randint(0, cfg.vocab_size, (2, 6), generator=torch.Generator().manual_seed(2))
    s = torch.tensor([1.0, 2.0])
    model.eval()
    assert torch.equal(model(ids, s), model(ids, s))
    model.train()
    torch.manual_seed(0)
    a = model(ids, s)
    assert not torch.allclose(a, model.eval()(ids, s))


# ---------------------------------------------------------------------------------------------------
# Round trips through the published formats
# ---------------------------------------------------------------------------------------------------


def _direct(cfg, state):
    m = DiT(cfg)
    m.load_state_dict(state)
    return m.eval()


def _inputs(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.vocab_size, (3, 10), generator=g), torch.rand(3, generator=g) * 5


def test_mdlm_hub_folder_round_trip(tmp_path):
    cfg = tiny_config(time_conditioning=False)
    state = write_mdlm_hub_folder(tmp_path / "mdlm", cfg, seed=11)
    model, got_cfg, prov = load_mdlm_backbone(tmp_path / "mdlm")
    assert got_cfg == cfg and got_cfg.mask_index == cfg.vocab_size - 1
    ids, s = _inputs(cfg)
    with torch.no_grad():
        assert torch.equal(model(ids, s), _direct(cfg, state)(ids, s))
    assert prov["format"] == "hf-mdlm" and prov["path"].endswith("model.safetensors")
    assert len(prov["sha256"]) == 64 and not model.training


@pytest.mark.parametrize("weights", ["pytorch_model.bin", "model.safetensors"])
def test_sedd_hub_folder_round_trip(tmp_path, weights):
    cfg = tiny_config(time_conditioning=True, scale_by_sigma=True)
    state = write_sedd_hub_folder(tmp_path / "sedd", cfg, seed=12, weights=weights)
    model, got_cfg, prov = load_sedd_backbone(tmp_path / "sedd")
    assert got_cfg == cfg and prov["path"].endswith(weights)
    ids, s = _inputs(cfg)
    with torch.no_grad():
        assert torch.equal(model(ids, s), _direct(cfg, state)(ids, s))


def test_hub_id_loads_from_hf_cache_offline(tmp_path, monkeypatch):
    """A hub id goes through dlmbench.data.hub + huggingface_hub (offline: the local HF cache only)."""
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--kuleshov-group--mdlm-owt"
    cfg = tiny_config(time_conditioning=False)
    state = write_mdlm_hub_folder(repo / "snapshots" / commit, cfg, seed=13)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, got_cfg, prov = load_mdlm_backbone("kuleshov-group/mdlm-owt")
    assert prov["revision"] == commit and prov["checkpoint"] == "hub:kuleshov-group/mdlm-owt"
    ids, s = _inputs(cfg)
    with torch.no_grad():
        assert torch.equal(model(ids, s), _direct(cfg, state)(ids, s))


def test_lightning_ckpt_uses_ema_by_default(tmp_path):
    cfg = tiny_config(time_conditioning=False)
    state, ema = write_mdlm_lightning_ckpt(tmp_path / "mdlm.ckpt", cfg, seed=14)
    ids, s = _inputs(cfg)
    model, got_cfg, prov = load_mdlm_backbone(tmp_path / "mdlm.ckpt")
    assert got_cfg == cfg and prov["ema"] is True and prov["format"] == "lightning-ckpt"
    ema_full = {**ema, "rotary_emb.inv_freq": state["rotary_emb.inv_freq"]}
    with torch.no_grad():
        assert torch.equal(model(ids, s), _direct(cfg, ema_full)(ids, s))
        raw, _, prov_raw = load_mdlm_backbone(tmp_path / "mdlm.ckpt", use_ema=False)
        assert prov_raw["ema"] is False
        assert torch.equal(raw(ids, s), _direct(cfg, state)(ids, s))
        assert not torch.allclose(raw(ids, s), model(ids, s))


def test_mdlm_repo_sedd_ckpt_is_time_conditioned_with_score_shift(tmp_path):
    cfg = tiny_config(time_conditioning=True)
    write_mdlm_lightning_ckpt(tmp_path / "sedd.ckpt", cfg, seed=15, parameterization="sedd")
    _, got_cfg, prov = load_sedd_backbone(tmp_path / "sedd.ckpt")
    assert got_cfg.time_conditioning and got_cfg.scale_by_sigma and prov["parameterization"] == "sedd"
    write_mdlm_lightning_ckpt(tmp_path / "mdlm.ckpt", tiny_config(time_conditioning=False), seed=15)
    with pytest.raises(CheckpointError, match="parameterization 'subs'"):
        load_sedd_backbone(tmp_path / "mdlm.ckpt")


class _Payload:
    """Unpickling this runs exec(...) under a plain pickle.load; our loader must not."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def test_lightning_ckpt_with_foreign_objects_runs_no_code(tmp_path):
    cfg = tiny_config(time_conditioning=False)
    marker = tmp_path / "marker"
    hp = {"config": None, "tokenizer": _Payload(marker)}
    write_mdlm_lightning_ckpt(tmp_path / "x.ckpt", cfg, seed=16, hyper_parameters=hp)
    model, got_cfg, prov = load_mdlm_backbone(tmp_path / "x.ckpt")
    assert not marker.exists()
    # the config could not be read: sizes from the tensor shapes, heads from len(inv_freq) = head_dim / 2
    assert prov["config_source"] == "inferred from tensor shapes"
    assert got_cfg == replace(cfg, length=1024)  # the context length is not visible in the weights


def test_checkpoint_referencing_os_is_refused(tmp_path):
    torch.save({"state_dict": {}, "evil": OsCall()}, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match="refusing"):
        read_torch_file(tmp_path / "evil.ckpt")


class OsCall:
    def __reduce__(self):
        return (os.system, ("true",))


# ---------------------------------------------------------------------------------------------------
# Mismatches and offline failures: one line naming the problem
# ---------------------------------------------------------------------------------------------------


def test_missing_key_is_one_line_naming_it(tmp_path):
    cfg = tiny_config(time_conditioning=False)
    state = random_state_dict(cfg)
    del state["blocks.1.mlp.0.bias"]
    write_mdlm_hub_folder(tmp_path / "m", cfg, state=state)
    with pytest.raises(CheckpointError) as err:
        load_mdlm_backbone(tmp_path / "m")
    msg = str(err.value)
    assert "\n" not in msg and "missing backbone.blocks.1.mlp.0.bias" in msg


def test_wrong_shape_and_unexpected_key_are_named(tmp_path):
    cfg = tiny_config(scale_by_sigma=True)
    state = OrderedDict(random_state_dict(cfg))
    state["blocks.0.attn_out.weight"] = torch.zeros(32, 31)
    state["blocks.0.extra.weight"] = torch.zeros(2)
    write_sedd_hub_folder(tmp_path / "s", cfg, state=state)
    with pytest.raises(CheckpointError) as err:
        load_sedd_backbone(tmp_path / "s")
    msg = str(err.value)
    assert "\n" not in msg
    assert "unexpected blocks.0.extra.weight" in msg
    assert "mis-shaped blocks.0.attn_out.weight [32, 31] (expected [32, 32])" in msg


def test_config_disagreeing_with_weights_is_named(tmp_path):
    cfg = tiny_config(time_conditioning=False)
    write_mdlm_hub_folder(tmp_path / "m", cfg, state=random_state_dict(tiny_config(n_blocks=3)))
    with pytest.raises(CheckpointError, match=r"unexpected backbone\.blocks\.2\."):
        load_mdlm_backbone(tmp_path / "m")


def test_offline_hub_id_fails_fast_with_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(CheckpointError) as err:
        load_sedd_backbone("dlmbench-test/no-such-sedd")
    assert time.monotonic() - start < 5.0
    msg = str(err.value)
    assert "\n" not in msg
    assert "dlmbench-test/no-such-sedd" in msg and "local" in msg and "HF_HUB_OFFLINE" in msg and "cache" in msg


def test_missing_path_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="neither an existing path"):
        load_mdlm_backbone(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------------------
# Output heads
# ---------------------------------------------------------------------------------------------------


def test_subs_log_probs_formula():
    g = torch.Generator().manual_seed(4)
    V, mask = 7, 6
    logits = torch.randn(2, 5, V, dtype=torch.float64, generator=g)
    xt = torch.tensor([[6, 1, 6, 3, 6], [0, 6, 6, 6, 2]])
    out = mdlm_subs_log_probs(logits, xt, mask)
    for b in range(2):
        for i in range(5):
            if xt[b, i] == mask:
                real = logits[b, i, :mask]
                want = real - torch.log(torch.exp(real).sum())
                torch.testing.assert_close(out[b, i, :mask], want, rtol=1e-6, atol=1e-6)
                assert out[b, i, mask] < -9e5
            else:
                assert out[b, i, xt[b, i]] == 0
                others = torch.ones(V, dtype=torch.bool)
                others[xt[b, i]] = False
                assert (out[b, i, others] == -1e6).all()
    assert torch.equal(logits, torch.randn(2, 5, V, dtype=torch.float64, generator=torch.Generator().manual_seed(4)))


def test_sedd_log_score_formula():
    g = torch.Generator().manual_seed(5)
    V = 9
    logits = torch.randn(3, 4, V, dtype=torch.float64, generator=g)
    xt = torch.randint(0, V, (3, 4), generator=g)
    sigma = torch.tensor([0.01, 0.49, 3.0], dtype=torch.float64)
    out = sedd_log_score(logits, xt, sigma)
    for b in range(3):
        shift = math.log(math.exp(float(sigma[b])) - 1) + math.log(V - 1)
        for i in range(4):
            for y in range(V):
                want = 0.0 if y == xt[b, i] else float(logits[b, i, y]) - shift
                assert abs(float(out[b, i, y]) - want) < 1e-9
    no_shift = sedd_log_score(logits, xt, sigma, scale_by_sigma=False)
    assert torch.equal(no_shift.gather(-1, xt[..., None]), torch.zeros(3, 4, 1, dtype=torch.float64))
