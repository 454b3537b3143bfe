"""The "DDiT" backbone of MDLM and SEDD: a bidirectional transformer with rotary positions and
adaLN modulation from the noise level, written to load the published state dicts key for key.

References (read, not copied): kuleshov-group/mdlm ``models/dit.py`` (class ``DIT``) and the HF port
``modeling_mdlm.py`` (``DITBackbone``); louaaron/Score-Entropy-Discrete-Diffusion ``model/transformer.py``
(class ``SEDD``) and ``model/rotary.py``. Both repositories share this network exactly.

Forward pass, ``x`` = token ids ``[B, L]``, ``sigma`` = total noise ``[B]``::

    h_0   = E[x]                                     E = vocab_embed.embedding [V, H]; no positions
    c     = SiLU( MLP( [cos(sigma f), sin(sigma f)] ) ), f_j = 10000^(-j/128), j < 128   (sigma_map)
    for each block (adaLN-Zero DiT block, dropout only in training):
        (shift_a, scale_a, gate_a, shift_m, scale_m, gate_m) = adaLN_modulation(c).chunk(6)
        q, k, v = attn_qkv( LN1(h) (1 + scale_a) + shift_a )         rows q | k | v, heads of 64
        q, k    = RoPE(q), RoPE(k)                                     GPT-NeoX "rotate_half" pairs (i, i+d/2)
        h = h + gate_a * dropout( attn_out( softmax(q k^T / sqrt(d)) v ) )   full, unmasked attention
        h = h + gate_m * dropout( W2 GELU_tanh( W1 (LN2(h) (1 + scale_m) + shift_m) + b1 ) + b2 )
    (shift, scale) = output_layer.adaLN_modulation(c).chunk(2)
    logits = linear( LN_f(h) (1 + scale) + shift )                     [B, L, V], mask column included

``LN`` is ``F.layer_norm`` without affine parameters computed in float32, then multiplied by a weight
(no bias, eps 1e-5). MDLM-OWT is not time-conditioned: ``sigma`` is replaced by 0 when
``config.time_conditioning`` is False (as the HF ``DITBackbone.forward`` and MDLM's ``_process_sigma`` do).

:class:`DiT.forward` returns the raw backbone output. The published post-processing is kept apart as
pure functions: :func:`mdlm_subs_log_probs` (MDLM's SUBS parameterization) and
:func:`sedd_log_score` (SEDD's ``scale_by_sigma`` shift and the zero at the input token).

Numerics: the references run the blocks under CUDA bfloat16 autocast with float32 weights.
By default this module runs in the dtype of its weights (float32 on CPU); ``DiT(config,
autocast_bf16=True)`` reproduces the reference's bfloat16 autocast of the blocks and output layer.
Attention goes through ``torch.nn.functional.scaled_dot_product_attention`` (no flash-attn).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dlmbench.nets.rotary import rotate_half  # noqa: F401 - also re-exported

GPT2_VOCAB = 50257  # GPT-2 tokens; the absorbing / mask token is appended at id 50257 (V = 50258)
BERT_VOCAB = 30522  # bert-base-uncased (MDLM on LM1B): its own [MASK] is used, id 103
BERT_MASK_ID = 103
NEG_INFINITY = -1_000_000.0  # MDLM's ``neg_infinity`` (a finite stand-in for -inf)


@dataclass(frozen=True)
class DiTConfig:
    """Sizes of a DDiT. ``vocab_size`` counts every output row, including the mask/absorbing token.

    ``time_conditioning`` False means the network ignores ``sigma`` (it is replaced by 0, MDLM-OWT).
    ``scale_by_sigma`` does not change :meth:`DiT.forward`; it records whether SEDD's score head applies
    the ``-log(e^sigma - 1) - log(V - 1)`` shift (see :func:`sedd_log_score`).
    """

    vocab_size: int = GPT2_VOCAB + 1
    hidden_size: int = 768
    cond_dim: int = 128
    n_blocks: int = 12
    n_heads: int = 12
    length: int = 1024
    dropout: float = 0.1
    time_conditioning: bool = True
    scale_by_sigma: bool = False
    mlp_ratio: int = 4
    frequency_embedding_size: int = 256
    rotary_base: float = 10_000.0
    mask_id: int | None = None  # None: the last row (vocab_size - 1), the GPT-2 convention

    def __post_init__(self) -> None:
        if self.hidden_size % self.n_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by n_heads {self.n_heads}")
        if (self.hidden_size // self.n_heads) % 2:
            raise ValueError("rotary embeddings need an even head dimension")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.n_heads

    @property
    def mask_index(self) -> int:
        """The mask / absorbing token id: ``mask_id`` if given, else the last row (50257 for GPT-2 models)."""
        return self.vocab_size - 1 if self.mask_id is None else self.mask_id

    def to_dict(self) -> dict:
        return asdict(self)


def small_config(**overrides) -> DiTConfig:
    """MDLM-OWT / SEDD-small: H 768, 12 blocks, 12 heads, cond 128, V 50258 (``configs/model/small.yaml``)."""
    return DiTConfig(**overrides)


def medium_config(**overrides) -> DiTConfig:
    """SEDD-medium: H 1024, 24 blocks, 16 heads, cond 128, V 50258 (``configs/model/medium.yaml``)."""
    return DiTConfig(**{"hidden_size": 1024, "n_blocks": 24, "n_heads": 16, **overrides})


# ----------------------------------------------------------------------------------------------------
# Pieces of the network
# ----------------------------------------------------------------------------------------------------


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: ``x (1 + scale) + shift`` with per-sequence ``shift, scale`` of shape ``[B, 1, H]``."""
    return x * (1 + scale) + shift



