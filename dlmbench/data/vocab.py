"""Does a tokenizer belong to the weights it is loaded with? Pure checks shared by every family's loader.

Two questions, asked when a checkpoint loads, before any data is read (issue 19, item 2):

1. **Size.** ``n_ids`` is the number of ids the tokenizer can emit: ``max id + 1`` over its vocabulary and added
   tokens (``len(tokenizer)`` for a dense vocabulary; LLaDA-style tokenizers with a gap before their special ids
   count up to the last id). ``rows`` is the number of rows of the model's token embedding. Each family says what
   the difference may be (:func:`check_rows`):

   * ``exact``: ``n_ids == rows`` (Plaid: ``embedding_matrix`` and the output layer have one row per OWT2 token).
   * ``padded``: ``n_ids <= rows <= n_ids + max_padding(rows)``. Embeddings are commonly padded to a multiple of
     64 or 128 (nanoGPT 50304 rows for GPT-2's 50257 tokens, Pythia 50304 for 50277, LLaDA 8B 126464 rows for
     126349 ids) or a little more (Qwen2.5 151936 rows for 151665 tokens, Phi-2 51200 for 50295 (1.8 %),
     DeepSeek-LLM 102400 for 100015 (2.3 %)): :func:`max_padding` allows ``max(128, rows // 32)`` unused rows.
     A tokenizer much smaller than the embedding (the 18-id Countdown tokenizer on 2048-row KJV weights) is
     another model's tokenizer and is refused; one larger than the embedding would index past it.
   * ``mask_appended``: the MDLM / SEDD GPT-2 convention, ``rows == n_ids + 1`` (the mask / absorbing token is
     the appended last row, 50257 tokens + 1 = 50258 rows) or ``rows == n_ids`` when the tokenizer itself holds
     a token at the last id (a tokenizer saved by MDLM carries one there); see
     :func:`dlmbench.nets.dit_lm.load_dit_tokenizer`.

2. **Special ids** (:func:`check_special_ids`): every id the model's config declares (BOS / EOS / pad / mask; an
   int, a list of ints, or None; negative = none) must be one of the tokenizer's ids, and where the tokenizer
   names an id for the same role, the two must agree (the tokenizer's id among the config's, which may list
   several EOS ids, as Llama 3 does).

A mismatch is a :class:`~dlmbench.errors.CheckpointError` of one line naming both numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dlmbench.errors import CheckpointError

PADDING_MIN = 128  # rows beyond the last id always allowed by ``padded`` (rounding up to a multiple of 64 or 128)
PADDING_FRACTION = 32  # ... or rows // 32 (3.1 %), for large embeddings rounded further


def max_padding(rows: int) -> int:
    """Unused embedding rows a ``padded`` vocabulary may have: ``max(128, rows // 32)``."""
    return max(PADDING_MIN, int(rows) // PADDING_FRACTION)


def id_span(hf_tokenizer: Any) -> int:
    """Ids a ``transformers`` tokenizer can emit: ``max id + 1`` over ``get_vocab()`` (added tokens included), at
    least ``len(tokenizer)``."""
    vocab = hf_tokenizer.get_vocab()
    top = max(vocab.values()) + 1 if vocab else 0
    return max(int(top), len(hf_tokenizer))


def check_rows(n_ids: int, rows: int, rule: str, *, where: str) -> None:
    """Raise :class:`CheckpointError` unless a tokenizer of ``n_ids`` ids fits an embedding of ``rows`` rows under
    ``rule`` (``exact``, ``padded`` or ``mask_appended``; see the module docstring)."""
    n_ids, rows = int(n_ids), int(rows)
    if rule == "exact":
        ok, expected = n_ids == rows, f"exactly {rows} tokens"
    elif rule == "padded":
        pad = max_padding(rows)
        ok, expected = rows - pad <= n_ids <= rows, f"{max(rows - pad, 0)} to {rows} tokens: at most {pad} rows of padding"
    elif rule == "mask_appended":
        ok, expected = n_ids in (rows - 1, rows), f"{rows - 1} tokens (+1 row for the mask) or {rows}"
    else:
        raise ValueError(f"unknown vocabulary rule {rule!r}")
    if ok:
        return
    if n_ids > rows:
        raise CheckpointError(f"{where}: its tokenizer has {n_ids} tokens but the weights embed only {rows}; "
                              "the tokenizer does not belong to these weights")
    raise CheckpointError(f"{where}: its tokenizer has {n_ids} tokens but the weights have {rows} embedding rows "
                          f"(expected {expected}); the tokenizer does not belong to these weights")


def declared_ids(value: Any) -> tuple[int, ...]:
    """A config's special-id field as a tuple: ``None`` and negative ids (``-1`` = none) are dropped."""
    if value is None:
        return ()
    values = value if isinstance(value, (list, tuple)) else [value]
    return tuple(int(v) for v in values if v is not None and int(v) >= 0)


def check_special_ids(declared: Mapping[str, Any], tokenizer_ids: Mapping[str, int | None], n_ids: int, *,
                      where: str, agree: Iterable[str] = ("bos", "eos", "mask")) -> None:
    """Every id in ``declared`` (role → id, list of ids or None, from the model's config) is below ``n_ids``;
    for the roles in ``agree``, the tokenizer's own id for that role (``tokenizer_ids``; None = it names none)
    is one of the declared ids. One-line :class:`CheckpointError` otherwise."""
    for role, value in declared.items():
        ids = declared_ids(value)
        for i in ids:
            if i >= n_ids:
                raise CheckpointError(f"{where}: the config's {role} id {i} is not a token of its tokenizer "
                                      f"({n_ids} tokens); the tokenizer does not belong to these weights")
        own = tokenizer_ids.get(role)
        if role in agree and ids and own is not None and int(own) not in ids:
            shown = ids[0] if len(ids) == 1 else list(ids)
            raise CheckpointError(f"{where}: the tokenizer's {role} id is {own} but the config says {shown}; "
                                  "the tokenizer does not belong to these weights")


__all__ = ["check_rows", "check_special_ids", "declared_ids", "id_span", "max_padding"]
