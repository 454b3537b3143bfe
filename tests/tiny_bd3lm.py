"""A tiny random BD3-LM checkpoint in the published HF format, the tests' small GPT-2-style BPE, and a model card
on disk (no network): the BD3-LM adapter tests and the contract suite load it as a user's card would."""

from __future__ import annotations

from pathlib import Path

from tiny_dit import write_bpe, write_card

from dlmbench.families.bd3lm.writer import tiny_bd3lm_config, write_bd3lm_hub_folder


def make_tiny_bd3lm(root: Path, *, block_size: int = 4, max_length: int = 32, seed: int = 0, **settings) -> dict:
    """Tokenizer, checkpoint (trained block size ``block_size``, 32 positions) and card ``tiny-bd3lm`` under ``root``."""
    root = Path(root)
    n_tokens = write_bpe(root / "tokenizer")
    config = tiny_bd3lm_config(block_size=block_size, vocab_size=n_tokens + 1, length=32)
    ckpt = root / "bd3lm-ckpt"
    state = write_bd3lm_hub_folder(ckpt, config, seed=seed)
    card = {
        "name": "tiny-bd3lm",
        "family": "bd3lm",
        "checkpoint": {"local": str(ckpt)},
        "tokenizer": {"local": str(root / "tokenizer")},
        "max_length": max_length,
        "settings": {"mc_samples": 4, "batch_size": 4, **settings},
    }
    specs = root / "specs"
    write_card(specs, card)
    return {"specs": specs, "card": card, "checkpoint": ckpt, "state": state, "config": config, "n_tokens": n_tokens}
