"""Perplexity tasks: token-weighted perplexity, NLL per token, bits per byte and word perplexity.

Pipeline (docs/architecture.md, "One job"): load the documents, detokenize, tokenize with the model's
tokenizer, pack (MDLM wrap, sliding window, or one sequence per document), score every packed request
with ``model.conditional_nll`` and aggregate with :mod:`dlmbench.metrics`. For diffusion models the
values are Monte Carlo upper bounds and every metric row says ``bound: upper``.
"""

from __future__ import annotations

import numpy as np

from dlmbench import metrics
from dlmbench.data.sources import dataset_name
from dlmbench.interface import LanguageModel, ScoreRequest
from dlmbench.errors import DatasetUnavailable
from dlmbench.seeding import request_seed
from dlmbench.specs import TaskSpec
from dlmbench.metrics import names
from dlmbench.tasks.base import MetricValue, TaskOutput


def run_perplexity(model: LanguageModel, task: TaskSpec, *, seed: int, limit: int | None) -> TaskOutput:
    from dlmbench.data.pipeline import build_requests

    mode = task.typed_packing.mode
    packed = build_requests(task, model.tokenizer, max_length=model.max_length, limit=limit, prefix_id=model.sequence_prefix(mode))
    if not packed:
        raise DatasetUnavailable(
            f"task {task.name}: no text to score after packing (too few documents for block size; "
            "raise --limit or use packing mode 'document')"
        )
    requests = [ScoreRequest(p.context, p.continuation, request_seed(seed, task.name, i)) for i, p in enumerate(packed)]
    result = model.conditional_nll(requests)
    nll, ntok = result.nll, result.n_tokens
    n_bytes = np.array([p.n_bytes for p in packed], dtype=np.float64)
    bound = result.bound
    common = {"mc_samples": result.mc_samples, **result.settings}
    out = [
        _mv(names.NLL_PER_TOKEN, metrics.per_token_nll(nll, ntok), bound, False, common),
        _mv(names.PERPLEXITY, metrics.perplexity(nll, ntok), bound, False, common),
        _mv(names.BITS_PER_BYTE, metrics.bits_per_byte(nll, n_bytes), bound, False, common),
    ]
    words = [p.n_words for p in packed]
    if all(w is not None for w in words) and sum(words) > 0:
        out.append(_mv(names.WORD_PERPLEXITY, metrics.word_perplexity(nll, np.array(words, dtype=np.float64)), bound, False, common))
    examples = [
        {
            "index": i,
            "doc_index": p.doc_index,
            "nll": float(nll[i]),
            "n_tokens": int(ntok[i]),
            "n_bytes": int(p.n_bytes),
            "stderr": None if not np.isfinite(result.stderr[i]) else float(result.stderr[i]),
        }
        for i, p in enumerate(packed)
    ]
    settings = {
        "packing": packed.settings,  # resolved: preset applied, defaults filled in
        "prefix_token": packed.prefix_token,  # the token fed before each sequence ({id, text}), None if none
        "detokenizer": list(task.detokenizer),
        "n_requests": len(packed),
        "n_tokens": int(ntok.sum()),
        "n_bytes": int(n_bytes.sum()),
        "n_skipped": packed.n_skipped,  # loaded records that became no request, by reason in "skipped"
        "skipped": dict(packed.skipped),
        **common,
    }
    if task.dataset.skip_missing:  # records without the text field were skipped: say how many
        settings["skipped_missing"] = int(packed.skipped_missing)
    return TaskOutput(out, examples, settings, dataset=dataset_name(task.dataset), split=task.dataset.split)


def _mv(name: str, est: metrics.Estimate, bound: str, higher: bool, settings: dict) -> MetricValue:
    return MetricValue(name, est.value, est.stderr, est.n, bound, higher, {})
