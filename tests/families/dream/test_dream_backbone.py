"""Dream backbone, loader and tiny checkpoints against independent ground truth.

* the 7B facts: Qwen2.5-7B's sizes (Dream-7B keeps them), 7,615,616,512 parameters (Qwen2.5-7B's published count;
  2 bytes each = the bf16 index's total_size 15,231,233,024);
* a second forward pass written differently (float64, explicit per-head loops, explicit RoPE rotation matrices,
  explicit softmax over the real keys only);
* files read back with ``safetensors.torch.load_file`` into an eagerly built module.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from dlmbench.errors import CheckpointError
from dlmbench.families.dream.backbone import DreamBackbone, DreamConfig, dream_7b_config, expected_shapes
from dlmbench.families.dream.loader import (
    check_dream_tokenizer,
    load_dream_backbone,
    load_dream_tokenizer,
    parameter_count,
    read_config,
)
from dlmbench.families.dream.writer import (
    TINY_SPECIALS,
    config_json,
    random_state_dict,
    save_dream_checkpoint,
    tiny_dream_config,
    write_tiny_dream,
)


def test_7b_parameter_count_and_keys_from_shapes_only():
    cfg = dream_7b_config()
    v, d, f, n, kv = 152064, 3584, 18944, 28, 4 * 128
    per_layer = d * d + d + 2 * (d * kv + kv) + d * d + 3 * d * f + 2 * d
    assert parameter_count(cfg) == 2 * v * d + n * per_layer + d == 7_615_616_512
    shapes = expected_shapes(cfg)
    assert shapes["model.layers.27.self_attn.k_proj.bias"] == (kv,)
    assert shapes["lm_head.weight"] == (v, d)
    assert "model.layers.0.self_attn.o_proj.bias" not in shapes and "model.layers.0.mlp.up_proj.bias" not in shapes
    assert len(shapes) == 3 + 12 * n  # embed, norm, head + 12 tensors per layer


def test_config_round_trip_and_refusals():
    cfg = tiny_dream_config()
    data = config_json(cfg)
    assert data["model_type"] == "Dream" and data["architectures"] == ["DreamModel"]
    assert DreamConfig.from_dict(data) == cfg
    for field, value in [("hidden_act", "gelu"), ("use_sliding_window", True), ("rope_scaling", {"rope_type": "yarn"}),
                         ("model_type", "qwen2"), ("num_key_value_heads", 3)]:
        with pytest.raises(CheckpointError):
            DreamConfig.from_dict({**data, field: value})


def _rot(p: int, dim: int, theta: float) -> torch.Tensor:
    R = torch.zeros(dim, dim, dtype=torch.float64)
    for j in range(dim // 2):
        a = p * theta ** (-2.0 * j / dim)
        c, s = math.cos(a), math.sin(a)
        R[j, j], R[j, j + dim // 2], R[j + dim // 2, j], R[j + dim // 2, j + dim // 2] = c, -s, s, c
    return R


def _reference_forward(state: dict, c: DreamConfig, ids: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Per-head loops, explicit rotations and softmax; float64. ``keep`` [L] bool: real keys."""
    sd = {k: v.double() for k, v in state.items()}
    L, hd, H, G = ids.shape[0], c.head_dim, c.num_attention_heads, c.n_kv_heads

    def norm(x, w):
        return w * x / torch.sqrt((x * x).mean(-1, keepdim=True) + c.rms_norm_eps)

    x = sd["model.embed_tokens.weight"][ids]
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        h = norm(x, sd[p + "input_layernorm.weight"])
        q = h @ sd[p + "self_attn.q_proj.weight"].T + sd[p + "self_attn.q_proj.bias"]
        k = h @ sd[p + "self_attn.k_proj.weight"].T + sd[p + "self_attn.k_proj.bias"]
        v = h @ sd[p + "self_attn.v_proj.weight"].T + sd[p + "self_attn.v_proj.bias"]
        out = torch.zeros(L, H * hd, dtype=torch.float64)
        for head in range(H):
            g = head // (H // G)
            qh = torch.stack([_rot(t, hd, c.rope_theta) @ q[t, head * hd:(head + 1) * hd] for t in range(L)])
            kh = torch.stack([_rot(t, hd, c.rope_theta) @ k[t, g * hd:(g + 1) * hd] for t in range(L)])
            vh = v[:, g * hd:(g + 1) * hd]
            for t in range(L):
                scores = torch.tensor([float(qh[t] @ kh[s]) / math.sqrt(hd) for s in range(L)], dtype=torch.float64)
                if keep is not None:
                    scores[~keep] = float("-inf")
                w = torch.exp(scores - scores.max())
                out[t, head * hd:(head + 1) * hd] = (w / w.sum()) @ vh
        x = x + out @ sd[p + "self_attn.o_proj.weight"].T
        h = norm(x, sd[p + "post_attention_layernorm.weight"])
        gate = h @ sd[p + "mlp.gate_proj.weight"].T
        x = x + (gate * torch.sigmoid(gate) * (h @ sd[p + "mlp.up_proj.weight"].T)) @ sd[p + "mlp.down_proj.weight"].T
    x = norm(x, sd["model.norm.weight"])
    head_w = sd["model.embed_tokens.weight"] if c.tie_word_embeddings else sd["lm_head.weight"]
    return x @ head_w.T


