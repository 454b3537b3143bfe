"""LLaDA backbone, loader, tiny checkpoints and chat template against independent ground truth.

Ground truths used here:
* the published 8B facts (config.json fields, key names, 8,015,581,184 parameters = total_size / 2 bytes);
* a second forward pass written differently (float64, explicit per-head loops, explicit RoPE rotation
  matrices, explicit softmax that leaves padded keys out of the sum);
* the published Jinja chat template rendered by jinja2, and the template text of its tokenizer_config.json;
* safetensors files read back with ``safetensors.torch.load_file`` into an eagerly built module.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from dlmbench.families.llada.backbone import (
    BOS_ID,
    EOS_ID,
    EOT_ID,
    MASK_ID,
    LLaDABackbone,
    LLaDAConfig,
    expected_shapes,
    llada_8b_config,
)
from dlmbench.families.llada.loader import (
    check_state_shapes,
    load_llada_backbone,
    load_llada_tokenizer,
    parameter_count,
    read_config,
)
from dlmbench.families.llada.writer import (
    config_json,
    random_state_dict,
    save_llada_checkpoint,
    tiny_llada_config,
    write_tiny_llada,
)
from dlmbench.families.llada.chat import chat_prompt_ids, continue_chat_ids, render_chat
from dlmbench.errors import CheckpointError, DlmbenchError

# The published GSAI-ML/LLaDA-8B-Instruct config.json (https://huggingface.co/GSAI-ML/LLaDA-8B-Instruct), verbatim.
PUBLISHED_CONFIG = {
    "activation_type": "silu", "alibi": False, "alibi_bias_max": 8.0, "architectures": ["LLaDAModelLM"],
    "attention_dropout": 0.0, "attention_layer_norm": False, "attention_layer_norm_with_affine": True,
    "auto_map": {"AutoConfig": "configuration_llada.LLaDAConfig", "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
                 "AutoModel": "modeling_llada.LLaDAModelLM"},
    "bias_for_layer_norm": False, "block_group_size": 1, "block_type": "llama", "d_model": 4096,
    "embedding_dropout": 0.0, "embedding_size": 126464, "eos_token_id": 126081, "flash_attention": False,
    "include_bias": False, "include_qkv_bias": False, "init_cutoff_factor": None, "init_device": "meta",
    "init_fn": "mitchell", "init_std": 0.02, "input_emb_norm": False, "layer_norm_type": "rms",
    "layer_norm_with_affine": True, "mask_token_id": 126336, "max_sequence_length": 4096, "mlp_hidden_size": 12288,
    "mlp_ratio": 4, "model_type": "llada", "multi_query_attention": None, "n_heads": 32, "n_kv_heads": 32,
    "n_layers": 32, "pad_token_id": 126081, "precision": "amp_bf16", "residual_dropout": 0.0, "rms_norm_eps": 1e-05,
    "rope": True, "rope_full_precision": True, "rope_theta": 500000.0, "scale_logits": False,
    "transformers_version": "4.46.3", "use_cache": False, "vocab_size": 126464, "weight_tying": False,
}

# The published chat_template of tokenizer_config.json, verbatim.
PUBLISHED_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
)

SMALL = dict(vocab_size=64, embedding_size=64)


# ----------------------------------------------------------------------------------------------------
# the 8B architecture from shapes only
# ----------------------------------------------------------------------------------------------------


def test_published_config_parses_to_8b_architecture():
    cfg = LLaDAConfig.from_dict(PUBLISHED_CONFIG)
    assert cfg == llada_8b_config()
    assert (cfg.head_dim, cfg.effective_n_kv_heads, cfg.hidden_size, cfg.padded_vocab_size) == (128, 32, 12288, 126464)
    # the tiny writer emits exactly the published field set
    assert set(config_json(cfg)) == set(PUBLISHED_CONFIG)
    assert config_json(cfg) == PUBLISHED_CONFIG


def test_8b_parameter_count_and_key_names_from_shapes_only():
    cfg = llada_8b_config()
    d, f, v, n = 4096, 12288, 126464, 32
    closed_form = 2 * v * d + n * (4 * d * d + 3 * d * f + 2 * d) + d  # from the config.json shapes
    assert parameter_count(cfg) == closed_form == 8_015_581_184
    assert 2 * parameter_count(cfg) == 16031162368  # metadata.total_size of the bf16 index (bytes)
    shapes = expected_shapes(cfg)
    per_block = {"attn_norm": (d,), "q_proj": (d, d), "k_proj": (d, d), "v_proj": (d, d), "attn_out": (d, d),
                 "ff_norm": (d,), "ff_proj": (f, d), "up_proj": (f, d), "ff_out": (d, f)}
    want = {"model.transformer.wte.weight": (v, d), "model.transformer.ln_f.weight": (d,),
            "model.transformer.ff_out.weight": (v, d)}
    for i in range(n):
        want.update({f"model.transformer.blocks.{i}.{k}.weight": s for k, s in per_block.items()})
    assert shapes == want


def test_unsupported_architecture_switch_is_a_checkpoint_error():
    for field, value in [("block_type", "sequential"), ("alibi", True), ("include_bias", True), ("rope", False)]:
        with pytest.raises(CheckpointError, match=field):
            LLaDAConfig.from_dict({**PUBLISHED_CONFIG, field: value})


# ----------------------------------------------------------------------------------------------------
# forward pass vs a second implementation (float64, explicit loops and rotation matrices)
# ----------------------------------------------------------------------------------------------------


def _rotation(p: int, d: int, theta: float) -> torch.Tensor:
    """Explicit RoPE rotation for position p: plane (j, j + d/2) turned by p·θ^(−2j/d)."""
    R = torch.zeros(d, d, dtype=torch.float64)
    for j in range(d // 2):
        a = p * theta ** (-2.0 * j / d)
        c, s = math.cos(a), math.sin(a)
        R[j, j], R[j, j + d // 2], R[j + d // 2, j], R[j + d // 2, j + d // 2] = c, -s, s, c
    return R


def _reference_logits(sd: dict, cfg: LLaDAConfig, ids: list[int], real: list[bool]) -> torch.Tensor:
    sd = {k.removeprefix("model.transformer."): v.to(torch.float64) for k, v in sd.items()}
    L, H, d, Hk = len(ids), cfg.n_heads, cfg.head_dim, cfg.effective_n_kv_heads
    R = [_rotation(p, d, cfg.rope_theta) for p in range(L)]

    def norm(x, w):
        return torch.stack([w * (row / math.sqrt(float((row * row).mean()) + cfg.rms_norm_eps)) for row in x])

    x = sd["wte.weight"][torch.tensor(ids)]
    for b in range(cfg.n_layers):
        w = lambda name: sd[f"blocks.{b}.{name}.weight"]  # noqa: E731, B023 - used within the iteration
        h = norm(x, w("attn_norm"))
        q, k, v = h @ w("q_proj").T, h @ w("k_proj").T, h @ w("v_proj").T
        heads = []
        for hh in range(H):
            kh = hh // (H // Hk)
            Q = torch.stack([R[p] @ q[p, hh * d:(hh + 1) * d] for p in range(L)])
            K = torch.stack([R[p] @ k[p, kh * d:(kh + 1) * d] for p in range(L)])
            V = v[:, kh * d:(kh + 1) * d]
            out = torch.zeros(L, d, dtype=torch.float64)
            for i in range(L):
                scores = [float(Q[i] @ K[j]) / math.sqrt(d) for j in range(L)]
                keys = [j for j in range(L) if real[j]]
                m = max(scores[j] for j in keys)
                e = {j: math.exp(scores[j] - m) for j in keys}
                z = sum(e.values())
                out[i] = sum(e[j] / z * V[j] for j in keys)
            heads.append(out)
        x = x + torch.cat(heads, dim=1) @ w("attn_out").T
        h = norm(x, w("ff_norm"))
        gate = h @ w("ff_proj").T
        x = x + ((gate / (1 + torch.exp(-gate))) * (h @ w("up_proj").T)) @ w("ff_out").T
    return norm(x, sd["ln_f.weight"]) @ sd["ff_out.weight"].T


def _module(cfg, sd, dtype):
    m = LLaDABackbone(cfg, dtype=dtype)
    m.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, strict=True)
    return m.eval()


@pytest.mark.parametrize(
    "overrides",
    [dict(), dict(n_heads=4, n_kv_heads=2, rope_theta=10.0), dict(n_kv_heads=1, rope_theta=100.0)],
    ids=["published-theta", "gqa-small-theta", "mqa"],
)
def test_forward_equals_explicit_float64_reference(overrides):
    cfg = tiny_llada_config(**SMALL, **overrides)
    sd = random_state_dict(cfg, seed=3, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 64, (2, 7), generator=g)
    mask = torch.tensor([[True] * 7, [True] * 5 + [False] * 2])
    want = torch.stack([_reference_logits(sd, cfg, ids[b].tolist(), mask[b].tolist()) for b in range(2)])

    got64 = _module(cfg, sd, torch.float64)(ids, mask)
    assert torch.allclose(got64, want, rtol=0, atol=1e-10)
    got32 = _module(cfg, sd, torch.float32)(ids, mask).double()
    assert torch.allclose(got32, want, rtol=1e-4, atol=1e-4)


def test_attention_is_bidirectional_not_causal():
    cfg = tiny_llada_config(**SMALL)
    m = _module(cfg, random_state_dict(cfg, seed=0), torch.float32)
    ids = torch.arange(8)[None] % 64
    changed = ids.clone()
    changed[0, -1] = 63
    with torch.no_grad():
        a, b = m(ids), m(changed)
        # the first position sees the last token, also when a key-padding mask is passed
        a_m = m(torch.cat([ids, torch.zeros(1, 2, dtype=torch.long)], 1), torch.tensor([[True] * 8 + [False] * 2]))
        b_m = m(torch.cat([changed, torch.zeros(1, 2, dtype=torch.long)], 1), torch.tensor([[True] * 8 + [False] * 2]))
    assert (a[0, 0] - b[0, 0]).abs().max() > 1e-3
    assert (a_m[0, 0] - b_m[0, 0]).abs().max() > 1e-3


def test_padding_leaves_real_positions_unchanged():
    cfg = tiny_llada_config(**SMALL)
    m = _module(cfg, random_state_dict(cfg, seed=1), torch.float32)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 64, (1, 9), generator=g)
    pad = torch.full((1, 4), 7)
    with torch.no_grad():
        base = m(ids)
        right = m(torch.cat([ids, pad], 1), torch.tensor([[True] * 9 + [False] * 4]))
        left = m(torch.cat([pad, ids], 1), torch.tensor([[False] * 4 + [True] * 9]))
        # a batch of different lengths equals each sequence alone
        short = ids[:, :5]
        batch = torch.cat([ids, torch.cat([short, torch.full((1, 4), 7)], 1)])
        bmask = torch.tensor([[True] * 9, [True] * 5 + [False] * 4])
        both = m(batch, bmask)
        alone = m(short)
    assert torch.allclose(right[:, :9], base, atol=1e-5)
    assert torch.allclose(left[:, 4:], base, atol=1e-4)  # RoPE scores are relative: shift-invariant
    assert torch.allclose(both[0], base[0], atol=1e-5)
    assert torch.allclose(both[1, :5], alone[0], atol=1e-5)
    # without the mask the padding is attended to and changes the logits (the mask is doing the work)
    with torch.no_grad():
        unmasked = m(torch.cat([ids, pad], 1))
    assert (unmasked[:, :9] - base).abs().max() > 1e-3


# ----------------------------------------------------------------------------------------------------
# tiny checkpoints in the published format, through the real loading path
# ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    return write_tiny_llada(tmp_path_factory.mktemp("llada-tiny"), seed=7, n_shards=2)


def test_tiny_checkpoint_has_the_published_layout(tiny_folder):
    from safetensors import safe_open

    index = json.loads((tiny_folder / "model.safetensors.index.json").read_text())
    cfg = read_config(tiny_folder)
    assert set(index["weight_map"]) == set(expected_shapes(cfg))
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) >= 2 and all(s.endswith(f"-of-{len(shards):05d}.safetensors") for s in shards)
    total = 0
    for shard in shards:
        with safe_open(str(tiny_folder / shard), framework="pt") as f:
            for k in f.keys():
                t = f.get_tensor(k)
                assert t.dtype == torch.bfloat16 and index["weight_map"][k] == shard
                total += t.numel() * t.element_size()
    assert index["metadata"]["total_size"] == total
    assert set(json.loads((tiny_folder / "config.json").read_text())) == set(PUBLISHED_CONFIG)


def test_loader_equals_eager_state_dict_load(tiny_folder):
    from safetensors.torch import load_file

    cfg = read_config(tiny_folder)
    sd = {}
    for shard in sorted(tiny_folder.glob("model-*.safetensors")):
        sd.update(load_file(str(shard)))
    eager = _module(cfg, sd, torch.float32)
    lazy = load_llada_backbone(tiny_folder)
    assert next(lazy.parameters()).dtype == torch.float32 and not lazy.training
    ids = torch.tensor([[BOS_ID, 5, 9, MASK_ID, MASK_ID, 200, EOS_ID]])
    with torch.no_grad():
        assert torch.equal(lazy(ids), eager(ids))
    assert all(torch.equal(lazy.state_dict()[k], v.float()) for k, v in sd.items())


def test_save_load_round_trip_gives_identical_logits(tiny_folder, tmp_path):
    first = load_llada_backbone(tiny_folder)
    ids = torch.tensor([[BOS_ID, 1, 2, 3, MASK_ID, MASK_ID, EOT_ID, EOS_ID]])
    with torch.no_grad():
        want = first(ids)
    for dtype, n_shards in [(None, 3), (torch.bfloat16, 1)]:  # float32 as loaded; bf16 as published (lossless here)
        folder = save_llada_checkpoint(
            first.state_dict(), first.config, tmp_path / str(dtype), n_shards=n_shards, dtype=dtype
        )
        again = load_llada_backbone(folder)
        with torch.no_grad():
            assert torch.equal(again(ids), want)


def test_loader_dtype_setting(tiny_folder):
    m = load_llada_backbone(tiny_folder, dtype=torch.bfloat16)
    assert {p.dtype for p in m.parameters()} == {torch.bfloat16}
    with torch.no_grad():
        out = m(torch.tensor([[1, 2, MASK_ID]]))
    assert out.dtype == torch.bfloat16 and out.shape == (1, 3, 126464) and torch.isfinite(out).all()


def _rewrite(folder: Path, edit) -> None:
    """Apply ``edit(dict)`` to every shard's tensors and rebuild the index accordingly."""
    from safetensors.torch import load_file, save_file

    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    weight_map = {}
    for shard in sorted(set(index["weight_map"].values())):
        tensors = edit(load_file(str(folder / shard)))
        save_file(tensors, str(folder / shard))
        weight_map.update({k: shard for k in tensors})
    index["weight_map"] = weight_map
    index_path.write_text(json.dumps(index))


