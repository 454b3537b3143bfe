"""Networks of the zoo and their checkpoints in each family's *published* format.

=========  ===============================================  ==============================================
family     network                                           folder written (as the real checkpoints)
=========  ===============================================  ==============================================
``ar``     ``transformers.GPT2LMHeadModel``                  ``save_pretrained``: config.json, model.safetensors
``mdlm``   :class:`~dlmbench.nets.dit.DiT`     ``kuleshov-group/mdlm-owt``: config.json (HF MDLM),
                                                             model.safetensors (keys ``backbone.*``)
``sedd``   the same DiT, time-conditioned, scale_by_sigma    ``louaaron/sedd-*``: config.json (Hydra config),
                                                             model.safetensors (keys without prefix)
``llada``  :class:`~dlmbench.families.llada.backbone.LLaDABackbone`  ``GSAI-ML/LLaDA-8B-*``: config.json,
                                                             model-00001-of-00001.safetensors + index
``dream``  :class:`~dlmbench.families.dream.backbone.DreamBackbone`  ``Dream-org/Dream-v0-*-7B``: config.json,
                                                             model-00001-of-00001.safetensors + index
``plaid``  :class:`~dlmbench.families.plaid.backbone.PlaidModules`  ``plaid1b_weights``: the four
           (schedule, γ bounds, embeddings, Transformer)     ``torch.save(state_dict)`` files noise_schedule.pt,
                                                             gamma_bounds.pt, embedding_matrix.pt, model.pt
=========  ===============================================  ==============================================

Every folder also holds the BPE (``tokenizer.json`` + ``tokenizer_config.json``; in ``tokenizer/`` except for
GPT-2, see :func:`tokenizer_subfolder`) and ``zoo.json`` (how it was trained). Folders are written to a temporary sibling and renamed into place (atomic on one filesystem),
so a crash never leaves a half-written checkpoint under the final name.

Reuses the published-format writers of :mod:`dlmbench.nets.dit_writer`, :mod:`dlmbench.families.llada.writer` and
:mod:`dlmbench.families.plaid.backbone`. Which network and writer a family uses is its zoo recipe
(:mod:`dlmbench.zoo.recipes`, named by the family table).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlmbench.zoo.configs import ZooConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@contextlib.contextmanager
def atomic_folder(target: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it replaces ``target`` by renames (old copy removed)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for p in tmp.rglob("*"):  # save_pretrained leaves some files 0600; checkpoints are shared data
        p.chmod(0o755 if p.is_dir() else 0o644)
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# Configs of each family's network


def dit_config(cfg: ZooConfig, n_tokens: int, *, sedd: bool):
    """DiT over ``n_tokens`` BPE ids + the mask / absorbing id ``n_tokens`` (the GPT-2 convention)."""
    from dlmbench.nets.dit import DiTConfig

    return DiTConfig(vocab_size=n_tokens + 1, hidden_size=cfg.d_model, cond_dim=cfg.cond_dim, n_blocks=cfg.n_layers,
                     n_heads=cfg.n_heads, length=cfg.max_len, dropout=0.0, time_conditioning=sedd, scale_by_sigma=sedd)


def gpt2_config(cfg: ZooConfig, n_tokens: int, bos_id: int):
    from transformers import GPT2Config

    return GPT2Config(vocab_size=n_tokens, n_positions=cfg.max_len, n_embd=cfg.d_model, n_layer=cfg.n_layers,
                      n_head=cfg.n_heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=bos_id,
                      eos_token_id=bos_id, tie_word_embeddings=False)


def llada_config(cfg: ZooConfig, n_tokens: int, bos_id: int, mask_id: int):
    """LLaDA over ``n_tokens`` ids (the mask token inside them, as in LLaDA); SwiGLU hidden ``8/3 d``."""
    from dlmbench.families.llada.backbone import LLaDAConfig

    hidden = int(round(8 * cfg.d_model / 3 / 8)) * 8
    return LLaDAConfig(d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads, n_kv_heads=cfg.n_heads,
                       mlp_hidden_size=hidden, max_sequence_length=cfg.max_len, vocab_size=n_tokens,
                       embedding_size=n_tokens, rope_theta=10_000.0, mask_token_id=mask_id, eos_token_id=bos_id,
                       pad_token_id=bos_id)


def dream_config(cfg: ZooConfig, n_tokens: int, bos_id: int, mask_id: int):
    """Dream over ``n_tokens`` ids (the mask token inside them, as Dream's ``<|mask|>``); SwiGLU hidden ``8/3 d`` as
    the LLaDA zoo model; grouped-query attention with half as many key-value heads as query heads (Dream-7B: 28/4)."""
    from dlmbench.families.dream.backbone import DreamConfig

    hidden = int(round(8 * cfg.d_model / 3 / 8)) * 8
    return DreamConfig(vocab_size=n_tokens, hidden_size=cfg.d_model, intermediate_size=hidden,
                       num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                       num_key_value_heads=max(1, cfg.n_heads // 2), max_position_embeddings=cfg.max_len,
                       max_window_layers=cfg.n_layers, rope_theta=10_000.0, mask_token_id=mask_id, pad_token_id=bos_id,
                       bos_token_id=bos_id, eos_token_id=bos_id)


def build_network(family: str, cfg: ZooConfig, n_tokens: int, bos_id: int, mask_id: int | None = None) -> nn.Module:
    """A freshly initialised network of ``family`` (its zoo recipe's ``network``; uses the global torch RNG:
    call under :func:`seeded`)."""
    from dlmbench.zoo import recipe

    return recipe(family).network(cfg, n_tokens, bos_id, mask_id)


def gpt2_network(cfg: ZooConfig, n_tokens: int, bos_id: int, mask_id: int | None = None) -> nn.Module:
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel(gpt2_config(cfg, n_tokens, bos_id))


def dit_network(cfg: ZooConfig, n_tokens: int, *, sedd: bool) -> nn.Module:
    """MDLM's (``sedd=False``) or SEDD's (``sedd=True``) DiT, adaLN-Zero initialised."""
    from dlmbench.nets.dit import DiT

    net = DiT(dit_config(cfg, n_tokens, sedd=sedd))
    with torch.no_grad():  # adaLN-Zero as the reference DIT: modulation and output layer start at 0
        for block in net.blocks:
            block.adaLN_modulation.weight.zero_()
            block.adaLN_modulation.bias.zero_()
        net.output_layer.adaLN_modulation.weight.zero_()
        net.output_layer.adaLN_modulation.bias.zero_()
        net.output_layer.linear.weight.zero_()
        net.output_layer.linear.bias.zero_()
    return net


def mdlm_network(cfg: ZooConfig, n_tokens: int, bos_id: int, mask_id: int | None = None) -> nn.Module:
    return dit_network(cfg, n_tokens, sedd=False)


BD3LM_ZOO_BLOCK = 4  # the block size of the zoo's BD3-LM (the smallest published one)


def bd3lm_network(cfg: ZooConfig, n_tokens: int, bos_id: int, mask_id: int | None = None) -> nn.Module:
    """BD3-LM: MDLM's DiT (adaLN-Zero initialised, not time-conditioned) read with block size :data:`BD3LM_ZOO_BLOCK`."""
    from dlmbench.families.bd3lm.backbone import BD3LMConfig, BD3LMNet

    dit = dit_network(cfg, n_tokens, sedd=False)
    net = BD3LMNet(BD3LMConfig(dit=dit.config, block_size=BD3LM_ZOO_BLOCK, attn_backend="sdpa"))
    net.load_state_dict(dit.state_dict())
    return net


def duo_network(cfg: ZooConfig, n_tokens: int, bos_id: int, mask_id: int | None = None) -> nn.Module:
    """DUO: MDLM's DiT over ``n_tokens`` BPE ids + one appended row (the reference tokenizer's ``[PAD]``, a state of
    the uniform process like any other), time-conditioned as every DUO network, adaLN-Zero initialised."""
    import dataclasses

    from dlmbench.nets.dit import DiT

    dit = dit_network(cfg, n_tokens, sedd=False)
    net = DiT(dataclasses.replace(dit.config, time_conditioning=True))
    net.load_state_dict(dit.state_dict())
    return net


def sedd_network(cfg: ZooConfig, n_tokens: int, bos_id: int, mask_id: int | None = None) -> nn.Module:
    return dit_network(cfg, n_tokens, sedd=True)


def llada_network(cfg: ZooConfig, n_tokens: int, bos_id: int, mask_id: int | None = None) -> nn.Module:
    from dlmbench.families.llada.backbone import LLaDABackbone

    net = LLaDABackbone(llada_config(cfg, n_tokens, bos_id, mask_id))
    with torch.no_grad():  # LLaDA's init_std 0.02 (normal) for every matrix, ones for the norms
        for p in net.parameters():
            if p.ndim > 1:
                nn.init.normal_(p, std=0.02)
    return net


def dream_network(cfg: ZooConfig, n_tokens: int, bos_id: int, mask_id: int | None = None) -> nn.Module:
    from dlmbench.families.dream.backbone import DreamBackbone

    net = DreamBackbone(dream_config(cfg, n_tokens, bos_id, mask_id))
    with torch.no_grad():  # DreamPreTrainedModel._init_weights: N(0, initializer_range) matrices, zero biases
        for name, p in net.named_parameters():
            if p.ndim > 1:
                nn.init.normal_(p, std=net.config.initializer_range)
            elif name.endswith(".bias"):
                p.zero_()
    return net


def plaid_network(cfg: ZooConfig, n_tokens: int, bos_id: int, mask_id: int | None = None) -> nn.Module:
    return plaid_modules(cfg, n_tokens)


def plaid_modules(cfg: ZooConfig, n_tokens: int):
    """Plaid's four modules with the reference initialisation (``lib/models.py``, ``train.py`` defaults):
    schedule MLP ``randn``, ``γ_0 = −3``, ``γ_1 = 6``, embedding rows ``randn`` normalised to unit length,
    ``selfcond_linear``, ``gamma_linear`` and the readout ``output_linear`` (weight and bias) zero, the rest
    PyTorch's default ``nn.Linear`` init and unit norm weights."""
    from dlmbench.families.plaid.backbone import PlaidConfig, PlaidModules

    config = PlaidConfig(dim=cfg.d_model, embed_dim=cfg.embed_dim, n_blocks=cfg.n_layers, n_heads=cfg.n_heads,
                         vocab_size=n_tokens)
    mods = PlaidModules(config, gamma_0=-3.0, gamma_1=6.0)
    with torch.no_grad():
        m = mods.embedding_matrix.matrix
        m.div_(m.norm(p=2, dim=1, keepdim=True))
        for lin in (mods.model.selfcond_linear, mods.model.gamma_linear, mods.model.output_linear):
            lin.weight.zero_()
        mods.model.output_linear.bias.zero_()
    return mods


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with the global torch RNG seeded, restoring the caller's RNG state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# --------------------------------------------------------------------------------------------------
# Writing the published formats


def _cpu_state(net: nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Parameters in ``dtype``; buffers (the DiT's rotary ``inv_freq``) keep their own dtype, so a bfloat16
    zoo checkpoint does not round the rotary frequencies."""
    params = {k for k, _ in net.named_parameters()}
    return {k: v.detach().to("cpu", dtype if (k in params and v.is_floating_point()) else v.dtype).contiguous().clone()
            for k, v in net.state_dict().items()}


@torch.no_grad()
def round_parameters(net: nn.Module, save_dtype: str) -> None:
    """Round the parameters to the precision they are stored in (so evaluating ``net`` = evaluating the file)."""
    dtype = DTYPES[save_dtype]
    for p in net.parameters():
        p.copy_(p.to(dtype).to(p.dtype))


def write_checkpoint(family: str, net: nn.Module, folder: str | Path, *, tokenizer: Any, cfg: ZooConfig,
                     info: dict[str, Any], save_dtype: str = "float32") -> Path:
    """Write ``net`` in ``family``'s published format (its zoo recipe's ``write``), the tokenizer and
    ``zoo.json``, atomically."""
    from dlmbench.zoo import recipe
    from dlmbench.zoo.corpus import save_tokenizer

    rec = recipe(family)
    with atomic_folder(folder) as tmp:
        rec.write(net, tmp, DTYPES[save_dtype])
        save_tokenizer(tokenizer, tmp / rec.tokenizer_subfolder)
        (tmp / "zoo.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return Path(folder)


def write_gpt2(net: nn.Module, folder: Path, dtype: torch.dtype) -> None:
    import copy

    out = copy.deepcopy(net).to(dtype)
    out.save_pretrained(str(folder), safe_serialization=True)


def write_mdlm(net: nn.Module, folder: Path, dtype: torch.dtype) -> None:
    from dlmbench.nets.dit_writer import write_mdlm_hub_folder

    write_mdlm_hub_folder(folder, net.config, state=_cpu_state(net, dtype))


def write_bd3lm(net: nn.Module, folder: Path, dtype: torch.dtype) -> None:
    from dlmbench.families.bd3lm.writer import write_bd3lm_hub_folder

    write_bd3lm_hub_folder(folder, net.bd3lm_config, state=_cpu_state(net, dtype))


def write_duo(net: nn.Module, folder: Path, dtype: torch.dtype) -> None:
    from dlmbench.families.duo.backbone import DUOConfig
    from dlmbench.families.duo.writer import write_duo_hub_folder

    write_duo_hub_folder(folder, DUOConfig(dit=net.config), state=_cpu_state(net, dtype))


def write_sedd(net: nn.Module, folder: Path, dtype: torch.dtype) -> None:
    from dlmbench.nets.dit_writer import write_sedd_hub_folder

    write_sedd_hub_folder(folder, net.config, state=_cpu_state(net, dtype), weights="model.safetensors")


def write_llada(net: nn.Module, folder: Path, dtype: torch.dtype) -> None:
    from dlmbench.families.llada.writer import save_llada_checkpoint

    save_llada_checkpoint(_cpu_state(net, torch.float32), net.config, folder, n_shards=1, dtype=dtype)


def write_dream(net: nn.Module, folder: Path, dtype: torch.dtype) -> None:
    from dlmbench.families.dream.writer import save_dream_checkpoint

    save_dream_checkpoint(_cpu_state(net, torch.float32), net.config, folder, n_shards=1, dtype=dtype)


def write_plaid(net: nn.Module, folder: Path, dtype: torch.dtype) -> None:
    from dlmbench.families.plaid.backbone import save_plaid_modules

    save_plaid_modules(net, folder, fmt="pt", dtype=dtype)


def tokenizer_subfolder(family: str) -> str:
    """Where the BPE goes inside a checkpoint folder (the recipe's ``tokenizer_subfolder``): next to the weights
    for GPT-2 (the HF convention), in ``tokenizer/`` for the others, whose ``config.json`` names remote code
    (``auto_map``) that ``AutoTokenizer`` would offer to run; the card's ``tokenizer:`` points there."""
    from dlmbench.zoo import recipe

    return recipe(family).tokenizer_subfolder


def folder_bytes(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