@pytest.mark.parametrize("tied", [False, True])
def test_forward_matches_a_second_implementation(tied):
    c = tiny_dream_config(tie_word_embeddings=tied)
    state = random_state_dict(c, seed=1, dtype=torch.float64)
    net = DreamBackbone(c, dtype=torch.float64)
    net.load_state_dict(state, strict=True)
    ids = torch.tensor([[5, 17, 260, 3, 99, 260, 42]])
    got = net(ids)[0]
    want = _reference_forward(state, c, ids[0])
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-10)
    # bidirectional: changing the last token changes the first position's output
    ids2 = ids.clone()
    ids2[0, -1] = 7
    assert not torch.allclose(net(ids2)[0, 0], got[0])
    # key padding: padded keys are left out of the softmax of the real positions
    keep = torch.tensor([True] * 5 + [False] * 2)
    padded = net(ids, attention_mask=keep[None])[0]
    assert torch.allclose(padded[:5], _reference_forward(state, c, ids[0], keep)[:5], rtol=1e-10, atol=1e-10)


def test_written_checkpoint_loads_key_for_key(tmp_path):
    from safetensors.torch import load_file

    c = tiny_dream_config()
    folder = write_tiny_dream(tmp_path / "d", c, seed=2, n_shards=3)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == 3
    files = {}
    for shard in set(index["weight_map"].values()):
        files.update(load_file(str(folder / shard)))
    assert all(t.dtype == torch.bfloat16 for t in files.values())
    assert index["metadata"]["total_size"] == 2 * parameter_count(c)
    net = load_dream_backbone(folder)
    assert read_config(folder) == c
    sd = net.state_dict()
    assert set(sd) == set(files)
    assert all(torch.equal(sd[k], files[k].float()) for k in files)
    tok = load_dream_tokenizer(folder)
    check_dream_tokenizer(tok, c, where="tiny")
    assert tok.convert_tokens_to_ids("<|mask|>") == c.mask_token_id == TINY_SPECIALS["<|mask|>"]


def test_loader_is_strict(tmp_path):
    from safetensors.torch import save_file

    c = tiny_dream_config()
    sd = random_state_dict(c)
    # a missing key
    broken = dict(sd)
    del broken["model.layers.1.self_attn.q_proj.bias"]
    save_dream_checkpoint(broken, c, tmp_path / "missing")
    with pytest.raises(CheckpointError, match="missing model.layers.1.self_attn.q_proj.bias"):
        load_dream_backbone(tmp_path / "missing")
    # an unexpected key (a bias on o_proj that Dream does not have)
    save_dream_checkpoint({**sd, "model.layers.0.self_attn.o_proj.bias": torch.zeros(32)}, c, tmp_path / "extra")
    with pytest.raises(CheckpointError, match="unexpected model.layers.0.self_attn.o_proj.bias"):
        load_dream_backbone(tmp_path / "extra")
    # a tensor in a shard that the index does not list
    folder = save_dream_checkpoint(sd, c, tmp_path / "unlisted", n_shards=1)
    shard = folder / "model-00001-of-00001.safetensors"
    save_file({**{k: v.to(torch.bfloat16).contiguous() for k, v in sd.items()}, "stray": torch.zeros(2)}, str(shard))
    with pytest.raises(CheckpointError, match="unexpected stray"):
        load_dream_backbone(folder)
    # mis-shaped (config says another width)
    folder = save_dream_checkpoint(sd, c, tmp_path / "shape")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["intermediate_size"] = 40
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="mis-shaped"):
        load_dream_backbone(folder)
    # tied config with an lm_head present: refused as unexpected
    folder = save_dream_checkpoint(sd, tiny_dream_config(tie_word_embeddings=True), tmp_path / "tied")
    with pytest.raises(CheckpointError, match="unexpected lm_head.weight"):
        load_dream_backbone(folder)


def test_tokenizer_that_does_not_belong_is_refused(tmp_path):
    c = tiny_dream_config(vocab_size=600, mask_token_id=500)
    folder = write_tiny_dream(tmp_path / "d", tiny_dream_config(), seed=0)
    tok = load_dream_tokenizer(folder)
    with pytest.raises(CheckpointError):
        check_dream_tokenizer(tok, c, where="wrong")