def test_renamed_key_is_one_line_checkpoint_error(tmp_path):
    folder = write_tiny_llada(tmp_path / "renamed", tokenizer=False)
    old, new = "model.transformer.blocks.1.q_proj.weight", "model.transformer.blocks.1.query.weight"
    _rewrite(folder, lambda t: {(new if k == old else k): v for k, v in t.items()})
    with pytest.raises(CheckpointError) as e:
        load_llada_backbone(folder)
    msg = str(e.value)
    assert "\n" not in msg and f"missing {old}" in msg and f"unexpected {new}" in msg


def test_misshaped_key_is_one_line_checkpoint_error(tmp_path):
    folder = write_tiny_llada(tmp_path / "misshaped", tokenizer=False)
    key = "model.transformer.blocks.0.ff_proj.weight"
    _rewrite(folder, lambda t: {k: (v.T.contiguous() if k == key else v) for k, v in t.items()})
    with pytest.raises(CheckpointError) as e:
        load_llada_backbone(folder)
    msg = str(e.value)
    assert "\n" not in msg and f"mis-shaped {key} [16, 24] (expected [24, 16])" in msg


def test_check_state_shapes_names_first_keys():
    with pytest.raises(CheckpointError, match=r"missing a; unexpected c$"):
        check_state_shapes({"a": (1,), "b": (2,)}, {"b": (2,), "c": (3,)})
    many = {f"k{i}": (1,) for i in range(5)}
    with pytest.raises(CheckpointError, match=r"missing k0, k1, k2 \(\+2 more\)"):
        check_state_shapes(many, {})
    check_state_shapes({"a": (1,)}, {"a": (1,)})  # no error when they agree


