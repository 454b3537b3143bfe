"""A tiny model zoo on disk for scheduler tests: a random GPT-2, a random LLaDA, a local perplexity task.

``make_zoo(root)`` writes ``root/specs/{models,tasks}/*.yaml`` cards (pass ``--specs root/specs`` to the
CLI) pointing at checkpoints under ``root`` and a small local JSONL corpus. Random weights; no network.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

class ByteTokenizer:
    """A text tokenizer for scripted test models: one id per UTF-8 byte, end-of-text = 256."""

    name = "bytes"
    vocab_size = 257
    bos_id = None
    eos_id = 256
    mask_id = None

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


TEXTS = [
    "the quick brown fox",
    "hello world, a test",
    "a lazy dog sleeps",
    "small things run fast",
    "the dog and the fox",
    "this world is small",
]


def write_tiny_gpt2(folder: Path, texts=None, *, vocab_size: int = 320, n_positions: int = 64) -> Path:
    """A random 2-layer GPT-2 with a byte-level BPE trained on ``texts``, saved as ``folder/model`` in the
    HF folder format (safetensors + vocab/merges); returns that folder. Shared by the tests."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    texts = list(texts if texts is not None else TEXTS * 20)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    (folder / "bpe").mkdir(parents=True, exist_ok=True)
    tok.model.save(str(folder / "bpe"))
    hf_tok = GPT2Tokenizer.from_pretrained(str(folder / "bpe"))
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(hf_tok), n_positions=n_positions, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0, initializer_range=0.3)
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(str(folder / "model"))
    hf_tok.save_pretrained(str(folder / "model"))
    return folder / "model"


def make_zoo(root: Path, *, llada: bool = True, gpt2: bool = True, mc_samples: int = 2, gpt2_batch_size: int = 4) -> Path:
    """Write the zoo under ``root``; return the specs folder.

    Tasks: ``tiny-ppl`` (perplexity on eight sentences) and ``tiny-missing`` (its data file does not exist,
    so its jobs fail at run time, after the grid has resolved).
    """
    root = Path(root)
    specs = root / "specs"
    (specs / "models").mkdir(parents=True, exist_ok=True)
    (specs / "tasks").mkdir(parents=True, exist_ok=True)
    data = root / "docs.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    task = {
        "name": "tiny-ppl",
        "type": "perplexity",
        "description": "six short sentences, one request per document",
        "dataset": {"source": "local", "path": str(data), "field": "text"},
        "packing": {"mode": "document", "add_bos": True, "add_eos": False},
    }
    (specs / "tasks" / "tiny-ppl.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
    missing = {**task, "name": "tiny-missing", "dataset": {"source": "local", "path": str(root / "no-such-file.jsonl"), "field": "text"}}
    (specs / "tasks" / "tiny-missing.yaml").write_text(yaml.safe_dump(missing, sort_keys=False))
    if gpt2:
        folder = write_tiny_gpt2(root / "gpt2")
        card = {"name": "tiny-gpt2", "family": "ar", "checkpoint": {"local": str(folder)}, "settings": {"batch_size": gpt2_batch_size}}
        (specs / "models" / "tiny-gpt2.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    if llada:
        from dlmbench.families.llada.writer import write_tiny_llada

        folder = write_tiny_llada(root / "llada", seed=3)
        card = {
            "name": "tiny-llada",
            "family": "llada",
            "checkpoint": {"local": str(folder)},
            "max_length": 64,
            "settings": {"mc_samples": mc_samples, "batch_size": 4},
        }
        (specs / "models" / "tiny-llada.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    return specs
