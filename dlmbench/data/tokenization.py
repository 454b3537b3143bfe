"""HF tokenizers behind the :class:`~dlmbench.interface.Tokenizer` protocol.

``load_tokenizer`` opens a tokenizer from a folder (``AutoTokenizer``) or a GGUF file
(``AutoTokenizer.from_pretrained(folder, gguf_file=...)``) and checks it is not silently empty: in
transformers 5, ``GPT2TokenizerFast(vocab_file=..., merges_file=...)`` builds a tokenizer that maps
every text to ``[]`` or ``[0]`` (measured with transformers 5.23; shown by
``tests/families/ar/test_ar_adapter.py``); :func:`check_not_empty` turns
that into a :class:`~dlmbench.errors.CheckpointError`.

:func:`encode_pair` is lm-eval's context/continuation split, shared by our own tasks (LAMBADA, reversal)
and the lm-eval bridge (:mod:`dlmbench.integrations.lmeval`) so both score the same token ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlmbench.errors import CheckpointError
from dlmbench.data.hub import load_error_line, quiet_transformers, resolve_file
from dlmbench.specs import CheckpointRef

# A probe with several distinct words, letters, digits and punctuation: any working tokenizer maps it
# to several distinct ids.
PROBE_TEXT = "The quick brown fox jumps over 13 lazy dogs."


class HFTokenizer:
    """A ``transformers`` tokenizer as a :class:`~dlmbench.interface.Tokenizer`.

    ``encode`` adds no special tokens; ``decode`` drops them. ``vocab_size`` is ``len(tokenizer)``
    (base vocabulary plus added tokens), the number of ids the tokenizer can emit.
    """

    def __init__(self, hf_tokenizer: Any, name: str):
        self.hf = hf_tokenizer
        self.name = name
        self.vocab_size = len(hf_tokenizer)
        self.bos_id: int | None = _maybe_int(hf_tokenizer.bos_token_id)
        self.eos_id: int | None = _maybe_int(hf_tokenizer.eos_token_id)
        self.mask_id: int | None = _maybe_int(getattr(hf_tokenizer, "mask_token_id", None))

    def encode(self, text: str) -> list[int]:
        return [int(i) for i in self.hf(text, add_special_tokens=False)["input_ids"]]

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=True)

    def token_text(self, token_id: int) -> str:
        """The vocabulary entry of one id, special tokens included (``<|endoftext|>``)."""
        return str(self.hf.convert_ids_to_tokens(int(token_id)))

    def __repr__(self) -> str:
        return f"HFTokenizer({self.name!r}, vocab_size={self.vocab_size}, bos={self.bos_id}, eos={self.eos_id})"


def _maybe_int(x: Any) -> int | None:
    return None if x is None else int(x)


def check_not_empty(tokenizer: HFTokenizer) -> None:
    """Raise :class:`CheckpointError` if the tokenizer maps a real sentence to < 2 distinct ids.

    Catches the transformers-5 trap where a GPT-2 fast tokenizer built from ``vocab.json`` and
    ``merges.txt`` is silently empty (every text becomes ``[]`` or ``[0]``).
    """
    ids = tokenizer.encode(PROBE_TEXT)
    if tokenizer.vocab_size < 2 or len(set(ids)) < 2:
        raise CheckpointError(
            f"tokenizer {tokenizer.name!r} is empty (vocab size {tokenizer.vocab_size}; "
            f"{PROBE_TEXT!r} -> {ids}); in transformers 5 build a GPT-2 tokenizer with "
            f"GPT2Tokenizer.from_pretrained(folder with vocab.json + merges.txt) and save_pretrained it, "
            f"not GPT2TokenizerFast(vocab_file=..., merges_file=...)"
        )


def _open(folder: Path, gguf_file: str | None) -> Any:
    from transformers import AutoTokenizer

    if gguf_file:
        return AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file, trust_remote_code=False)
    try:
        return AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    except (OSError, ValueError, KeyError) as first:
        # a bare GPT-2 BPE folder (vocab.json + merges.txt, no tokenizer.json / config.json)
        if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
            from transformers import GPT2Tokenizer

            return GPT2Tokenizer.from_pretrained(str(folder), trust_remote_code=False)
        raise first


def load_tokenizer(ref: CheckpointRef) -> HFTokenizer:
    """Open the tokenizer at ``ref`` (folder, package, hub snapshot, or GGUF file) and check it works."""
    folder, gguf = resolve_file(ref)
    try:
        with quiet_transformers():
            hf = _open(folder, gguf)
    except CheckpointError:
        raise
    except Exception as e:  # transformers raises OSError/ValueError/KeyError/... for unreadable folders
        raise CheckpointError(f"cannot load a tokenizer from {ref.describe()} ({folder}): {load_error_line(e, folder)}") from None
    tok = HFTokenizer(hf, name=ref.describe())
    check_not_empty(tok)
    return tok


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's split: ``whole = enc(ctx + cont)``, ``ctx_ids = enc(ctx)``, ``cont_ids = whole[len(ctx_ids):]``."""
    whole = tokenizer.encode(context + continuation)
    ctx = tokenizer.encode(context)
    if whole[: len(ctx)] != ctx:  # context tokens changed by a merge across the boundary
        ctx = whole[: len(ctx)]
    return ctx, whole[len(ctx) :]
