"""From a task card to packed scoring requests: load → detokenize → tokenize → pack.

The packing settings are the card's ``packing`` block resolved (:meth:`PackingSettings.resolved`, presets
applied; ``block_size`` default = the model's ``max_length``; ``stride`` default ``block_size // 2`` in sliding
mode). The token that starts a sequence is the *model's* prefix token (``prefix_id``, from
:meth:`dlmbench.interface.LanguageModel.sequence_prefix`); the requests carry it in their contexts and
:func:`build_requests` returns it (id and text) so the result row records the token actually fed.

Every loaded record is accounted for (``Packed.skipped``): records lacking the text field
(``missing_field``, only with ``dataset.skip_missing``), empty documents (``empty``: no tokens after
detokenization; ``dataset.on_empty: error`` makes one an error naming the record instead) and documents with
nothing to score (``nothing_to_score``: a single token with ``first_token: unscored`` in document/rolling mode).
In ``wrap`` mode with ``add_eos`` an empty document is kept and contributes only its EOS, as in MDLM's
pipeline, which appends an EOS to every row (WikiText's blank rows included) before grouping — this keeps the
packed stream, hence the numbers, identical to the reference's (up to its per-map-batch remainder dropping,
see packing.py). ``doc_index`` of each request refers to the loaded records (after ``--limit``), skipped ones
included.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from dlmbench.data.detokenizers import get_detokenizer
from dlmbench.data.packing import pack
from dlmbench.data.sources import load_texts, record_place
from dlmbench.errors import BadSpec, DatasetUnavailable
from dlmbench.interface import tokenizer_prefix
from dlmbench.specs import TaskSpec

PROGRESS_MIN_DOCS = 2000
TOKENIZER_RULE = "tokenizer"  # build_requests(prefix_id=...) default: the tokenizer's BOS (wrap: else EOS)


class Packed(list):
    """The packed requests (a ``list[PackedRequest]``) and what a result row records about them."""

    settings: dict[str, Any]  # the resolved packing settings
    prefix_token: dict[str, Any] | None  # {"id", "text"} of the token fed before each sequence, None if none
    skipped: dict[str, int]  # loaded records that became no request, by reason
    skipped_missing: int = 0  # records without the text field (dataset.skip_missing), also in skipped

    @property
    def n_skipped(self) -> int:
        return int(sum(self.skipped.values()))


def packing_settings(task: TaskSpec, max_length: int | None) -> dict:
    """The resolved packing settings of ``task`` for a model with context ``max_length``."""
    p = task.typed_packing  # types, ranges and choices are checked there (dlmbench/specs/task_settings.py)
    out = p.resolved()
    mode = out["mode"]
    block_size = out["block_size"] or max_length
    if mode in ("wrap", "sliding", "rolling") and block_size is None:
        raise BadSpec(f"task {task.name}: packing mode {mode!r} needs packing.block_size (the model has no max_length)")
    if block_size is not None and block_size < 2:
        raise BadSpec(f"task {task.name}: packing.block_size must be an integer >= 2, not {block_size!r}")
    stride = out["stride"]
    if mode == "sliding":
        stride = block_size // 2 if stride is None else stride
        if not 1 <= stride < block_size:
            raise BadSpec(f"task {task.name}: packing.stride must be an integer in [1, block_size), not {stride!r}")
    out.update(block_size=None if mode == "document" else block_size, stride=stride)  # document: the adapter's own windows
    return out


def token_text(tokenizer, token_id: int) -> str:
    """The vocabulary entry of ``token_id`` (``<|endoftext|>``): the tokenizer's ``token_text`` where it has one,
    else ``decode([token_id])``."""
    fn = getattr(tokenizer, "token_text", None)
    return str(fn(int(token_id))) if callable(fn) else tokenizer.decode([int(token_id)])


def tokenize(tokenizer, texts: Sequence[str], desc: str = "tokenizing") -> list[list[int]]:
    """``tokenizer.encode`` of every text, with a progress bar on stderr for large corpora."""
    if len(texts) >= PROGRESS_MIN_DOCS:
        from dlmbench.progress import bar

        texts = bar(texts, desc=desc, unit="doc")
    return [list(tokenizer.encode(t)) if t else [] for t in texts]


def separator_ids(task: TaskSpec, tokenizer, separator: int | str | None) -> tuple[int, ...]:
    """The separator's token ids: an id as given, a string tokenized once (an error if it has no tokens)."""
    if separator is None:
        return ()
    if isinstance(separator, int):
        return (separator,)
    ids = tuple(tokenizer.encode(separator))
    if not ids:
        raise BadSpec(f"task {task.name}: packing.separator {separator!r} has no tokens in tokenizer {getattr(tokenizer, 'name', '?')}")
    return ids


