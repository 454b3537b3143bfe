"""BD3-LM's network and its published format: key-for-key loading, one-line errors, and the block masks
checked by what they let each output see (perturbation), against MDLM's DiT (one block) and against the
single-stream block-causal path the sampler uses (a second computation of the same conditionals)."""

from __future__ import annotations

import json

import pytest
import torch

from dlmbench.errors import CheckpointError
from dlmbench.families.bd3lm.backbone import block_causal_mask, load_bd3lm_backbone, two_stream_mask
from dlmbench.families.bd3lm.writer import tiny_bd3lm_config, write_bd3lm_hub_folder
from dlmbench.nets.dit import DiT

MASK = 66


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bd3lm")
    config = tiny_bd3lm_config(block_size=4)
    state = write_bd3lm_hub_folder(folder, config, seed=3)
    net, cfg, prov = load_bd3lm_backbone(folder, dtype=torch.float64)
    return folder, state, net, cfg, prov


def rows(seed: int, n: int = 2, length: int = 16):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randint(0, MASK, (n, length), generator=g)
    xt = torch.where(torch.rand(n, length, generator=g) < 0.5, torch.full_like(x0, MASK), x0)
    return xt, x0


def test_published_config_fields_and_provenance(tiny):
    folder, _state, _net, cfg, prov = tiny
    data = json.loads((folder / "config.json").read_text())
    assert data["model_type"] == "bd3lm" and data["block_size"] == 4 and data["cross_attn"] is True
    assert cfg.block_size == 4 and cfg.mask_index == 66 and not cfg.time_conditioning
    assert prov["trained_block_size"] == 4 and prov["format"] == "hf-bd3lm"
    assert prov["sampling_eps_min"] == pytest.approx(1e-3) and prov["sampling_eps_max"] == pytest.approx(0.999)


def test_masks_by_their_definition():
    L, bs = 7, 3
    m = two_stream_mask(L, bs)
    for q in range(2 * L):
        for k in range(2 * L):
            bq, bk = (q % L) // bs, (k % L) // bs
            qt, kt = q < L, k < L  # in the x_t half?
            want = (bq == bk and qt == kt) or (qt and not kt and bq > bk) or (not qt and not kt and bq >= bk)
            assert bool(m[q, k]) == want, (q, k)
    c = block_causal_mask(L, bs)
    assert torch.equal(c, m[L:, L:])
    assert torch.equal(block_causal_mask(L, 1), torch.ones(L, L).tril().bool())


def test_each_output_sees_its_block_and_the_clean_past_only(tiny):
    *_, net, _cfg, _prov = tiny
    xt, x0 = rows(0)
    base = net.forward_two_stream(xt, x0)
    for b in range(4):
        s, e = 4 * b, 4 * b + 4
        # x_t of other blocks and x_0 of this and later blocks are invisible to block b
        xt2, x02 = xt.clone(), x0.clone()
        xt2[:, :s] = 5
        xt2[:, e:] = 7
        x02[:, s:] = 9
        out = net.forward_two_stream(xt2, x02)
        assert torch.allclose(out[:, s:e], base[:, s:e], atol=1e-12, rtol=0)
        if b > 0:  # the clean past is seen
            x03 = x0.clone()
            x03[:, s - 1] = (x03[:, s - 1] + 1) % MASK
            assert not torch.allclose(net.forward_two_stream(xt, x03)[:, s:e], base[:, s:e])


def test_two_stream_equals_block_causal_single_stream(tiny):
    *_, net, _cfg, _prov = tiny
    xt, x0 = rows(1)
    two = net.forward_two_stream(xt, x0)
    for b in range(4):
        s, e = 4 * b, 4 * b + 4
        one = net.forward_block_causal(torch.cat([x0[:, :s], xt[:, s:e]], dim=1))
        assert torch.allclose(one[:, s:e], two[:, s:e], atol=1e-10, rtol=0)


def test_one_block_is_mdlm_dit_on_x_t(tiny):
    _folder, state, net, cfg, _prov = tiny
    dit = DiT(cfg.dit).double()
    dit.load_state_dict(state)
    dit.eval()
    xt, x0 = rows(2)
    with torch.no_grad():
        assert torch.allclose(net.forward_two_stream(xt, x0, block_size=16), dit(xt, torch.zeros(2)), atol=1e-10, rtol=0)


def test_strict_loading_names_the_offending_tensor(tmp_path):
    from safetensors.torch import load_file, save_file

    config = tiny_bd3lm_config()
    write_bd3lm_hub_folder(tmp_path, config)
    st = load_file(str(tmp_path / "model.safetensors"))
    st["backbone.extra.weight"] = torch.zeros(2)
    save_file(st, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="unexpected backbone.extra.weight"):
        load_bd3lm_backbone(tmp_path)
    del st["backbone.extra.weight"], st["backbone.blocks.1.attn_out.weight"]
    save_file(st, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing backbone.blocks.1.attn_out.weight") as e:
        load_bd3lm_backbone(tmp_path)
    assert "\n" not in str(e.value)


def test_unsupported_configs_are_one_line_errors(tmp_path):
    write_bd3lm_hub_folder(tmp_path, tiny_bd3lm_config())
    data = json.loads((tmp_path / "config.json").read_text())
    for key, value, match in (("cross_attn", False, "cross_attn"), ("adaln", False, "adaln"),
                              ("model_type", "mdlm", "model_type")):
        (tmp_path / "config.json").write_text(json.dumps({**data, key: value}))
        with pytest.raises(CheckpointError, match=match):
            load_bd3lm_backbone(tmp_path)


def test_kv_cache_gives_the_block_causal_logits(tiny):
    *_, net, _cfg, _prov = tiny
    xt, x0 = rows(3)
    for s in (4, 8, 12):
        x = torch.cat([x0[:, :s], xt[:, s:s + 4]], dim=1)
        want = net.forward_block_causal(x)[:, s:]
        got = net.forward_cached(xt[:, s:s + 4], net.prefix_cache(x0[:, :s]))
        assert torch.allclose(got, want, atol=1e-10, rtol=0)
