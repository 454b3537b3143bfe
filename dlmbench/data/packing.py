"""Packing: turn tokenized documents into scoring requests (pure functions, no I/O).

Settings (task card ``packing:``, typed in :class:`dlmbench.specs.task_settings.PackingSettings`, presets in
``PACKING_PRESETS`` there): ``mode``, ``block_size``, ``stride``, ``first_token``, ``add_eos``, ``separator``,
``partial_last_block``. ``prefix_id`` is the *model's* prefix token (the AR card's ``prefix_token_id``, the token
it scores an empty context against; other families: the tokenizer's BOS, see
:meth:`dlmbench.interface.LanguageModel.sequence_prefix`), so a document start and an empty context are scored
after the same token.

``first_token`` says what happens to the first token of each *sequence* (a document in ``document`` and
``rolling`` mode, a block in ``wrap``, the whole stream in ``sliding``):

* ``prefixed`` — the sequence is preceded by ``prefix_id`` (put in the request's context, so the token fed is the
  one recorded) and its first token is scored after it. A model without a prefix token (``prefix_id`` None)
  gets an empty context in ``document``/``rolling`` mode: the adapter's own rule then applies (an AR model
  leaves the first token unscored; a diffusion bound covers it unconditioned); ``wrap``/``sliding`` need one.
* ``unscored`` — the first token is context only, never scored (nor counted in ``n_tokens``).

Joined modes (``wrap``, ``sliding``) concatenate documents into one stream: each document, then its EOS
(``add_eos``), then ``separator`` (token ids; a string is tokenized once by the pipeline) before the next one.

``wrap`` — MDLM zero-shot protocol (kuleshov-group/mdlm ``dataloader.py:_group_texts``; preset ``mdlm-wrap``).
    The stream is cut into chunks of ``block_size - [prefixed] - add_eos`` tokens (1022 for the default 1024);
    each block is ``[prefix] + chunk + [EOS]`` (the closing EOS when ``add_eos``). ``prefixed``: context
    ``(prefix,)``, continuation ``chunk + (EOS,)`` — the 1023 targets of MDLM's AR evaluation. ``unscored``:
    context ``(chunk[0],)``, continuation the rest of the block. ``partial_last_block``: ``drop`` (MDLM) the
    remainder, or ``keep`` it as a shorter last block with the same framing (every token scored).
    *Deviation:* MDLM drops the remainder of every 1000-document ``datasets.map`` batch (so its blocks
    depend on the map batching and ``num_proc``); we drop one global remainder. For large corpora the
    difference is a handful of blocks; for tiny ones (PTB) we keep more text.
    "Join with \\n, non-overlapping C-token chunks, every token scored" is ``mode: wrap, separator: "\\n",
    add_eos: false, first_token: prefixed, partial_last_block: keep, block_size: C + 1``.

``sliding`` — GPT-2-paper-style evaluation with a stride (HF guide "Perplexity of fixed-length models",
    https://huggingface.co/docs/transformers/perplexity; preset ``gpt2-sliding``). With ``prefixed`` the
    prefix token is put in front of the stream. Windows of ``block_size`` tokens start at
    ``0, stride, 2·stride, …`` until one reaches the end of the stream. Window ``k`` scores only the tokens
    after the end of window ``k-1`` (the first window: everything after its first position), with the earlier
    tokens of the window as context. So every stream token is scored exactly once (``unscored``: all but the
    first), with at least ``block_size - stride`` tokens of context after the first window.

``document`` — one request per document: context ``(prefix,)`` (or ``()`` without a prefix token),
    continuation the document's tokens (+ EOS when ``add_eos``); ``unscored``: context its first token.
    Documents longer than the model's context are left whole: the adapter slides over them.

``rolling`` — lm-eval's ``loglikelihood_rolling`` (``lm_eval/models/huggingface.py``: ``get_rolling_token_windows``
    with ``context_len=1`` then ``make_disjoint_window``, ``lm_eval/utils.py``; preset ``lmeval-rolling``), per
    document. With ``L = block_size`` (the model's ``max_length`` by default) the document's targets are cut into
    consecutive pieces of ``L`` tokens; the first piece is scored after the prefix (``prefixed``) or after the
    document's first token (``unscored``, whose targets then start at the second token); a later piece ending at
    target ``e`` with ``k`` tokens gets as context the ``L + 1 - k`` targets before it (one for a full piece), so
    every forward pass sees at most ``L`` inputs and every target is scored exactly once.

Byte and word counts per request (for bits per byte and word perplexity):

* ``n_bytes`` = UTF-8 bytes of ``decode(continuation)`` with the prefix and EOS ids removed first. Decoding chunk
  by chunk can split a multi-byte character at a chunk boundary (decoded as U+FFFD), a negligible error.
* ``n_words`` = number of whitespace-separated words of the ORIGINAL (not detokenized) document text,
  ``len(re.split(r"\\s+", text.strip()))`` (0 for an empty text), in ``document`` and ``rolling`` mode (rolling:
  on the document's first request, 0 on the others); ``None`` in ``wrap``/``sliding`` where blocks cut words.
  lm-eval's wikitext counts ``re.split(r"\\s+", page)`` without the strip, i.e. up to 2 more per document when it
  begins/ends with whitespace.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MODES = ("wrap", "sliding", "document", "rolling")
FIRST_TOKEN = ("prefixed", "unscored")


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
    prefix_id: int | None,
    eos_id: int | None,
    first_token: str = "prefixed",
    add_eos: bool = True,
    separator: Sequence[int] = (),
    partial_last_block: str = "drop",
    decode: Callable[[Sequence[int]], str],
    texts: Sequence[str] | None = None,
) -> list[PackedRequest]:
    """Pack tokenized documents into :class:`PackedRequest` s (see the module docstring for each mode).

    ``texts`` (original document texts, same length as ``docs``) give ``n_words`` in ``document`` and
    ``rolling`` mode. ``sliding`` defaults ``stride`` to ``block_size // 2`` and needs ``1 <= stride < block_size``
    (so every window after the first has context). A document with nothing to score (empty; or a single token
    with ``unscored``) gives no request in ``document``/``rolling`` mode. Raises ``ValueError`` on inconsistent
    arguments.
    """
    if mode not in MODES:
        raise ValueError(f"packing mode must be one of {', '.join(MODES)}, not {mode!r}")
    if first_token not in FIRST_TOKEN:
        raise ValueError(f"first_token must be one of {', '.join(FIRST_TOKEN)}, not {first_token!r}")
    if partial_last_block not in ("drop", "keep"):
        raise ValueError(f"partial_last_block must be drop or keep, not {partial_last_block!r}")
    if texts is not None and len(texts) != len(docs):
        raise ValueError("texts must have one entry per document")
    if add_eos and eos_id is None:
        raise ValueError("add_eos needs a tokenizer with an EOS token (set packing add_eos: false)")
    prefix = prefix_id if first_token == "prefixed" else None
    special = frozenset(t for t in (prefix, eos_id) if t is not None)
    eos = eos_id if add_eos else None
    if mode == "document":
        return _pack_document(docs, first_token, prefix, eos, special, decode, texts)
    if block_size is None:
        raise ValueError(f"packing mode {mode!r} needs a block_size")
    if mode == "rolling":
        return _pack_rolling(docs, block_size, first_token, prefix, eos, special, decode, texts)
    if first_token == "prefixed" and prefix is None:
        raise ValueError(f"{mode} packing with first_token prefixed needs a prefix token (the model has none; set packing first_token: unscored)")
    sep = tuple(int(t) for t in separator)
    if mode == "wrap":
        return _pack_wrap(docs, block_size, prefix, eos, sep, partial_last_block == "keep", special, decode)
    stride = block_size // 2 if stride is None else stride
    return _pack_sliding(docs, block_size, stride, prefix, eos, sep, special, decode)


def _start(seq: Sequence[int], first_token: str, prefix: int | None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(context, continuation) of a sequence whose first token is ``prefixed`` or ``unscored``."""
    seq = tuple(int(t) for t in seq)
    if first_token == "unscored":
        return seq[:1], seq[1:]
    return ((prefix,) if prefix is not None else ()), seq


