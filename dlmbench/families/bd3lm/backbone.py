"""BD3-LM's network: MDLM's DiT with block-structured attention, and its published Hugging Face format.

Reference (read, not copied): kuleshov-group/bd3lms ``models/hf/modeling_bd3lm.py`` (``DITBackbone``,
``block_diff_mask``, ``BD3LM``) and ``configuration_bd3lm.py``; ``diffusion.py`` (``_forward_pass_diffusion``
feeds ``x_t ⊕ x_0``). The modules, their parameters and their state-dict names are exactly MDLM's DiT
(:mod:`dlmbench.nets.dit`: ``vocab_embed``, ``sigma_map``, ``rotary_emb``, ``blocks.{i}``, ``output_layer``), so
this network reuses those pieces; only the attention mask and the two-stream input are new.

Blocks: position ``i`` of a length-``L`` row is in block ``b(i) = i // block_size`` (the grid starts at position 0;
a last block may be shorter).

Two-stream forward (training / likelihood), input ``[x_t ; x_0]`` of length ``2L``, rotary positions ``0..L-1`` in
both halves; query ``q`` may attend key ``k`` iff (``block_diff_mask``)::

    M_BD  (block diagonal)        b(q) == b(k) and both in x_t, or both in x_0
    M_OBC (offset block causal)   q in x_t, k in x_0, b(q) >  b(k)
    M_BC  (block causal)          q in x_0, k in x_0, b(q) >= b(k)

so the output at an ``x_t`` position of block ``b`` is ``p_theta(x_0^i | x_t^{block b}, x_0^{blocks < b})`` and only
the ``x_t`` half of the output is returned. One pass scores every block.

Block-causal forward (sampling, ``sample_mode=True`` without KV cache): a single stream, ``q`` attends ``k`` iff
``b(q) >= b(k)`` (the reference slices the ``x_0``/``x_0`` quarter of the same mask). With a KV cache
(:meth:`BD3LMNet.prefix_cache`, :meth:`BD3LMNet.forward_cached`): the clean prefix's keys and values are computed
once, and the current block attends them and itself (exact for networks that are not time-conditioned).

Published HF format (https://huggingface.co/kuleshov-group/bd3lm-owt-block_size4 etc.): ``config.json`` with
``model_type: bd3lm``, ``block_size``, ``vocab_size``, ``model_length``, ``hidden_dim``, ``cond_dim``, ``n_blocks``,
``n_heads``, ``dropout``, ``time_conditioning``, ``cross_attn``, ``attn_backend``, ``var_min``,
``sampling_eps_min``/``max`` (later ``configuration_bd3lm.py`` versions add ``adaln`` and ``causal``, default
True / False), and ``model.safetensors`` with keys ``backbone.<DiT key>`` plus, when ``var_min``, the two scalar
buffers ``sampling_eps_min`` / ``sampling_eps_max`` of the ``BD3LM`` wrapper (training metadata: the clipped
noise interval found by the variance search; recorded in the provenance, not used by the network).
Safetensors or ``torch.load(weights_only=True)``; never remote code; every tensor accounted for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from dlmbench.errors import CheckpointError
from dlmbench.nets.dit import DDiTBlock, DiT, DiTConfig, apply_rotary, expected_shapes, modulate
from dlmbench.nets.dit_checkpoints import dit_fields_from_hf

PREFIX = "backbone."
EPS_BUFFERS = ("sampling_eps_min", "sampling_eps_max")


@dataclass(frozen=True)
class BD3LMConfig:
    """A BD3-LM checkpoint: the DiT's sizes, the block size it was trained with, and the recorded extras."""

    dit: DiTConfig
    block_size: int
    var_min: bool = True
    sampling_eps_min: float = 1e-3
    sampling_eps_max: float = 0.999
    attn_backend: str = "sdpa"

    def __post_init__(self) -> None:
        if self.block_size < 1:
            raise CheckpointError(f"BD3-LM block_size must be >= 1, not {self.block_size}")

    # what the DiT helpers of dlmbench.nets.dit_lm read (tokenizer check)
    @property
    def vocab_size(self) -> int:
        return self.dit.vocab_size

    @property
    def mask_id(self) -> int | None:
        return self.dit.mask_id

    @property
    def mask_index(self) -> int:
        return self.dit.mask_index

    @property
    def length(self) -> int:
        return self.dit.length

    @property
    def time_conditioning(self) -> bool:
        return self.dit.time_conditioning


# ------------------------------------------------------------------------------------------------------
# Attention masks (pure functions; True = may attend)