def rotary_cos_sin(inv_freq: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos, sin`` of shape ``[L, d]``: angle ``p * inv_freq[j]`` at position p for dims j and j + d/2."""
    pos = torch.arange(seq_len, device=inv_freq.device, dtype=inv_freq.dtype)
    angles = torch.outer(pos, inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair ``(x_j, x_{j+d/2})`` of ``x [B, L, heads, d]`` by its angle (q and k only, never v).

    Equals flash-attn's ``apply_rotary_emb_qkv_(qkv, cos[:, :d/2], sin[:, :d/2])`` with
    ``interleaved=False`` as MDLM calls it, and SEDD's TorchScript fallback ``qkv cos + rotate_half(qkv) sin``.
    """
    cos = cos[None, :, None, :].to(x.dtype)
    sin = sin[None, :, None, :].to(x.dtype)
    return x * cos + rotate_half(x) * sin


class LayerNorm(nn.Module):
    """``F.layer_norm`` without affine terms, computed in float32, times ``weight`` (no bias, eps 1e-5)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            wide = torch.promote_types(x.dtype, torch.float32)  # float32, or float64 for a float64 model
            y = F.layer_norm(x.to(wide), (self.dim,))
            return (y * self.weight.to(wide)).to(self.weight.dtype)


class TimestepEmbedder(nn.Module):
    """``sigma -> MLP([cos(sigma f), sin(sigma f)])``, ``f_j = max_period^(-j/half)`` (GLIDE / DiT embedding)."""

    def __init__(self, cond_dim: int, frequency_embedding_size: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, cond_dim, bias=True),
            nn.SiLU(),
            nn.Linear(cond_dim, cond_dim, bias=True),
        )
        self.frequency_embedding_size = frequency_embedding_size

    @staticmethod
    def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0,
                           dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``[cos(t f_j), sin(t f_j)]``, ``f_j = exp(-ln(max_period) j / half)``, in float32 as the reference
        (float64 for a float64 model)."""
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=dtype, device=t.device) / half)
        args = t[:, None].to(dtype) * freqs[None]
        emb = torch.cat((torch.cos(args), torch.sin(args)), dim=-1)
        if dim % 2:
            emb = torch.cat((emb, torch.zeros_like(emb[:, :1])), dim=-1)
        return emb

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        w_dtype = self.mlp[0].weight.dtype
        t_freq = self.timestep_embedding(t, self.frequency_embedding_size,
                                         dtype=torch.promote_types(w_dtype, torch.float32))
        return self.mlp(t_freq.to(w_dtype))


