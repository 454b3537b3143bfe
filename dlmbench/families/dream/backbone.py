"""Dream's bidirectional Qwen2-style transformer, written to load the published state dict key for key.

Source: ``Dream-org/Dream-v0-Base-7B`` / ``-Instruct-7B`` (``config.json``, ``model.safetensors.index.json``,
``configuration_dream.py: DreamConfig``, ``modeling_dream.py: DreamModel``, ``DreamBaseModel``,
``DreamDecoderLayer``, ``DreamSdpaAttention``, ``DreamMLP``, ``DreamRMSNorm``, ``DreamRotaryEmbedding``; Ye et al.
2025, "Dream 7B", https://github.com/HKUNLP/Dream). Dream-7B is initialised from Qwen2.5-7B and keeps its
architecture; only the attention is bidirectional. For an input ``x = embed_tokens(ids)`` each layer computes

    h   = x + W_o · Attn(RoPE(W_q n₁(x) + b_q), RoPE(W_k n₁(x) + b_k), W_v n₁(x) + b_v)    n₁ = input_layernorm
    out = h + W_down · ( SiLU(W_gate n₂(h)) ⊙ W_up n₂(h) )                               n₂ = post_attention_layernorm

with biases on q, k, v only (none on ``o_proj`` or the MLP), grouped-query attention (``num_key_value_heads`` kv
heads, each shared by ``num_attention_heads / num_key_value_heads`` query heads), then
``logits = lm_head(norm(x))`` (``lm_head`` = ``embed_tokens`` when ``tie_word_embeddings``). Attention is
**bidirectional** (``is_causal=False``, no causal mask ever); an optional key-padding mask only removes padded keys.

The raw output at position ``i`` is Dream's prediction for token ``i + 1`` (it was initialised from an AR model and
trained so): the **shifted-logit convention** is applied by the users of this module
(:func:`dlmbench.families.dream.estimator.shift_logits`), never here, so that this module reads like the reference.

Numerics, as the reference (Qwen2 / LLaMA code of ``transformers`` 4.46):

* RMSNorm ``n(x) = w ⊙ (x / √(mean(x²) + ε))`` normalised in float32, cast back to the input dtype, then scaled by
  ``w``;
* RoPE: ``inv_freq_j = 1 / θ^(2j/d)`` (float32), angles ``p · inv_freq`` in float32, ``cos``/``sin`` cast to the
  hidden states' dtype, the *rotate-half* layout (dimension ``j`` pairs with ``j + d/2``), applied in that dtype;
* ``softmax(q kᵀ / √d) v`` by ``scaled_dot_product_attention(is_causal=False)``.

When the module runs in float64 (tests), "float32" above means the module's dtype.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlmbench.errors import CheckpointError
from dlmbench.nets.rotary import rotate_half

# Special token ids of the Dream (Qwen2.5) tokenizer: Dream-org/Dream-v0-*-7B tokenizer_config.json / config.json.
EOS_ID = 151643  # <|endoftext|>: EOS and pad (config.json pad_token_id / eos_token_id)
BOS_ID = 151665  # <|beginoftext|>: the tokenizer's bos_token (Dream's lm-eval code prepends it: add_bos_token=true)
MASK_ID = 151666  # <|mask|> (config.json mask_token_id)
IM_START_ID = 151644  # <|im_start|> (chat template of the Instruct model)
IM_END_ID = 151645  # <|im_end|>


@dataclass(frozen=True)
class DreamConfig:
    """The fields of Dream's published ``config.json`` (names as published; defaults: Dream-v0-Base-7B, i.e. the
    Qwen2.5-7B sizes it was initialised from).

    Only what the published checkpoints use is supported for the switches (``hidden_act="silu"``, no sliding
    window, ``rope_scaling`` null); anything else is refused by :meth:`validate` rather than computed differently.
    """

    vocab_size: int = 152064
    hidden_size: int = 3584
    intermediate_size: int = 18944
    num_hidden_layers: int = 28
    num_attention_heads: int = 28
    num_key_value_heads: int | None = 4
    hidden_act: str = "silu"
    max_position_embeddings: int = 131072
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    rope_scaling: dict | None = None
    tie_word_embeddings: bool = False
    use_sliding_window: bool = False
    sliding_window: int | None = None
    max_window_layers: int = 28
    attention_dropout: float = 0.0
    initializer_range: float = 0.02
    mask_token_id: int = MASK_ID
    pad_token_id: int | None = EOS_ID
    bos_token_id: int | None = EOS_ID
    eos_token_id: int | None = EOS_ID

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def n_kv_heads(self) -> int:
        return self.num_attention_heads if self.num_key_value_heads is None else self.num_key_value_heads

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config.json") -> DreamConfig:
        """Parse a published ``config.json`` dict; keys the forward pass does not read (``auto_map``,
        ``torch_dtype``, ...) are ignored."""
        if str(data.get("model_type", "Dream")).lower() != "dream":
            raise CheckpointError(f"{source}: model_type is {data.get('model_type')!r}, expected 'Dream'")
        names = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in data.items() if k in names})
        config.validate(source=source)
        return config

    def validate(self, *, source: str = "config") -> None:
        """Refuse switches this implementation does not compute (one-line CheckpointError)."""
        if self.hidden_act != "silu":
            raise CheckpointError(f"{source}: hidden_act={self.hidden_act!r} is not supported by the Dream backbone (published: 'silu')")
        if self.use_sliding_window:
            raise CheckpointError(f"{source}: use_sliding_window=true is not supported by the Dream backbone (published: false)")
        if self.rope_scaling is not None and self.rope_scaling.get("rope_type", self.rope_scaling.get("type")) not in (None, "default"):
            raise CheckpointError(f"{source}: rope_scaling={self.rope_scaling!r} is not supported by the Dream backbone (published: null)")
        if self.hidden_size % self.num_attention_heads or self.head_dim % 2:
            raise CheckpointError(f"{source}: hidden_size={self.hidden_size} must split into num_attention_heads="
                                  f"{self.num_attention_heads} even-sized heads")
        if self.num_attention_heads % self.n_kv_heads:
            raise CheckpointError(f"{source}: num_attention_heads={self.num_attention_heads} is not a multiple of "
                                  f"num_key_value_heads={self.n_kv_heads}")
        if not 0 <= self.mask_token_id < self.vocab_size:
            raise CheckpointError(f"{source}: mask_token_id {self.mask_token_id} is outside the {self.vocab_size}-row vocabulary")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dream_7b_config() -> DreamConfig:
    """The architecture of ``Dream-org/Dream-v0-Base-7B`` / ``-Instruct-7B`` (Qwen2.5-7B's sizes)."""
    return DreamConfig()


# ---------------------------------------------------------------------------------------------------
# Pure functions: the equations


def _wide(dtype: torch.dtype) -> torch.dtype:
    """float32, or the input's dtype when that is wider (float64 in tests)."""
    return torch.promote_types(dtype, torch.float32)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``w ⊙ x / √(mean(x²) + ε)``, normalised in float32 and cast back before scaling (DreamRMSNorm)."""
    dtype = x.dtype
    xf = x.to(_wide(dtype))
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(dtype)


def rope_tables(positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)`` ``[L, head_dim]`` of the angles ``p · θ^(−2j/d)`` (both halves), computed in float32 (or wider)
    and cast to ``dtype`` (DreamRotaryEmbedding.forward)."""
    wide = _wide(dtype)
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.int64).to(wide) / head_dim))
    angles = torch.outer(positions.to(wide), inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x cos + rotate_half(x) sin`` (apply_rotary_pos_emb), ``x`` ``[B, H, L, d]``."""
    return x * cos + rotate_half(x) * sin


def bidirectional_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding: torch.Tensor | None,
                            causal: bool = False) -> torch.Tensor:
    """``softmax(q kᵀ/√d) v`` over all keys (``−∞`` on padded keys only); kv heads repeated for their query heads.
    ``key_padding`` ``[B, L]`` bool, True = real token; a row without any real token attends to all keys.
    ``causal`` (never in the published forward): keys after the query are left out, for the AR phase of the zoo
    recipe (Dream was initialised from an autoregressive model)."""
    if k.shape[1] != q.shape[1]:
        rep = q.shape[1] // k.shape[1]
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
    mask = None
    if key_padding is not None:
        keep = key_padding.to(torch.bool)
        keep = keep | ~keep.any(dim=-1, keepdim=True)
        mask = keep[:, None, None, :]
    if causal:
        if mask is not None:
            raise ValueError("causal attention takes no key-padding mask")
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=False)


# ---------------------------------------------------------------------------------------------------
# Modules, named so that ``state_dict()`` keys equal the published ones


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float, *, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


class Attention(nn.Module):
    def __init__(self, c: DreamConfig, *, device=None, dtype=None):
        super().__init__()
        self.c = c
        kv = c.n_kv_heads * c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, c.num_attention_heads * c.head_dim, bias=True, device=device, dtype=dtype)
        self.k_proj = nn.Linear(c.hidden_size, kv, bias=True, device=device, dtype=dtype)
        self.v_proj = nn.Linear(c.hidden_size, kv, bias=True, device=device, dtype=dtype)
        self.o_proj = nn.Linear(c.num_attention_heads * c.head_dim, c.hidden_size, bias=False, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, key_padding: torch.Tensor | None,
                causal: bool = False) -> torch.Tensor:
        B, L, _ = x.shape
        c = self.c
        q = self.q_proj(x).view(B, L, c.num_attention_heads, c.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, L, c.n_kv_heads, c.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, L, c.n_kv_heads, c.head_dim).transpose(1, 2)
        att = bidirectional_attention(apply_rope(q, cos, sin), apply_rope(k, cos, sin), v, key_padding, causal)
        return self.o_proj(att.transpose(1, 2).reshape(B, L, c.num_attention_heads * c.head_dim))


class MLP(nn.Module):
    def __init__(self, c: DreamConfig, *, device=None, dtype=None):
        super().__init__()
        kw = dict(bias=False, device=device, dtype=dtype)
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, **kw)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, **kw)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    """One ``DreamDecoderLayer``: pre-norm bidirectional attention, then the SiLU-gated MLP."""

    def __init__(self, c: DreamConfig, *, device=None, dtype=None):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps, device=device, dtype=dtype)
        self.self_attn = Attention(c, device=device, dtype=dtype)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps, device=device, dtype=dtype)
        self.mlp = MLP(c, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, key_padding: torch.Tensor | None,
                causal: bool = False) -> torch.Tensor:
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, key_padding, causal)
        return h + self.mlp(self.post_attention_layernorm(h))


class _Base(nn.Module):
    """``DreamBaseModel``: ``embed_tokens``, ``layers``, ``norm`` (the rotary tables are computed, not stored)."""

    def __init__(self, c: DreamConfig, *, device=None, dtype=None):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size, device=device, dtype=dtype)
        self.layers = nn.ModuleList(DecoderLayer(c, device=device, dtype=dtype) for _ in range(c.num_hidden_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps, device=device, dtype=dtype)


class DreamBackbone(nn.Module):
    """Dream's network: ``forward(input_ids [B, L], attention_mask [B, L] | None) → raw logits [B, L, V]``, the
    output at position ``i`` being the prediction for token ``i + 1`` (unshifted; see the module docstring).

    :meth:`hidden` and :meth:`head` split the pass so a caller can apply the LM head to chosen rows only. Parameter
    names equal the published ones (``model.layers.{i}.self_attn.q_proj.bias``, ``lm_head.weight`` ...).
    """

    def __init__(self, config: DreamConfig, *, device=None, dtype=None):
        super().__init__()
        config.validate()
        self.config = config
        self.model = _Base(config, device=device, dtype=dtype)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False, device=device, dtype=dtype)

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *, causal: bool = False) -> torch.Tensor:
        """The final normed hidden states ``[B, L, D]``; ``attention_mask`` (True = real token) masks padded keys;
        ``causal=True`` only for the zoo recipe's autoregressive warm-up (Dream itself is always bidirectional)."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, length], got shape {tuple(input_ids.shape)}")
        c, m = self.config, self.model
        x = m.embed_tokens(input_ids)
        cos, sin = rope_tables(torch.arange(input_ids.shape[1], device=x.device), c.head_dim, c.rope_theta, x.dtype)
        key_padding = None
        if attention_mask is not None and not bool(attention_mask.all()):
            key_padding = attention_mask.to(torch.bool)
        for layer in m.layers:
            x = layer(x, cos, sin, key_padding, causal)
        return m.norm(x)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """``lm_head(h)`` (the embedding matrix when tied)."""
        if self.config.tie_word_embeddings:
            return F.linear(h, self.model.embed_tokens.weight)
        return self.lm_head(h)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.hidden(input_ids, attention_mask))


def expected_shapes(config: DreamConfig) -> dict[str, tuple[int, ...]]:
    """Every state-dict key of the published format with its shape, from the config alone (meta device)."""
    with torch.device("meta"):
        module = DreamBackbone(config)
    return {name: tuple(p.shape) for name, p in module.state_dict().items()}


__all__ = ["BOS_ID", "DreamBackbone", "DreamConfig", "EOS_ID", "MASK_ID", "dream_7b_config", "expected_shapes"]