def build_requests(
    task: TaskSpec, tokenizer, *, max_length: int | None, limit: int | None, prefix_id: int | None | str = TOKENIZER_RULE
) -> Packed:
    """Load ``task``'s documents (first ``limit``), detokenize, tokenize with ``tokenizer`` and pack, each sequence
    starting with ``prefix_id`` where ``first_token`` is ``prefixed`` (default: the tokenizer's rule,
    :func:`dlmbench.interface.tokenizer_prefix`; a model passes its own, ``model.sequence_prefix(mode)``)."""
    settings = packing_settings(task, max_length)
    mode = settings["mode"]
    if prefix_id == TOKENIZER_RULE:
        prefix_id = tokenizer_prefix(tokenizer, mode)
    sep = separator_ids(task, tokenizer, settings["separator"])
    originals = load_texts(task.dataset, limit=limit)
    detok = get_detokenizer(task.detokenizer)
    texts = [detok(t) for t in originals]
    docs = tokenize(tokenizer, texts, desc=f"tokenizing {task.name}")
    empty = [i for i, d in enumerate(docs) if not d]
    if empty and task.dataset.on_empty == "error":
        where = record_place(originals.path, task.dataset, originals.indices[empty[0]])
        raise DatasetUnavailable(
            f"{where}: the document is empty after detokenizing ({len(empty)} of {len(docs)} documents are); fix the data, "
            "or set dataset.on_empty: skip to skip such documents (the number skipped is recorded)"
        )
    keep_empty = mode == "wrap" and settings["add_eos"]
    keep = list(range(len(docs))) if keep_empty else [i for i, d in enumerate(docs) if d]
    try:
        packed = pack(
            [docs[i] for i in keep],
            mode=mode,
            block_size=settings["block_size"],
            stride=settings["stride"],
            prefix_id=prefix_id,
            eos_id=tokenizer.eos_id,
            first_token=settings["first_token"],
            add_eos=settings["add_eos"],
            separator=sep,
            partial_last_block=settings["partial_last_block"] or "drop",
            decode=tokenizer.decode,
            texts=[originals[i] for i in keep],
        )
    except ValueError as e:
        raise BadSpec(f"task {task.name}: {e} (tokenizer {getattr(tokenizer, 'name', '?')})") from None
    out = Packed(dataclasses.replace(p, doc_index=keep[p.doc_index]) for p in packed)
    fed = prefix_id if settings["first_token"] == "prefixed" and any(p.context[:1] == (prefix_id,) for p in packed) else None
    out.settings = {**settings, "separator_ids": list(sep) if sep else None}
    out.prefix_token = None if fed is None else {"id": int(fed), "text": token_text(tokenizer, fed)}
    nothing = 0
    if mode in ("document", "rolling"):
        scored = {p.doc_index for p in out}
        nothing = sum(1 for i in keep if i not in scored)
    out.skipped_missing = originals.skipped_missing  # records without the text field (dataset.skip_missing)
    out.skipped = {
        "missing_field": int(originals.skipped_missing),
        "empty": 0 if keep_empty else len(empty),
        "nothing_to_score": int(nothing),
    }
    return out