def block_ids(length: int, block_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``b(i) = i // block_size`` for ``i < length`` (int64 ``[length]``)."""
    return torch.arange(length, device=device) // int(block_size)


def block_causal_mask(length: int, block_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``[L, L]`` bool: ``q`` attends ``k`` iff ``b(q) >= b(k)`` (``block_size = 1``: causal; ``>= L``: full)."""
    b = block_ids(length, block_size, device)
    return b[:, None] >= b[None, :]


def two_stream_mask(length: int, block_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``[2L, 2L]`` bool mask of the ``[x_t ; x_0]`` input: ``M_BD | M_OBC | M_BC`` (module docstring)."""
    b = block_ids(length, block_size, device)
    same = b[:, None] == b[None, :]
    earlier = b[:, None] > b[None, :]
    none = torch.zeros_like(same)
    top = torch.cat([same, earlier], dim=1)  # x_t queries: own block of x_t, earlier blocks of x_0
    bottom = torch.cat([none, same | earlier], dim=1)  # x_0 queries: x_0 blocks up to their own
    return torch.cat([top, bottom], dim=0)


# ------------------------------------------------------------------------------------------------------
# The network


def _masked_block(block: DDiTBlock, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, c: torch.Tensor,
                  mask: torch.Tensor | None, past: tuple[torch.Tensor, torch.Tensor] | None = None,
                  record: list | None = None) -> torch.Tensor:
    """:class:`DDiTBlock`'s forward (adaLN, rotary attention, GELU MLP, gated residuals) with ``mask`` on the
    attention scores; ``cos, sin`` are ``[S, d]`` for the ``S`` rows of ``x``. ``past``: cached keys and values
    ``[B, heads, P, d]`` (rotary applied) that every row of ``x`` also attends; ``record``: a list that receives
    this layer's ``(k, v)``."""
    shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = block.adaLN_modulation(c)[:, None].chunk(6, dim=2)
    h = modulate(block.norm1(x), shift_a, scale_a)
    B, S, H = h.shape
    q, k, v = block.attn_qkv(h).view(B, S, 3, block.n_heads, H // block.n_heads).unbind(dim=2)
    with torch.autocast(device_type=h.device.type, enabled=False):
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2).to(q.dtype)
    if record is not None:
        record.append((k, v))
    if past is not None:
        k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
    att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    att = att.transpose(1, 2).reshape(B, S, H)
    x = x + gate_a * F.dropout(block.attn_out(att), p=block.dropout, training=block.training)
    mlp = block.mlp(modulate(block.norm2(x), shift_m, scale_m))
    return x + gate_m * F.dropout(mlp, p=block.dropout, training=block.training)


class BD3LMNet(DiT):
    """MDLM's DiT (same modules and keys) run with BD3-LM's block masks. ``block_size`` is the checkpoint's;
    every forward takes its own ``block_size`` so one network can be read at other block sizes (tests)."""

    def __init__(self, config: BD3LMConfig, *, autocast_bf16: bool = False):
        super().__init__(config.dit, autocast_bf16=autocast_bf16)
        self.bd3lm_config = config
        self.block_size = config.block_size

    def _sigma(self, sigma: torch.Tensor | float | None, batch: int, device: torch.device) -> torch.Tensor:
        dtype = self.sigma_map.mlp[0].weight.dtype
        dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
        if sigma is None:
            return torch.zeros(batch, dtype=dtype, device=device)
        s = torch.as_tensor(sigma, device=device, dtype=dtype)
        if s.ndim > 1:
            s = s.squeeze(-1)
        return s.expand(batch) if s.ndim == 0 else s

    def _run(self, ids: torch.Tensor, sigma, cos, sin, mask, keep: int, positions: torch.Tensor | None):
        x = self.vocab_embed(ids)
        c = self.condition(self._sigma(sigma, ids.shape[0], ids.device))
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=self.autocast_bf16):
            for block in self.blocks:
                x = _masked_block(block, x, cos, sin, c, mask)
            x = x[:, :keep]
            if positions is not None:
                return self.output_layer(x[positions], c[positions.nonzero(as_tuple=True)[0]])
            return self.output_layer(x, c)

    def forward_two_stream(self, x_t: torch.Tensor, x0: torch.Tensor, sigma=None, *, block_size: int | None = None,
                           positions: torch.Tensor | None = None) -> torch.Tensor:
        """Raw logits of the ``x_t`` stream ``[B, L, V]`` for input ``[x_t ; x_0]`` (each ``[B, L]``); with
        ``positions`` (bool ``[B, L]``) only those rows ``[N, V]``."""
        if x_t.shape != x0.shape:
            raise ValueError(f"x_t and x0 must have the same shape, got {tuple(x_t.shape)} and {tuple(x0.shape)}")
        L = x_t.shape[1]
        bs = int(block_size or self.block_size)
        cos, sin = self.rotary_emb(L)
        cos, sin = torch.cat([cos, cos]), torch.cat([sin, sin])
        mask = two_stream_mask(L, bs, x_t.device)
        return self._run(torch.cat([x_t, x0], dim=1), sigma, cos, sin, mask, L, positions)

    def forward_block_causal(self, x: torch.Tensor, sigma=None, *, block_size: int | None = None) -> torch.Tensor:
        """Raw logits ``[B, L, V]`` of one stream under the block-causal mask (the reference's sampling mode)."""
        L = x.shape[1]
        cos, sin = self.rotary_emb(L)
        mask = block_causal_mask(L, int(block_size or self.block_size), x.device)
        return self._run(x, sigma, cos, sin, mask, L, None)

    def prefix_cache(self, prefix: torch.Tensor, *, block_size: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, the keys and values (rotary applied) of a clean ``prefix [B, P]`` under the block-causal
        mask: what every later block attends. Exact to reuse only for a network that is not time-conditioned (the
        adaLN modulation of the prefix would otherwise change with the noise level)."""
        if self.config.time_conditioning:
            raise ValueError("a KV cache needs a network that is not time-conditioned")
        P = prefix.shape[1]
        cos, sin = self.rotary_emb(P)
        mask = block_causal_mask(P, int(block_size or self.block_size), prefix.device)
        x = self.vocab_embed(prefix)
        c = self.condition(self._sigma(None, prefix.shape[0], prefix.device))
        cache: list = []
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=self.autocast_bf16):
            for block in self.blocks:
                x = _masked_block(block, x, cos, sin, c, mask, record=cache)
        return cache

    def forward_cached(self, block_ids_: torch.Tensor, cache: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """Raw logits ``[B, S, V]`` of one block ``[B, S]`` that follows the prefix of ``cache`` (positions
        ``P..P+S-1``): the block attends the cached prefix and itself. Equals the block's rows of
        :meth:`forward_block_causal` over ``prefix + block``."""
        P, S = cache[0][0].shape[2], block_ids_.shape[1]
        cos, sin = self.rotary_emb(P + S)
        cos, sin = cos[P:], sin[P:]
        x = self.vocab_embed(block_ids_)
        c = self.condition(self._sigma(None, block_ids_.shape[0], block_ids_.device))
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=self.autocast_bf16):
            for block, past in zip(self.blocks, cache):
                x = _masked_block(block, x, cos, sin, c, None, past=past)
            return self.output_layer(x, c)

    def forward(self, input_ids: torch.Tensor, sigma=None, positions: torch.Tensor | None = None) -> torch.Tensor:
        """The reference's training call: ``input_ids`` is ``[x_t ; x_0]`` of length ``2L``; logits of ``x_t``."""
        n = input_ids.shape[1] // 2
        return self.forward_two_stream(input_ids[:, :n], input_ids[:, n:], sigma, positions=positions)


# ------------------------------------------------------------------------------------------------------
# The published format


def config_from_hf(data: dict[str, Any]) -> BD3LMConfig:
    """:class:`BD3LMConfig` from a ``config.json`` of ``BD3LMConfig`` (class defaults where a key is absent, as
    ``configuration_bd3lm.py``; ``cond_dim``'s class default is 129, every published file says 128)."""
    if not data.get("cross_attn", True):
        raise CheckpointError("BD3-LM config.json has cross_attn: false (not trained with the x_t ⊕ x_0 input); unsupported")
    if not data.get("adaln", True):
        raise CheckpointError("BD3-LM config.json has adaln: false (no adaLN modulation); only adaln: true is supported")
    if data.get("causal", False):
        raise CheckpointError("BD3-LM config.json has causal: true (the AR baseline); load it with family ar")
    try:
        # GPT-2 convention: the mask is the last row; cond_dim's class default is 129 (configuration_bd3lm.py)
        dit = dit_fields_from_hf(data, cond_dim_default=129, mask_id=None)
        return BD3LMConfig(
            dit=dit,
            block_size=int(data.get("block_size", 1)),
            var_min=bool(data.get("var_min", True)),
            sampling_eps_min=float(data.get("sampling_eps_min", 1e-3)),
            sampling_eps_max=float(data.get("sampling_eps_max", 0.999)),
            attn_backend=str(data.get("attn_backend", "flex")),
        )
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"BD3-LM config.json does not describe the network: {e}") from None


def config_to_hf(config: BD3LMConfig) -> dict[str, Any]:
    """The published ``config.json`` fields for ``config`` (what the hub files hold; see the module docstring)."""
    d = config.dit
    return {
        "architectures": ["BD3LM"],
        "attn_backend": config.attn_backend,
        "auto_map": {"AutoConfig": "configuration_bd3lm.BD3LMConfig", "AutoModelForMaskedLM": "modeling_bd3lm.BD3LM"},
        "block_size": config.block_size,
        "cond_dim": d.cond_dim,
        "cross_attn": True,
        "dropout": d.dropout,
        "hidden_dim": d.hidden_size,
        "model_length": d.length,
        "model_type": "bd3lm",
        "n_blocks": d.n_blocks,
        "n_heads": d.n_heads,
        "return_dict": False,
        "sampling_eps_max": config.sampling_eps_max,
        "sampling_eps_min": config.sampling_eps_min,
        "time_conditioning": d.time_conditioning,
        "torch_dtype": "float32",
        "transformers_version": "4.49.0",
        "var_min": config.var_min,
        "vocab_size": d.vocab_size,
    }


def published_shapes(config: BD3LMConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of the network in the published file (``backbone.*``) with its shape."""
    return expected_shapes(config.dit, PREFIX)


def build_net(config: BD3LMConfig, state: dict[str, torch.Tensor], *, where: str,
              device: torch.device | str = "cpu", dtype: torch.dtype | None = None) -> tuple[BD3LMNet, dict[str, float]]:
    """Check ``state`` key for key (one-line :class:`CheckpointError`) and load it strictly.

    Returns ``(net in eval mode, the recorded scalar buffers)``. The ``sampling_eps_min/max`` buffers may be
    present (as scalars) or absent; every other tensor must be one of the network's."""
    from dlmbench.nets.dit_checkpoints import check_shapes

    extras: dict[str, float] = {}
    net_state = {}
    for k, v in state.items():
        if k in EPS_BUFFERS:
            if v.numel() != 1:
                raise CheckpointError(f"{where}: {k} must be a scalar, found shape {list(v.shape)}")
            extras[k] = float(v.reshape(()))
        else:
            net_state[k] = v
    check_shapes(published_shapes(config), {k: tuple(v.shape) for k, v in net_state.items()}, where=where,
                 architecture="the BD3-LM network of its config.json")
    net = BD3LMNet(config)
    net.load_state_dict({k[len(PREFIX):]: v for k, v in net_state.items()}, strict=True)
    net = net.to(device=device)
    if dtype is not None:
        net = net.to(dtype=dtype)
    return net.eval(), extras


def load_bd3lm_backbone(source: Any, device: torch.device | str = "cpu", dtype: torch.dtype | None = None, *,
                        revision: str | None = None, block_size: int | None = None
                        ) -> tuple[BD3LMNet, BD3LMConfig, dict[str, Any]]:
    """The network of a BD3-LM checkpoint: a hub id (``kuleshov-group/bd3lm-owt-block_size4``) or a local folder
    with ``config.json`` + ``model.safetensors`` (or ``pytorch_model.bin``, read with ``weights_only=True``).

    Returns ``(net, config, provenance)``; ``block_size`` overrides the checkpoint's (recorded)."""
    from dlmbench.nets.dit_checkpoints import CONFIG_FILE, _read_json, file_sha256, locate, read_state_dict, weight_file

    located = locate(source, revision)
    folder = located.folder if located.folder is not None else located.file.parent
    weights = located.file if located.file is not None else weight_file(folder)
    if weights.suffix == ".ckpt":
        raise CheckpointError(f"{weights}: BD3-LM Lightning checkpoints are not supported; use the HF folder format "
                              "(config.json + model.safetensors)")
    if not (Path(folder) / CONFIG_FILE).is_file():
        raise CheckpointError(f"no {CONFIG_FILE} next to {weights} (BD3-LM hub format: config.json + model.safetensors)")
    data = _read_json(Path(folder) / CONFIG_FILE)
    if data.get("model_type") not in (None, "bd3lm"):
        raise CheckpointError(f"{folder}: config.json has model_type {data.get('model_type')!r}, not bd3lm")
    config = config_from_hf(data)
    trained_block = config.block_size
    if block_size is not None:
        config = replace(config, block_size=int(block_size))
    if config.dit.length % trained_block:
        raise CheckpointError(f"{folder}: model_length {config.dit.length} is not a multiple of block_size {trained_block}")
    net, extras = build_net(config, read_state_dict(weights), where=f"BD3-LM checkpoint {weights}", device=device,
                            dtype=dtype)
    provenance = {
        "family": "bd3lm",
        "format": "hf-bd3lm",
        "checkpoint": located.checkpoint,
        "path": str(weights),
        "revision": located.revision,
        "sha256": file_sha256(weights),
        "trained_block_size": trained_block,
        "ema": None,
        **extras,
    }
    return net, config, provenance


__all__ = [
    "BD3LMConfig",
    "BD3LMNet",
    "block_causal_mask",
    "block_ids",
    "build_net",
    "config_from_hf",
    "config_to_hf",
    "load_bd3lm_backbone",
    "published_shapes",
    "two_stream_mask",
]