class Rotary(nn.Module):
    """Holds the persistent buffer ``inv_freq = base^(-2j/d)``, j < d/2 (key ``rotary_emb.inv_freq``)."""

    def __init__(self, head_dim: int, base: float = 10_000.0):
        super().__init__()
        self.head_dim, self.base = head_dim, base
        self.register_buffer("inv_freq", 1.0 / (base ** (torch.arange(0, head_dim, 2).float() / head_dim)))

    def forward(self, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        inv_freq = self.inv_freq
        if inv_freq.dtype not in (torch.float32, torch.float64):
            # a model cast to bf16/fp16 would round the buffer; angles stay float32 as in the reference
            d = self.head_dim
            inv_freq = 1.0 / (self.base ** (torch.arange(0, d, 2, device=inv_freq.device).float() / d))
        return rotary_cos_sin(inv_freq, seq_len)


class EmbeddingLayer(nn.Module):
    """Plain lookup ``E[x]`` into the parameter ``embedding [V, H]`` (no scaling, no positions)."""

    def __init__(self, hidden_size: int, vocab_size: int):
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(vocab_size, hidden_size))
        nn.init.kaiming_uniform_(self.embedding, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding[x]


class DDiTBlock(nn.Module):
    """One adaLN-modulated pre-LN block: bidirectional rotary attention, then a GELU(tanh) MLP."""

    def __init__(self, dim: int, n_heads: int, cond_dim: int, mlp_ratio: int = 4, dropout: float = 0.1):
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        # registration order = the reference's parameters() order (EMA shadow lists are positional)
        self.norm1 = LayerNorm(dim)
        self.attn_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_out = nn.Linear(dim, dim, bias=False)
        self.norm2 = LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim, bias=True),
            nn.GELU(approximate="tanh"),
            nn.Linear(mlp_ratio * dim, dim, bias=True),
        )
        self.adaLN_modulation = nn.Linear(cond_dim, 6 * dim, bias=True)

    def attention(self, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """``softmax(q k^T / sqrt(d)) v`` over all positions (no mask), heads concatenated."""
        B, L, H = h.shape
        q, k, v = self.attn_qkv(h).view(B, L, 3, self.n_heads, H // self.n_heads).unbind(dim=2)
        with torch.autocast(device_type=h.device.type, enabled=False):
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2).to(q.dtype))
        return out.transpose(1, 2).reshape(B, L, H)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c)[:, None].chunk(6, dim=2)
        p, train = self.dropout, self.training
        attn = self.attention(modulate(self.norm1(x), shift_msa, scale_msa), cos, sin)
        x = x + gate_msa * F.dropout(self.attn_out(attn), p=p, training=train)
        mlp = self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x + gate_mlp * F.dropout(mlp, p=p, training=train)


class DDiTFinalLayer(nn.Module):
    """``linear(LN(x) (1 + scale) + shift)`` with ``(shift, scale) = adaLN_modulation(c).chunk(2)``."""

    def __init__(self, hidden_size: int, out_channels: int, cond_dim: int):
        super().__init__()
        self.norm_final = LayerNorm(hidden_size)
        self.linear = nn.Linear(hidden_size, out_channels)
        self.adaLN_modulation = nn.Linear(cond_dim, 2 * hidden_size, bias=True)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``x [B, L, H]`` with ``c [B, C]``, or rows ``x [N, H]`` with their own ``c [N, C]``."""
        mod = self.adaLN_modulation(c)
        shift, scale = (mod[:, None] if x.dim() == 3 else mod).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class DiT(nn.Module):
    """MDLM's ``DIT`` / HF ``DITBackbone`` / SEDD's ``SEDD`` trunk. State-dict keys (no prefix)::

        vocab_embed.embedding, sigma_map.mlp.{0,2}.{weight,bias}, rotary_emb.inv_freq,
        blocks.{i}.{norm1.weight, attn_qkv.weight, attn_out.weight, norm2.weight,
                    mlp.{0,2}.{weight,bias}, adaLN_modulation.{weight,bias}},
        output_layer.{norm_final.weight, linear.{weight,bias}, adaLN_modulation.{weight,bias}}

    MDLM files add the prefix ``backbone.``; SEDD's ``pytorch_model.bin`` has none.
    """

    def __init__(self, config: DiTConfig, *, autocast_bf16: bool = False):
        super().__init__()
        self.config = config
        self.autocast_bf16 = autocast_bf16
        self.vocab_embed = EmbeddingLayer(config.hidden_size, config.vocab_size)
        self.sigma_map = TimestepEmbedder(config.cond_dim, config.frequency_embedding_size)
        self.rotary_emb = Rotary(config.head_dim, config.rotary_base)
        self.blocks = nn.ModuleList(
            DDiTBlock(config.hidden_size, config.n_heads, config.cond_dim, config.mlp_ratio, config.dropout)
            for _ in range(config.n_blocks)
        )
        self.output_layer = DDiTFinalLayer(config.hidden_size, config.vocab_size, config.cond_dim)

    def condition(self, sigma: torch.Tensor) -> torch.Tensor:
        """``c = SiLU(sigma_map(sigma))``; sigma replaced by 0 when the model is not time-conditioned."""
        if not self.config.time_conditioning:
            sigma = torch.zeros_like(sigma)
        return F.silu(self.sigma_map(sigma))

    def forward(self, input_ids: torch.Tensor, sigma: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Raw logits ``[B, L, V]`` for token ids ``[B, L]`` at total noise ``sigma [B]`` (or a scalar); with
        ``positions`` (bool ``[B, L]``) only the rows ``[N, V]`` of those positions (the output layer is
        applied to them alone, row ``b``'s conditioning with each)."""
        sigma = torch.as_tensor(sigma, device=input_ids.device)
        if sigma.ndim > 1:
            sigma = sigma.squeeze(-1)
        if sigma.ndim == 0:
            sigma = sigma.expand(input_ids.shape[0])
        x = self.vocab_embed(input_ids)
        c = self.condition(sigma)
        cos, sin = self.rotary_emb(input_ids.shape[1])
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=self.autocast_bf16):
            for block in self.blocks:
                x = block(x, cos, sin, c)
            if positions is not None:
                return self.output_layer(x[positions], c[positions.nonzero(as_tuple=True)[0]])
            return self.output_layer(x, c)


