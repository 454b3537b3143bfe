"""Tiny random Dream checkpoints in exactly the published ``Dream-org/Dream-v0-*-7B`` format.

Written (same file names, field names, key names and dtype as the published repositories):

* ``config.json``: every field of the published ``config.json`` (``model_type: Dream``, ``architectures``,
  ``auto_map``, ``torch_dtype``, ...), only the sizes and the special ids changed;
* ``model-0000k-of-0000N.safetensors`` shards (bfloat16 by default) and ``model.safetensors.index.json`` with
  ``metadata.total_size`` and the ``weight_map``;
* optionally a tokenizer (``tokenizer.json`` + ``tokenizer_config.json``): a byte-level BPE over the 256 byte
  symbols (ids 0-255) followed by Dream's special tokens ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``,
  ``<|beginoftext|>``, ``<|mask|>`` at ids 256-260, whose ids ``config.json`` then names (the published
  tokenizer has them at 151643-151666; its ordinary vocabulary is of course not reproduced).

Used by the tests, the contract suite and the tiny card. Random weights only; no network.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import torch

from dlmbench.families.dream.backbone import DreamConfig, dream_7b_config, expected_shapes

# Fields of the published config.json that the forward pass does not read (kept for format fidelity).
_PUBLISHED_EXTRA_FIELDS = {
    "architectures": ["DreamModel"],
    "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
    "model_type": "Dream",
    "torch_dtype": "bfloat16",
    "transformers_version": "4.46.2",
    "use_cache": False,
}

TINY_SPECIALS = {"<|endoftext|>": 256, "<|im_start|>": 257, "<|im_end|>": 258, "<|beginoftext|>": 259, "<|mask|>": 260}


def tiny_dream_config(**overrides) -> DreamConfig:
    """2 layers, width 32, 4 query heads sharing 2 kv heads (GQA), 272 vocabulary rows (the tiny tokenizer's 261 ids
    + padding, as the published embedding is padded), special ids those of :func:`write_tiny_tokenizer`."""
    base = replace(dream_7b_config(), vocab_size=272, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, max_window_layers=2,
                   rope_theta=10_000.0, mask_token_id=TINY_SPECIALS["<|mask|>"],
                   pad_token_id=TINY_SPECIALS["<|endoftext|>"], bos_token_id=TINY_SPECIALS["<|endoftext|>"],
                   eos_token_id=TINY_SPECIALS["<|endoftext|>"])
    return replace(base, **overrides)


def config_json(config: DreamConfig) -> dict:
    """The published ``config.json`` dict for ``config`` (keys sorted as in the published file)."""
    return dict(sorted({**config.to_dict(), **_PUBLISHED_EXTRA_FIELDS}.items()))


def random_state_dict(config: DreamConfig, *, seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Random weights for every published key: matrices ``N(0, 1/fan_in)``, embedding ``N(0, 1)``, biases
    ``N(0, 0.1²)``, norms ``1 + N(0, 0.1²)`` (not all ones, so a loader or forward pass that ignores them is caught)."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, shape in expected_shapes(config).items():
        if key.endswith("norm.weight"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        elif key.endswith(".bias"):
            t = 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        elif key.endswith("embed_tokens.weight"):
            t = torch.randn(shape, generator=g, dtype=torch.float64)
        else:
            t = torch.randn(shape, generator=g, dtype=torch.float64) / shape[1] ** 0.5
        out[key] = t.to(dtype)
    return out


def _assign_shards(sizes: Mapping[str, int], n_shards: int) -> list[list[str]]:
    """Keys (state-dict order) in at most ``n_shards`` contiguous groups of about equal bytes; empty ones dropped."""
    total = max(1, sum(sizes.values()))
    groups: list[list[str]] = [[] for _ in range(max(1, n_shards))]
    before = 0
    for key, size in sizes.items():
        groups[min(before * len(groups) // total, len(groups) - 1)].append(key)
        before += size
    return [g for g in groups if g]


def save_dream_checkpoint(state_dict: Mapping[str, torch.Tensor], config: DreamConfig, folder: str | Path, *,
                          n_shards: int = 2, dtype: torch.dtype | None = torch.bfloat16) -> Path:
    """``config.json``, sharded safetensors and ``model.safetensors.index.json`` in the published layout
    (``dtype=None`` keeps each tensor's dtype; default bfloat16, as published)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.detach().to("cpu") if dtype is None else v.detach().to("cpu", dtype)).contiguous()
               for k, v in state_dict.items()}
    sizes = {k: t.numel() * t.element_size() for k, t in tensors.items()}
    weight_map: dict[str, str] = {}
    groups = _assign_shards(sizes, n_shards)
    for i, keys in enumerate(groups, start=1):
        name = f"model-{i:05d}-of-{len(groups):05d}.safetensors"
        save_file({k: tensors[k] for k in keys}, str(folder / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in keys})
    index = {"metadata": {"total_size": sum(sizes.values())}, "weight_map": dict(sorted(weight_map.items()))}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    (folder / "config.json").write_text(json.dumps(config_json(config), indent=2) + "\n")
    return folder


def write_tiny_tokenizer(folder: str | Path) -> Path:
    """``tokenizer.json`` + ``tokenizer_config.json``: byte-level BPE (ids 0-255) + :data:`TINY_SPECIALS`."""
    from tokenizers import AddedToken, Tokenizer, decoders, models
    from tokenizers.pre_tokenizers import ByteLevel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {ch: i for i, ch in enumerate(sorted(ByteLevel.alphabet()))}
    vocab.update(TINY_SPECIALS)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(c, special=True, normalized=False) for c, _ in sorted(TINY_SPECIALS.items(), key=lambda kv: kv[1])])
    tok.save(str(folder / "tokenizer.json"))
    config = {  # the published tokenizer_config.json's fields (the class is the fast one: no remote code here)
        "add_bos_token": False, "add_prefix_space": False, "bos_token": "<|beginoftext|>",
        "clean_up_tokenization_spaces": False, "eos_token": "<|endoftext|>", "errors": "replace",
        "mask_token": "<|mask|>", "model_max_length": 131072, "pad_token": "<|endoftext|>",
        "split_special_tokens": False, "tokenizer_class": "PreTrainedTokenizerFast", "unk_token": None,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder


def write_tiny_dream(folder: str | Path, config: DreamConfig | None = None, *, seed: int = 0, n_shards: int = 2,
                     dtype: torch.dtype = torch.bfloat16, tokenizer: bool = True) -> Path:
    """A complete tiny random Dream checkpoint folder (weights, config, optionally the tokenizer)."""
    config = config or tiny_dream_config()
    save_dream_checkpoint(random_state_dict(config, seed=seed), config, folder, n_shards=n_shards, dtype=dtype)
    if tokenizer:
        write_tiny_tokenizer(folder)
    return Path(folder)


__all__ = ["TINY_SPECIALS", "config_json", "random_state_dict", "save_dream_checkpoint", "tiny_dream_config",
           "write_tiny_dream", "write_tiny_tokenizer"]
