"""LAMBADA-style last-word prediction: accuracy (every target token greedy) and target perplexity.

As lm-eval's ``lambada_openai`` (``lm_eval/tasks/lambada/lambada_openai.yaml``): context = the passage without its
last word, continuation = ``' ' + last word``; ``acc`` = 1 iff the model's greedy check reproduces the
whole continuation; ``perplexity`` = ``exp(mean_i −log p(continuation_i | context_i))`` over examples.
Tokenization follows lm-eval: encode ``context + continuation`` and ``context``, the continuation tokens
are the difference, so BPE merges across the boundary are handled the same way.

For diffusion models ``−log p`` is an upper bound (``bound: upper``) and the greedy check is the
family's documented variant, recorded in the row (``greedy_method``).
"""

from __future__ import annotations

import re

import numpy as np

from dlmbench import metrics
from dlmbench.interface import LanguageModel, ScoreRequest
from dlmbench.errors import DatasetUnavailable
from dlmbench.seeding import request_seed
from dlmbench.specs import TaskSpec
from dlmbench.metrics import names
from dlmbench.tasks.base import MetricValue, TaskOutput
from dlmbench.data.sources import dataset_name
from dlmbench.data.tokenization import encode_pair

_TRAILING_PUNCT = re.compile(r"[\s\.,;:!\?\"'\)\]]+$")


def split_last_word(text: str, strip_punctuation: bool = False, delimiter: str = " ") -> tuple[str, str] | None:
    """``(context, target)`` with ``target = delimiter + last word``; None if there is no last word.

    With ``strip_punctuation`` the passage is first cut after its last word (trailing punctuation and
    closing quotes removed), so the target is a word, as in LAMBADA.
    """
    text = text.strip()
    if strip_punctuation:
        text = _TRAILING_PUNCT.sub("", text)
    if delimiter not in text:
        return None
    context, word = text.rsplit(delimiter, 1)
    if not word or not context:
        return None
    return context, delimiter + word


def run_lambada(model: LanguageModel, task: TaskSpec, *, seed: int, limit: int | None) -> TaskOutput:
    from dlmbench.data.detokenizers import get_detokenizer
    from dlmbench.data.sources import load_texts

    st = task.typed_settings
    strip, delim = st.strip_punctuation, st.target_delimiter
    detok = get_detokenizer(task.detokenizer) if task.detokenizer else (lambda s: s)
    texts = load_texts(task.dataset, limit=limit)
    pairs = []
    empty = no_word = 0
    for i, t in enumerate(texts):
        passage = detok(t)
        if not passage.strip():
            if task.dataset.on_empty == "error":
                from dlmbench.data.sources import record_place

                raise DatasetUnavailable(
                    f"{record_place(texts.path, task.dataset, texts.indices[i])}: the passage is empty after detokenizing; "
                    "fix the data, or set dataset.on_empty: skip to skip such passages (the number skipped is recorded)"
                )
            empty += 1
            continue
        sp = split_last_word(passage, strip, delim)
        if sp is None:
            no_word += 1
        else:
            pairs.append((i, *sp))
    if not pairs:
        raise DatasetUnavailable(f"task {task.name}: no passage with a last word to predict")
    requests = []
    for i, ctx, cont in pairs:
        c_ids, t_ids = encode_pair(model.tokenizer, ctx, cont)
        requests.append(ScoreRequest(tuple(c_ids), tuple(t_ids), request_seed(seed, task.name, i)))
    scored = model.conditional_nll(requests)
    greedy = model.greedy_match(requests)
    correct = np.asarray(greedy.matches, dtype=np.float64)
    extra = {"greedy_method": greedy.method, "mc_samples": scored.mc_samples, **scored.settings}
    acc = metrics.accuracy(correct)
    ppl = metrics.example_perplexity(scored.nll)
    out = [
        MetricValue(names.ACC, acc.value, acc.stderr, acc.n, "exact", True, {}),
        MetricValue(names.PERPLEXITY, ppl.value, ppl.stderr, ppl.n, scored.bound, False, {}),
    ]
    examples = [
        {
            "index": k,
            "doc_index": i,
            "target": cont,
            "nll": float(scored.nll[k]),
            "n_tokens": int(scored.n_tokens[k]),
            "correct": bool(correct[k]),
        }
        for k, (i, _ctx, cont) in enumerate(pairs)
    ]
    skipped = {"missing_field": int(texts.skipped_missing), "empty": empty, "no_last_word": no_word}
    settings = {
        "strip_punctuation": strip,
        "target_delimiter": delim,
        "n_examples": len(pairs),
        # contexts are never empty here, so no prefix token is fed (the model's own rule never applies)
        "prefix_token": None,
        "n_skipped": sum(skipped.values()),  # loaded records that became no example, by reason in "skipped"
        "skipped": skipped,
        **extra,
    }
    if task.dataset.skip_missing:  # records skipped for lacking the text field
        settings["skipped_missing"] = int(texts.skipped_missing)
    return TaskOutput(out, examples, settings, dataset=dataset_name(task.dataset), split=task.dataset.split)
