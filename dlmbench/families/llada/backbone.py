"""LLaDA's bidirectional LLaMA-style transformer, written to load the published state dict key for key.

Source: ``GSAI-ML/LLaDA-8B-Base`` / ``-Instruct`` (``config.json``, ``model.safetensors.index.json``,
``modeling_llada.py: LLaDAModel``, ``LLaDALlamaBlock``, ``RMSLayerNorm``, ``RotaryEmbedding``;
https://huggingface.co/GSAI-ML/LLaDA-8B-Base). For an input ``x = wte(ids)`` each block computes

    h   = x + W_o · Attn(RoPE(W_q n₁(x)), RoPE(W_k n₁(x)), W_v n₁(x))       n₁ = attn_norm
    out = h + W_down · ( SiLU(W_gate n₂(h)) ⊙ W_up n₂(h) )                    n₂ = ff_norm

with ``W_gate = ff_proj``, ``W_up = up_proj``, ``W_down = ff_out``, ``W_o = attn_out``; then
``logits = ff_out(ln_f(x))`` (untied LM head, ``embedding_size`` outputs). Attention is
**bidirectional** — no causal mask, ever; an optional key-padding mask only removes padded keys.

Numerics, as the reference:

* RMSNorm ``n(x) = w ⊙ (x / √(mean(x²) + ε))`` with the normalisation in float32 (``x.float()``), cast
  back to the input dtype, then scaled by ``w`` in that dtype.
* RoPE "full precision": q and k are rotated in float32 with ``inv_freq_j = 1 / θ^(2j/d)`` computed
  in float32, the HF-LLaMA *rotate-half* convention (dimension ``j`` pairs with ``j + d/2``), not the
  interleaved one.
* ``softmax(q kᵀ / √d) v`` via ``scaled_dot_product_attention(is_causal=False)``.

Fast-dLLM's block-wise approximate key/value cache (Wu et al. 2025, arXiv 2505.22618, Sec. 3.2):
:meth:`LLaDABackbone.forward_kv` is the full forward that also returns every layer's keys/values, and
:meth:`LLaDABackbone.forward_window` a forward over a window of positions whose queries attend to the window's
fresh keys/values and the cached ones elsewhere; exact when nothing changed since the cache was filled (or with
one layer), approximate otherwise (see its docstring).

When the module itself runs in float64 (tests), "float32" above means the module's dtype, so that a
float64 forward is exact to float64 rounding.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlmbench.errors import CheckpointError
from dlmbench.nets.rotary import rotate_half  # noqa: F401 - re-exported, used below

# Special token ids of the LLaDA tokenizer (GSAI-ML/LLaDA-8B-Instruct tokenizer_config.json).
BOS_ID = 126080  # <|startoftext|>
EOS_ID = 126081  # <|endoftext|>, also the pad token
MASK_ID = 126336  # <|mdm_mask|>
START_HEADER_ID = 126346  # <|start_header_id|>
END_HEADER_ID = 126347  # <|end_header_id|>
EOT_ID = 126348  # <|eot_id|>


@dataclass(frozen=True)
class LLaDAConfig:
    """The fields of LLaDA's published ``config.json`` (names as published).

    Only the values the published checkpoints use are supported for the architecture switches
    (``block_type="llama"``, ``layer_norm_type="rms"``, ``rope=True``, no ALiBi, no biases, no q/k
    norm, ``block_group_size=1``, ``activation_type="silu"``); anything else is rejected by
    :meth:`validate` rather than silently computed differently. ``n_kv_heads < n_heads`` (grouped-query
    attention), ``weight_tying``, ``scale_logits`` and ``input_emb_norm`` are supported because they
    are one line each in the reference forward pass.
    """

    d_model: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: int | None = 32
    mlp_hidden_size: int | None = 12288
    mlp_ratio: int = 4
    activation_type: str = "silu"
    block_type: str = "llama"
    layer_norm_type: str = "rms"
    layer_norm_with_affine: bool = True
    rms_norm_eps: float = 1e-5
    rope: bool = True
    rope_theta: float = 500000.0
    rope_full_precision: bool = True
    max_sequence_length: int = 4096
    vocab_size: int = 126464
    embedding_size: int | None = 126464
    weight_tying: bool = False
    include_bias: bool = False
    include_qkv_bias: bool = False
    bias_for_layer_norm: bool | None = False
    attention_layer_norm: bool = False
    scale_logits: bool = False
    input_emb_norm: bool = False
    alibi: bool = False
    multi_query_attention: bool | None = None
    block_group_size: int = 1
    mask_token_id: int = MASK_ID
    eos_token_id: int = EOS_ID
    pad_token_id: int = EOS_ID

    # ----- derived sizes (names follow modeling_llada.py) -----
    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def effective_n_kv_heads(self) -> int:
        if self.multi_query_attention:
            return 1
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def hidden_size(self) -> int:
        """Width of the gated MLP: ``mlp_hidden_size`` or ``mlp_ratio · d_model``."""
        return self.mlp_hidden_size if self.mlp_hidden_size is not None else self.mlp_ratio * self.d_model

    @property
    def padded_vocab_size(self) -> int:
        """Rows of ``wte`` and outputs of the LM head (``embedding_size or vocab_size``)."""
        return self.embedding_size or self.vocab_size

    # ----- parsing -----
    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config.json") -> LLaDAConfig:
        """Parse a published ``config.json`` dict; unknown keys (``auto_map``, dropout, init, ...) are ignored."""
        if data.get("model_type", "llada") != "llada":
            raise CheckpointError(f"{source}: model_type is {data.get('model_type')!r}, expected 'llada'")
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        try:
            config = cls(**kwargs)
        except TypeError as e:  # pragma: no cover - dataclass signature mismatch
            raise CheckpointError(f"{source}: {e}") from None
        config.validate(source=source)
        return config

    def validate(self, *, source: str = "config") -> None:
        """Reject architecture switches this implementation does not compute (one-line CheckpointError)."""
        required = {
            "block_type": "llama",
            "layer_norm_type": "rms",
            "activation_type": "silu",
            "rope": True,
            "alibi": False,
            "include_bias": False,
            "include_qkv_bias": False,
            "attention_layer_norm": False,
            "layer_norm_with_affine": True,
            "block_group_size": 1,
        }
        for name, value in required.items():
            if getattr(self, name) != value:
                raise CheckpointError(
                    f"{source}: {name}={getattr(self, name)!r} is not supported by the LLaDA backbone "
                    f"(published checkpoints use {value!r})"
                )
        if self.bias_for_layer_norm:
            raise CheckpointError(f"{source}: bias_for_layer_norm=True is not supported by the LLaDA backbone")
        if self.d_model % self.n_heads or self.head_dim % 2:
            raise CheckpointError(
                f"{source}: d_model={self.d_model} must split into n_heads={self.n_heads} even-sized heads"
            )
        if self.n_heads % self.effective_n_kv_heads:
            raise CheckpointError(
                f"{source}: n_heads={self.n_heads} is not a multiple of n_kv_heads={self.effective_n_kv_heads}"
            )
        if self.padded_vocab_size < self.vocab_size:
            raise CheckpointError(f"{source}: embedding_size {self.embedding_size} < vocab_size {self.vocab_size}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def llada_8b_config() -> LLaDAConfig:
    """The architecture of ``GSAI-ML/LLaDA-8B-Base`` / ``-Instruct`` (published config.json; paper Table 5)."""
    return LLaDAConfig()


# ---------------------------------------------------------------------------------------------------
# Pure functions: the equations
# ---------------------------------------------------------------------------------------------------


def _norm_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32, or the input's dtype when that is wider (float64 in tests)."""
    return torch.promote_types(dtype, torch.float32)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``w ⊙ x / √(mean(x²) + ε)``, normalised in float32 and cast back before scaling (RMSLayerNorm)."""
    dtype = x.dtype
    xf = x.to(_norm_dtype(dtype))
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(dtype)


def rope_tables(
    seq_len: int, head_dim: int, theta: float, *, device, dtype=torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)`` of shape ``[seq_len, head_dim]`` for angles ``p · θ^(−2j/d)``, repeated over both halves.

    Computed in ``dtype`` (float32 as the reference's ``rope_full_precision``): ``inv_freq =
    1 / θ^(arange(0, d, 2)/d)``, ``angles = outer(positions, inv_freq)``, ``cat(angles, angles)``.
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=dtype) / head_dim))
    positions = torch.arange(seq_len, device=device, dtype=dtype)
    angles = torch.outer(positions, inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()



def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x cos + rotate_half(x) sin`` in the tables' dtype, returned in ``x``'s dtype. x: ``[B, H, L, d]``."""
    xf = x.to(cos.dtype)
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)


