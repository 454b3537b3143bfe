"""Packing: turn tokenized documents into scoring requests (pure functions, no I/O).

Three modes (task card ``packing: {mode, block_size, stride, add_bos, add_eos}``):

``wrap`` — MDLM zero-shot protocol (kuleshov-group/mdlm ``dataloader.py:_group_texts``).
    Every document gets an EOS appended (``add_eos``), all are concatenated, and the stream is cut into
    chunks of ``block_size - add_bos - add_eos`` tokens (1022 for the default 1024 with both); each block is
    ``[BOS] + chunk + [EOS]``. The remainder is dropped. Request: ``context = (BOS,)``,
    ``continuation = chunk + (EOS,)``, so the scored tokens are the block without its BOS (the 1023 targets
    of MDLM's AR evaluation). With ``add_eos: false`` no EOS is inserted anywhere (neither after documents
    nor closing blocks), like bd3lms' ``insert_valid_eos=False`` minus the closing EOS.
    *Deviation:* MDLM drops the remainder of every 1000-document ``datasets.map`` batch (so its blocks
    depend on the map batching and ``num_proc``); we drop one global remainder. For large corpora the
    difference is a handful of blocks; for tiny ones (PTB) we keep more text.

``sliding`` — GPT-2-paper-style evaluation with a stride (HF guide "Perplexity of fixed-length models",
    https://huggingface.co/docs/transformers/perplexity).
    Documents are joined into one stream (an EOS after each document when
    ``add_eos``); with ``add_bos`` a BOS is put in front of the stream. Windows of ``block_size`` tokens
    start at ``0, stride, 2·stride, …`` until one reaches the end of the stream. Window ``k`` scores only the
    tokens after the end of window ``k-1`` (the first window: everything after its first position), with
    the earlier tokens of the window as context. So every stream token except the first (or every token,
    when the BOS is the first) is scored exactly once, with at least ``block_size - stride`` tokens of
    context after the first window.

``document`` — one request per document: ``context = (BOS,)`` if ``add_bos`` and the tokenizer has a BOS,
    else ``()``; ``continuation`` = the document's tokens (+ EOS when ``add_eos``). Documents longer than the
    model's context are left whole: the adapter slides over them.

Byte and word counts per request (for bits per byte and word perplexity):

* ``n_bytes`` = UTF-8 bytes of ``decode(continuation)`` with BOS/EOS ids removed first. Decoding chunk by
  chunk can split a multi-byte character at a chunk boundary (decoded as U+FFFD), a negligible error.
* ``n_words`` = number of whitespace-separated words of the ORIGINAL (not detokenized) document text,
  ``len(re.split(r"\\s+", text.strip()))`` (0 for an empty text), in ``document`` mode only; ``None`` in
  ``wrap``/``sliding`` where blocks cut words. lm-eval's wikitext counts ``re.split(r"\\s+", page)`` without
  the strip, i.e. up to 2 more per document when it begins/ends with whitespace.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MODES = ("wrap", "sliding", "document")


@dataclass(frozen=True)
class PackedRequest:
    """One request to score: ``-log p(continuation | context)``.

    ``doc_index``: index (in the ``docs`` given to :func:`pack`) of the document of the first scored token.
    """

    context: tuple[int, ...]
    continuation: tuple[int, ...]
    doc_index: int
    n_bytes: int
    n_words: int | None


def count_words(text: str) -> int:
    """Whitespace-separated words: ``len(re.split(r"\\s+", text.strip()))``, 0 for blank text."""
    stripped = text.strip()
    return len(re.split(r"\s+", stripped)) if stripped else 0


def _byte_count(tokens: Sequence[int], special: frozenset[int], decode: Callable[[Sequence[int]], str]) -> int:
    plain = [t for t in tokens if t not in special]
    return len(decode(plain).encode("utf-8")) if plain else 0


def pack(
    docs: Sequence[Sequence[int]],
    *,
    mode: str,
    block_size: int | None,
    stride: int | None = None,
    bos_id: int | None,
    eos_id: int | None,
    add_bos: bool = True,
    add_eos: bool = True,
    decode: Callable[[Sequence[int]], str],
    texts: Sequence[str] | None = None,
) -> list[PackedRequest]:
    """Pack tokenized documents into :class:`PackedRequest` s (see the module docstring for each mode).

    In ``wrap`` mode a missing BOS falls back to the EOS id (GPT-2 uses one token for both). ``texts``
    (original document texts, same length as ``docs``) give ``n_words`` in ``document`` mode.
    ``sliding`` defaults ``stride`` to ``block_size // 2`` and needs ``1 <= stride < block_size`` (so every
    window after the first has context). Raises ``ValueError`` on inconsistent arguments.
    """
    if mode not in MODES:
        raise ValueError(f"packing mode must be one of {', '.join(MODES)}, not {mode!r}")
    if texts is not None and len(texts) != len(docs):
        raise ValueError("texts must have one entry per document")
    special = frozenset(t for t in (bos_id, eos_id) if t is not None)
    if add_eos and eos_id is None:
        raise ValueError("add_eos needs a tokenizer with an EOS token (set packing add_eos: false)")
    if mode == "document":
        return _pack_document(docs, bos_id if add_bos else None, eos_id if add_eos else None, special, decode, texts)
    if block_size is None:
        raise ValueError(f"packing mode {mode!r} needs a block_size")
    if mode == "wrap":
        bos = (bos_id if bos_id is not None else eos_id) if add_bos else None
        if add_bos and bos is None:
            raise ValueError("wrap packing with add_bos needs a BOS or EOS token (set packing add_bos: false)")
        return _pack_wrap(docs, block_size, bos, eos_id if add_eos else None, special, decode)
    bos = bos_id if add_bos else None
    if add_bos and bos is None:
        raise ValueError("sliding packing with add_bos needs a BOS token (set packing add_bos: false)")
    stride = block_size // 2 if stride is None else stride
    return _pack_sliding(docs, block_size, stride, bos, eos_id if add_eos else None, special, decode)


def _stream(docs: Sequence[Sequence[int]], eos: int | None) -> tuple[list[int], list[int]]:
    """Concatenate documents (EOS after each when given); return the tokens and each token's doc index."""
    tokens: list[int] = []
    owner: list[int] = []
    for i, doc in enumerate(docs):
        piece = list(doc) + ([eos] if eos is not None else [])
        tokens.extend(int(t) for t in piece)
        owner.extend([i] * len(piece))
    return tokens, owner


