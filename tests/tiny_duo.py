"""A tiny random DUO checkpoint in the published HF format, the tests' small GPT-2-style BPE, and a model card on
disk (no network): the DUO adapter tests and the contract suite load it as a user's card would."""

from __future__ import annotations

from pathlib import Path

from tiny_dit import write_bpe, write_card

from dlmbench.families.duo.writer import tiny_duo_config, write_duo_hub_folder


def make_tiny_duo(root: Path, *, max_length: int = 32, seed: int = 0, **settings) -> dict:
    """Tokenizer, checkpoint (32 positions, the BPE's ids + one pad row) and card ``tiny-duo`` under ``root``."""
    root = Path(root)
    n_tokens = write_bpe(root / "tokenizer")
    config = tiny_duo_config(vocab_size=n_tokens + 1, length=32)
    ckpt = root / "duo-ckpt"
    state = write_duo_hub_folder(ckpt, config, seed=seed)
    card = {
        "name": "tiny-duo",
        "family": "duo",
        "checkpoint": {"local": str(ckpt)},
        "tokenizer": {"local": str(root / "tokenizer")},
        "max_length": max_length,
        "settings": {"mc_samples": 4, "batch_size": 4, "steps": 8, **settings},
    }
    specs = root / "specs"
    write_card(specs, card)
    return {"specs": specs, "card": card, "checkpoint": ckpt, "state": state, "config": config, "n_tokens": n_tokens}
