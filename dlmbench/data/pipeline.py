"""From a task card to packed scoring requests: load → detokenize → tokenize → pack.

The packing settings come from the card's ``packing`` mapping (``mode`` default ``document``,
``block_size`` default = the model's ``max_length``, ``stride``, ``add_bos``/``add_eos`` default true).

Empty documents (no tokens after detokenization) are skipped in ``document`` and ``sliding`` mode. In
``wrap`` mode they are kept and contribute only their EOS, as in MDLM's pipeline, which appends an EOS to
every row (WikiText's blank rows included) before grouping — this keeps the packed stream, hence the
numbers, identical to the reference's (up to its per-map-batch remainder dropping, see packing.py).
``doc_index`` of each request refers to the loaded records (after ``--limit``), skipped ones included.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from dlmbench.errors import BadSpec
from dlmbench.specs import TaskSpec
from dlmbench.data.detokenizers import get_detokenizer
from dlmbench.data.packing import PackedRequest, pack
from dlmbench.data.sources import Texts, load_texts

PROGRESS_MIN_DOCS = 2000


def packing_settings(task: TaskSpec, max_length: int | None) -> dict:
    """The resolved packing settings of ``task`` for a model with context ``max_length``."""
    p = task.typed_packing  # types, ranges and choices are checked there (dlmbench/specs/task_settings.py)
    mode = p.mode
    block_size = p.block_size or max_length
    stride = p.stride
    if mode in ("wrap", "sliding") and block_size is None:
        raise BadSpec(f"task {task.name}: packing mode {mode!r} needs packing.block_size (the model has no max_length)")
    if block_size is not None and block_size < 2:
        raise BadSpec(f"task {task.name}: packing.block_size must be an integer >= 2, not {block_size!r}")
    if mode == "sliding":
        stride = block_size // 2 if stride is None else stride
        if not 1 <= stride < block_size:
            raise BadSpec(f"task {task.name}: packing.stride must be an integer in [1, block_size), not {stride!r}")
    return {"mode": mode, "block_size": block_size, "stride": stride, "add_bos": p.add_bos, "add_eos": p.add_eos}


def tokenize(tokenizer, texts: Sequence[str], desc: str = "tokenizing") -> list[list[int]]:
    """``tokenizer.encode`` of every text, with a progress bar on stderr for large corpora."""
    if len(texts) >= PROGRESS_MIN_DOCS:
        from dlmbench.progress import bar

        texts = bar(texts, desc=desc, unit="doc")
    return [list(tokenizer.encode(t)) if t else [] for t in texts]


def build_requests(task: TaskSpec, tokenizer, *, max_length: int | None, limit: int | None) -> list[PackedRequest]:
    """Load ``task``'s documents (first ``limit``), detokenize, tokenize with ``tokenizer`` and pack."""
    settings = packing_settings(task, max_length)
    originals = load_texts(task.dataset, limit=limit)
    detok = get_detokenizer(task.detokenizer)
    texts = [detok(t) for t in originals]
    docs = tokenize(tokenizer, texts, desc=f"tokenizing {task.name}")
    keep = list(range(len(docs))) if settings["mode"] == "wrap" else [i for i, d in enumerate(docs) if d]
    try:
        packed = pack(
            [docs[i] for i in keep],
            mode=settings["mode"],
            block_size=settings["block_size"],
            stride=settings["stride"],
            bos_id=tokenizer.bos_id,
            eos_id=tokenizer.eos_id,
            add_bos=settings["add_bos"],
            add_eos=settings["add_eos"],
            decode=tokenizer.decode,
            texts=[originals[i] for i in keep],
        )
    except ValueError as e:
        raise BadSpec(f"task {task.name}: {e} (tokenizer {getattr(tokenizer, 'name', '?')})") from None
    out = Texts(dataclasses.replace(p, doc_index=keep[p.doc_index]) for p in packed)
    out.skipped_missing = originals.skipped_missing  # records without the text field (dataset.skip_missing)
    return out