def bidirectional_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding: torch.Tensor | None
) -> torch.Tensor:
    """``softmax(q kᵀ/√d + bias) v`` over all keys, ``bias = −∞`` on padded keys only. q,k,v: ``[B, H, L, d]``.

    ``key_padding`` is ``[B, L]`` bool, True for real tokens. A row with no real token at all attends
    to every key (instead of producing NaN); its outputs are meaningless and must be ignored.
    """
    if k.shape[1] != q.shape[1]:  # grouped-query attention: repeat each kv head for its query heads
        rep = q.shape[1] // k.shape[1]
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
    mask = None
    if key_padding is not None:
        keep = key_padding.to(torch.bool)
        keep = keep | ~keep.any(dim=-1, keepdim=True)
        mask = keep[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=False)


# ---------------------------------------------------------------------------------------------------
# Modules, named so that ``state_dict()`` keys equal the published ones
# ---------------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float, *, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


class LLaDABlock(nn.Module):
    """One ``LLaDALlamaBlock``: pre-norm bidirectional attention, then a SiLU-gated MLP."""

    def __init__(self, config: LLaDAConfig, *, device=None, dtype=None):
        super().__init__()
        self.config = config
        c, kw = config, dict(bias=False, device=device, dtype=dtype)
        kv_dim = c.effective_n_kv_heads * c.head_dim
        self.attn_norm = RMSNorm(c.d_model, c.rms_norm_eps, device=device, dtype=dtype)
        self.q_proj = nn.Linear(c.d_model, c.d_model, **kw)
        self.k_proj = nn.Linear(c.d_model, kv_dim, **kw)
        self.v_proj = nn.Linear(c.d_model, kv_dim, **kw)
        self.attn_out = nn.Linear(c.d_model, c.d_model, **kw)
        self.ff_norm = RMSNorm(c.d_model, c.rms_norm_eps, device=device, dtype=dtype)
        self.ff_proj = nn.Linear(c.d_model, c.hidden_size, **kw)  # gate
        self.up_proj = nn.Linear(c.d_model, c.hidden_size, **kw)
        self.ff_out = nn.Linear(c.hidden_size, c.d_model, **kw)  # down

    def _heads(self, x: torch.Tensor, n: int) -> torch.Tensor:
        B, L, _ = x.shape
        return x.view(B, L, n, self.config.head_dim).transpose(1, 2)  # [B, n, L, d]

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, key_padding: torch.Tensor | None
    ) -> torch.Tensor:
        return self.forward_kv(x, cos, sin, key_padding)[0]

    def forward_kv(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, key_padding: torch.Tensor | None = None,
        past: tuple[torch.Tensor, torch.Tensor] | None = None, lo: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(out, k, v)`` for the ``W`` positions of ``x [B, W, D]`` (``cos``/``sin`` their rows of the RoPE tables);
        ``k, v`` ``[B, H_kv, W, d]`` after RoPE. With ``past = (K, V)`` (``[B, H_kv, L, d]``, a full sequence's keys
        and values) the window sits at positions ``lo .. lo + W - 1`` and its queries attend to
        ``K[:lo] ++ k ++ K[lo + W:]`` (the window's own keys replace the cached ones there)."""
        c = self.config
        B, W, D = x.shape
        n1 = self.attn_norm(x)
        q = self._heads(self.q_proj(n1), c.n_heads)
        k = self._heads(self.k_proj(n1), c.effective_n_kv_heads)
        v = self._heads(self.v_proj(n1), c.effective_n_kv_heads)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        keys, values = k, v
        if past is not None:
            pk, pv = past
            keys = torch.cat((pk[:, :, :lo], k, pk[:, :, lo + W :]), dim=2)
            values = torch.cat((pv[:, :, :lo], v, pv[:, :, lo + W :]), dim=2)
        att = bidirectional_attention(q, keys, values, key_padding)
        h = x + self.attn_out(att.transpose(1, 2).reshape(B, W, D))
        n2 = self.ff_norm(h)
        return h + self.ff_out(F.silu(self.ff_proj(n2)) * self.up_proj(n2)), k, v


class _Transformer(nn.Module):
    """Holds ``model.transformer`` so parameter names match ``LLaDAModelLM``'s state dict."""

    def __init__(self, config: LLaDAConfig, *, device=None, dtype=None):
        super().__init__()
        c = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(c.padded_vocab_size, c.d_model, device=device, dtype=dtype),
                blocks=nn.ModuleList(LLaDABlock(c, device=device, dtype=dtype) for _ in range(c.n_layers)),
                ln_f=RMSNorm(c.d_model, c.rms_norm_eps, device=device, dtype=dtype),
            )
        )
        if not c.weight_tying:
            self.transformer["ff_out"] = nn.Linear(c.d_model, c.padded_vocab_size, bias=False, device=device, dtype=dtype)


