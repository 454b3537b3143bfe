"""Tiny random Plaid checkpoints in exactly the released format (for tests and the model zoo).

Written (same file names, key names, key order and float32 dtype as ``plaid1b_weights``; see
:mod:`.plaid`): ``noise_schedule.pt``, ``gamma_bounds.pt``, ``embedding_matrix.pt``, ``model.pt`` — each a
``torch.save`` of the module's state dict — or their ``.safetensors`` copies; and optionally
``owt2_tokenizer.json``, a ``tokenizers`` byte-level BPE with the structure of the reference
``misc/owt2_tokenizer.json`` (special token ``<|endoftext_R9VQqF0Ag7|>`` at id 0, ByteLevel pre-tokenizer,
post-processor and decoder) but only the 256 byte symbols (ids 1–256) and no merges.

All weights are random (unlike the reference initialisation, which zeroes ``selfcond_linear``,
``gamma_linear`` and ``output_linear``), so every path of the forward pass is exercised. No network access.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from dlmbench.families.plaid.backbone import PlaidConfig, PlaidModules, save_plaid_modules

TOKENIZER_FILE = "owt2_tokenizer.json"
EOT_TOKEN = "<|endoftext_R9VQqF0Ag7|>"
TINY_VOCAB = 257  # id 0 = end of text, ids 1..256 = the byte-level alphabet


def tiny_plaid_config(**overrides) -> PlaidConfig:
    """2 blocks, width 32, 2 heads, 4-dim embeddings, a 16-wide noise-schedule MLP, the tiny tokenizer's 257 tokens."""
    return replace(PlaidConfig(dim=32, embed_dim=4, n_blocks=2, n_heads=2, vocab_size=TINY_VOCAB, noise_schedule_width=16), **overrides)


def random_plaid_modules(config: PlaidConfig, *, seed: int = 0, gamma_0: float = -3.0, gamma_1: float = 6.0, scale: float = 1.0) -> PlaidModules:
    """:class:`PlaidModules` with every parameter random (seeded), gamma bounds as given."""
    g = torch.Generator().manual_seed(int(seed))
    mods = PlaidModules(config, gamma_0, gamma_1)
    with torch.no_grad():
        for name, p in mods.named_parameters():
            if name.startswith("gamma_bounds."):
                continue
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "model.output_norm.weight":
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim == 2 and name.startswith("model."):
                p.copy_(scale * torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g))
    return mods.eval().requires_grad_(False)


def byte_level_tokenizer_json() -> dict:
    """A tokenizers-JSON dict shaped like the reference ``misc/owt2_tokenizer.json`` (no merges)."""
    from tokenizers import pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {EOT_TOKEN: 0, **{ch: i + 1 for i, ch in enumerate(alphabet)}}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": 0, "content": EOT_TOKEN, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": byte_level,
        "post_processor": {**byte_level, "add_prefix_space": True, "trim_offsets": False},
        "decoder": {**byte_level, "add_prefix_space": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "vocab": vocab, "merges": []},
    }


def write_tiny_plaid(
    folder: str | Path,
    config: PlaidConfig | None = None,
    *,
    seed: int = 0,
    gamma_0: float = -3.0,
    gamma_1: float = 6.0,
    fmt: str = "pt",
    tokenizer: bool = True,
) -> Path:
    """Write a tiny random Plaid weights folder (``fmt``: ``pt`` as released, or ``safetensors``)."""
    config = config or tiny_plaid_config()
    folder = Path(folder)
    save_plaid_modules(random_plaid_modules(config, seed=seed, gamma_0=gamma_0, gamma_1=gamma_1), folder, fmt=fmt)
    if tokenizer:
        if config.vocab_size < TINY_VOCAB:
            raise ValueError(f"the tiny tokenizer needs vocab_size >= {TINY_VOCAB}")
        (folder / TOKENIZER_FILE).write_text(json.dumps(byte_level_tokenizer_json(), ensure_ascii=False, indent=2))
    return folder


__all__ = ["EOT_TOKEN", "TINY_VOCAB", "TOKENIZER_FILE", "byte_level_tokenizer_json", "random_plaid_modules",
           "tiny_plaid_config", "write_tiny_plaid"]