def _pack_wrap(docs, block_size, bos, eos, special, decode) -> list[PackedRequest]:
    chunk = block_size - (bos is not None) - (eos is not None)
    if chunk < 1:
        raise ValueError(f"block_size {block_size} leaves no room for text between BOS and EOS")
    tokens, owner = _stream(docs, eos)
    usable = (len(tokens) // chunk) * chunk  # the remainder is dropped
    context = (bos,) if bos is not None else ()
    tail = (eos,) if eos is not None else ()
    out = []
    for start in range(0, usable, chunk):
        cont = tuple(tokens[start : start + chunk]) + tail
        out.append(PackedRequest(context, cont, owner[start], _byte_count(cont, special, decode), None))
    return out


def _pack_sliding(docs, block_size, stride, bos, eos, special, decode) -> list[PackedRequest]:
    if block_size < 2:
        raise ValueError("sliding packing needs block_size >= 2")
    if not 1 <= stride <= block_size - 1:
        raise ValueError(f"stride must be between 1 and block_size - 1 ({block_size - 1}), not {stride}")
    tokens, owner = _stream(docs, eos)
    if bos is not None:
        tokens = [bos] + tokens
        owner = [owner[0] if owner else 0] + owner
    n = len(tokens)
    out = []
    scored_until = 1  # position 0 is never scored (it is the BOS or has no context)
    begin = 0
    while scored_until < n:
        end = min(begin + block_size, n)
        if end > scored_until:
            ctx = tuple(tokens[begin:scored_until])
            cont = tuple(tokens[scored_until:end])
            out.append(PackedRequest(ctx, cont, owner[scored_until], _byte_count(cont, special, decode), None))
            scored_until = end
        begin += stride
    return out


def _pack_document(docs, bos, eos, special, decode, texts) -> list[PackedRequest]:
    out = []
    context = (bos,) if bos is not None else ()
    for i, doc in enumerate(docs):
        cont = tuple(int(t) for t in doc) + ((eos,) if eos is not None else ())
        if not cont:
            continue
        words = count_words(texts[i]) if texts is not None else None
        out.append(PackedRequest(context, cont, i, _byte_count(cont, special, decode), words))
    return out