def _stream(docs: Sequence[Sequence[int]], eos: int | None, sep: tuple[int, ...] = ()) -> tuple[list[int], list[int]]:
    """Concatenate documents (EOS after each when given, ``sep`` between two); return the tokens and each
    token's doc index (a separator belongs to the document before it)."""
    tokens: list[int] = []
    owner: list[int] = []
    for i, doc in enumerate(docs):
        piece = list(doc) + ([eos] if eos is not None else []) + (list(sep) if i < len(docs) - 1 else [])
        tokens.extend(int(t) for t in piece)
        owner.extend([i] * len(piece))
    return tokens, owner


def _pack_wrap(docs, block_size, prefix, eos, sep, keep_partial, special, decode) -> list[PackedRequest]:
    chunk = block_size - (prefix is not None) - (eos is not None)
    if chunk < 1:
        raise ValueError(f"block_size {block_size} leaves no room for text between the prefix and EOS")
    tokens, owner = _stream(docs, eos, sep)
    starts = list(range(0, (len(tokens) // chunk) * chunk, chunk))
    if keep_partial and len(tokens) % chunk:
        starts.append((len(tokens) // chunk) * chunk)
    tail = (eos,) if eos is not None else ()
    out = []
    for start in starts:
        block = tuple(tokens[start : start + chunk]) + tail
        ctx, cont = _start(block, "prefixed" if prefix is not None else "unscored", prefix)
        if cont:
            out.append(PackedRequest(ctx, cont, owner[min(start + (prefix is None), len(tokens) - 1)], _byte_count(cont, special, decode), None))
    return out


def _pack_sliding(docs, block_size, stride, prefix, eos, sep, special, decode) -> list[PackedRequest]:
    if block_size < 2:
        raise ValueError("sliding packing needs block_size >= 2")
    if not 1 <= stride <= block_size - 1:
        raise ValueError(f"stride must be between 1 and block_size - 1 ({block_size - 1}), not {stride}")
    tokens, owner = _stream(docs, eos, sep)
    if prefix is not None:
        tokens = [prefix] + tokens
        owner = [owner[0] if owner else 0] + owner
    n = len(tokens)
    out = []
    scored_until = 1  # position 0 is never scored (it is the prefix token, or unscored)
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


def _pack_document(docs, first_token, prefix, eos, special, decode, texts) -> list[PackedRequest]:
    out = []
    for i, doc in enumerate(docs):
        ctx, cont = _start(list(doc) + ([eos] if eos is not None else []), first_token, prefix)
        if not cont:
            continue
        words = count_words(texts[i]) if texts is not None else None
        out.append(PackedRequest(ctx, cont, i, _byte_count(cont, special, decode), words))
    return out


def rolling_pieces(targets: Sequence[int], first_context: tuple[int, ...], length: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """``(context, continuation)`` pieces scoring every token of ``targets`` once, lm-eval's rolling rule with
    ``context_len=1`` made disjoint: pieces of ``length`` targets; the first after ``first_context``, a later one
    of ``k`` targets ending at ``e`` after ``targets[max(0, e - length - 1) : e - k]``."""
    if length < 1:
        raise ValueError(f"rolling windows need a length >= 1, not {length}")
    t = tuple(int(x) for x in targets)
    pieces = []
    done = 0
    while done < len(t):
        end = min(done + length, len(t))
        ctx = first_context if done == 0 else t[max(0, end - length - 1) : done]
        pieces.append((ctx, t[done:end]))
        done = end
    return pieces


def _pack_rolling(docs, length, first_token, prefix, eos, special, decode, texts) -> list[PackedRequest]:
    out = []
    for i, doc in enumerate(docs):
        first_ctx, targets = _start(list(doc) + ([eos] if eos is not None else []), first_token, prefix)
        for j, (ctx, cont) in enumerate(rolling_pieces(targets, first_ctx, length)):
            words = (count_words(texts[i]) if j == 0 else 0) if texts is not None else None
            out.append(PackedRequest(ctx, cont, i, _byte_count(cont, special, decode), words))
    return out