# ----------------------------------------------------------------------------------------------------
# Key names and shapes of the published state dicts
# ----------------------------------------------------------------------------------------------------


def parameter_shapes(config: DiTConfig) -> dict[str, tuple[int, ...]]:
    """Trainable parameters in the reference's ``parameters()`` order (the order of EMA shadow lists)."""
    H, C, V, F_ = config.hidden_size, config.cond_dim, config.vocab_size, config.frequency_embedding_size
    M = config.mlp_ratio * H
    out: dict[str, tuple[int, ...]] = {
        "vocab_embed.embedding": (V, H),
        "sigma_map.mlp.0.weight": (C, F_),
        "sigma_map.mlp.0.bias": (C,),
        "sigma_map.mlp.2.weight": (C, C),
        "sigma_map.mlp.2.bias": (C,),
    }
    for i in range(config.n_blocks):
        b = f"blocks.{i}."
        out.update({
            b + "norm1.weight": (H,),
            b + "attn_qkv.weight": (3 * H, H),
            b + "attn_out.weight": (H, H),
            b + "norm2.weight": (H,),
            b + "mlp.0.weight": (M, H),
            b + "mlp.0.bias": (M,),
            b + "mlp.2.weight": (H, M),
            b + "mlp.2.bias": (H,),
            b + "adaLN_modulation.weight": (6 * H, C),
            b + "adaLN_modulation.bias": (6 * H,),
        })
    out.update({
        "output_layer.norm_final.weight": (H,),
        "output_layer.linear.weight": (V, H),
        "output_layer.linear.bias": (V,),
        "output_layer.adaLN_modulation.weight": (2 * H, C),
        "output_layer.adaLN_modulation.bias": (2 * H,),
    })
    return out


def expected_shapes(config: DiTConfig, prefix: str = "") -> dict[str, tuple[int, ...]]:
    """Every state-dict key (parameters and the ``rotary_emb.inv_freq`` buffer) with its shape."""
    shapes = dict(parameter_shapes(config))
    shapes["rotary_emb.inv_freq"] = (config.head_dim // 2,)
    return {prefix + k: v for k, v in shapes.items()}


def parameter_count(config: DiTConfig) -> int:
    return sum(math.prod(s) for s in parameter_shapes(config).values())


# ----------------------------------------------------------------------------------------------------
# Published output heads (pure functions of the raw logits)
# ----------------------------------------------------------------------------------------------------


def mdlm_subs_log_probs(logits: torch.Tensor, xt: torch.Tensor, mask_id: int,
                        neg_infinity: float = NEG_INFINITY) -> torch.Tensor:
    """MDLM's SUBS parameterization (``diffusion.py:_subs_parameterization``), out of place.

    1. zero masking probability: ``logits[..., mask] += neg_infinity``;
    2. normalise: ``log p = logits - logsumexp(logits)``;
    3. carry-over unmasking: where ``xt != mask`` the row is ``neg_infinity`` except 0 at ``xt``.
    ``neg_infinity`` is MDLM's finite -1e6 (so ``0 * log p`` never gives NaN); pass ``-inf`` if wanted.
    """
    out = logits.clone()
    out[..., mask_id] += neg_infinity
    out = out - torch.logsumexp(out, dim=-1, keepdim=True)
    unmasked = xt != mask_id
    carried = torch.full_like(out, neg_infinity).scatter_(-1, xt[..., None], 0.0)
    return torch.where(unmasked[..., None], carried, out)


def esigm1_log(sigma: torch.Tensor) -> torch.Tensor:
    """``log(e^sigma - 1)``, with ``expm1`` for sigma < 0.5 as SEDD does (``SEDD.forward``)."""
    return torch.where(sigma < 0.5, torch.expm1(sigma), sigma.exp() - 1).log()


def sedd_log_score(logits: torch.Tensor, xt: torch.Tensor, sigma: torch.Tensor,
                   scale_by_sigma: bool = True) -> torch.Tensor:
    """SEDD's log concrete score from raw logits (``model/transformer.py:SEDD.forward``).

    With ``scale_by_sigma`` (absorbing graph): ``log s = logits - log(e^sigma - 1) - log(V - 1)``.
    Always: ``log s[i, xt_i] = 0`` (the ratio of a sequence to itself), via ``scatter``.
    """
    if scale_by_sigma:
        shift = esigm1_log(torch.as_tensor(sigma, device=logits.device).reshape(-1)).to(logits.dtype)
        logits = logits - shift[:, None, None] - np.log(logits.shape[-1] - 1)
    return torch.scatter(logits, -1, xt[..., None], torch.zeros_like(logits[..., :1]))