class LLaDABackbone(nn.Module):
    """LLaDA's mask predictor: ``forward(input_ids [B, L], attention_mask [B, L] | None) → logits [B, L, V]``.

    ``V = embedding_size`` (126464 for the 8B models; the tokenizer uses ids < 126349). Parameters are
    named exactly as in the published checkpoints (``model.transformer.blocks.{i}.q_proj.weight`` ...).
    Construct under ``torch.device("meta")`` and fill with :mod:`.llada_loading` to load lazily.
    """

    def __init__(self, config: LLaDAConfig, *, device=None, dtype=None):
        super().__init__()
        config.validate()
        self.config = config
        self.model = _Transformer(config, device=device, dtype=dtype)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """Logits at every position ``[B, L, V]``, or with ``positions`` (bool ``[B, L]``) only at those ``[N, V]``
        (the output layer applied to those rows alone); ``attention_mask`` (bool, True = real token) masks
        padded *keys* only.

        Positions are ``0 … L−1`` regardless of padding, as in the reference; because RoPE scores depend
        only on relative positions and attention is bidirectional, left or right padding leaves the
        logits of real tokens unchanged (up to rounding).
        """
        t = self.model.transformer
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, length], got shape {tuple(input_ids.shape)}")
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape {tuple(input_ids.shape)}"
            )
        x, cos, sin = self._embed(input_ids, input_ids.shape[1])
        key_padding = None
        if attention_mask is not None and not bool(attention_mask.all()):
            key_padding = attention_mask.to(torch.bool)
        for block in t.blocks:
            x = block(x, cos, sin, key_padding)
        return self._head(x if positions is None else x[positions])

    def _embed(self, input_ids: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token embeddings and the RoPE tables of positions ``0 .. length - 1``."""
        c = self.config
        x = self.model.transformer.wte(input_ids)
        if c.input_emb_norm:
            x = x * (c.d_model**0.5)
        rope_dtype = _norm_dtype(x.dtype) if c.rope_full_precision else x.dtype
        cos, sin = rope_tables(length, c.head_dim, c.rope_theta, device=x.device, dtype=rope_dtype)
        return x, cos, sin

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        c, t = self.config, self.model.transformer
        x = t.ln_f(x)
        logits = F.linear(x, t.wte.weight) if c.weight_tying else t.ff_out(x)
        if c.scale_logits:
            logits = logits * (1 / math.sqrt(c.d_model))
        return logits

    # -- Fast-dLLM's block-wise approximate key/value cache (Wu et al. 2025, arXiv 2505.22618, Sec. 3.2) ---------
    def forward_kv(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """The full forward (no padding) and every layer's keys and values ``[B, H_kv, L, d]`` (after RoPE):
        logits equal :meth:`forward`'s."""
        x, cos, sin = self._embed(input_ids, input_ids.shape[1])
        kv = []
        for block in self.model.transformer.blocks:
            x, k, v = block.forward_kv(x, cos, sin)
            kv.append((k, v))
        return self._head(x), kv

    def forward_window(self, window_ids: torch.Tensor, past: list[tuple[torch.Tensor, torch.Tensor]], lo: int) -> torch.Tensor:
        """Logits ``[B, W, V]`` of the positions ``lo .. lo + W - 1`` holding ``window_ids [B, W]``, every layer's
        queries attending to the window's fresh keys/values and to ``past``'s (from :meth:`forward_kv` on a
        sequence of the same length) everywhere else.

        Exact (equal to :meth:`forward` on the window's rows) when the tokens outside the window are those ``past``
        was computed from *and* the window's tokens are too, or when the network has one layer (first-layer keys
        and values depend on their own token and position only). Otherwise approximate: in a bidirectional
        network the cached keys/values of layers above the first depend on every token, the window's included.
        """
        length = past[0][0].shape[2]
        if lo < 0 or lo + window_ids.shape[1] > length:
            raise ValueError(f"window [{lo}, {lo + window_ids.shape[1]}) does not fit the cached length {length}")
        x, cos, sin = self._embed(window_ids, length)
        cos, sin = cos[lo : lo + window_ids.shape[1]], sin[lo : lo + window_ids.shape[1]]
        for block, kv in zip(self.model.transformer.blocks, past):
            x, _, _ = block.forward_kv(x, cos, sin, past=kv, lo=lo)
        return self._head(x)


def expected_shapes(config: LLaDAConfig) -> dict[str, tuple[int, ...]]:
    """Every state-dict key of the published format with its shape, from the config alone (meta device)."""
    with torch.device("meta"):
        module = LLaDABackbone(config)
    return {name: tuple(p.shape) for name, p in module.state_dict().items()}