def test_missing_shard_and_missing_folder(tmp_path):
    folder = write_tiny_llada(tmp_path / "noshard", tokenizer=False)
    next(folder.glob("model-00002-*.safetensors")).unlink()
    with pytest.raises(CheckpointError, match="model-00002-of-00002.safetensors"):
        load_llada_backbone(folder)
    with pytest.raises(DlmbenchError):
        load_llada_backbone(tmp_path / "does-not-exist")


# ----------------------------------------------------------------------------------------------------
# tokenizer and chat template
# ----------------------------------------------------------------------------------------------------


def test_tokenizer_special_ids(tiny_folder):
    tok = load_llada_tokenizer(tiny_folder)
    ids = {t: tok.convert_tokens_to_ids(t) for t in ["<|mdm_mask|>", "<|endoftext|>", "<|startoftext|>", "<|eot_id|>",
                                                      "<|start_header_id|>", "<|end_header_id|>", "<role>"]}
    assert ids == {"<|mdm_mask|>": 126336, "<|endoftext|>": 126081, "<|startoftext|>": 126080, "<|eot_id|>": 126348,
                   "<|start_header_id|>": 126346, "<|end_header_id|>": 126347, "<role>": 126340}
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (126080, 126081, 126081)
    text = "Hello, world"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def _jinja(messages) -> str:
    import jinja2

    return jinja2.Environment().from_string(PUBLISHED_TEMPLATE).render(messages=messages, bos_token="<|startoftext|>")


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "Hello"}],
        [{"role": "user", "content": "  What is 2+2?\n"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
         {"role": "assistant", "content": " Hello! "}, {"role": "user", "content": "Bye\t"}],
        [],
    ],
)
def test_chat_template_equals_published_jinja(messages):
    assert render_chat(messages) == _jinja(messages)


def test_chat_template_text_of_references():
    # GSAI-ML/LLaDA-8B-Instruct tokenizer_config.json, chat_template:
    # bos + "<|start_header_id|>{role}<|end_header_id|>\n\n" + content.strip() + "<|eot_id|>",
    # then "<|start_header_id|>assistant<|end_header_id|>\n\n"
    assert render_chat([{"role": "user", "content": " Lily runs. "}]) == (
        "<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nLily runs.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_chat_ids_with_tokenizer(tiny_folder):
    tok = load_llada_tokenizer(tiny_folder)
    ids = chat_prompt_ids(tok, [{"role": "user", "content": "Hi"}])
    assert ids[:2] == [BOS_ID, 126346] and ids[-3:] == [126347, 198, 198]  # 198 = "\n" in the byte alphabet
    assert ids.count(BOS_ID) == 1 and ids.count(EOT_ID) == 1
    # chat.py multi-turn: previous output without EOS, new turn without its BOS
    second = chat_prompt_ids(tok, [{"role": "user", "content": "More"}])
    previous = ids + [72, 73, EOT_ID, EOS_ID, EOS_ID]
    assert continue_chat_ids(previous, second) == ids + [72, 73, EOT_ID] + second[1:]
