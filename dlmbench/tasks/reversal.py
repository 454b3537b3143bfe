"""The reversal curse (Berglund et al., 2023, https://arxiv.org/abs/2309.12288).

For people whose facts were learned in one direction, ask in the same direction and in the reverse
direction. Per direction: exact match (Berglund: the greedy completion, stripped and lower-cased, starts
with the target), substring accuracy (SMDM/LLaDA: the target occurs in the completion), and the mean
log-probability of the target given the prompt (exact for AR, a lower bound — from the NLL upper bound —
for diffusion, ``bound: upper``). Metric names are ``same.<metric>`` and ``reverse.<metric>``, with
``direction`` in the row settings, so the forward/reverse gap is one group-by.

Task settings: ``same_file`` and ``reverse_file`` (JSONL files ``{"prompt", "completion"}`` inside the
dataset folder or URL prefix), ``max_new_tokens``, ``sampler`` (extra sampler settings; greedy by
default: temperature 0).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dlmbench import metrics
from dlmbench.interface import LanguageModel, ScoreRequest, until_eos
from dlmbench.errors import DatasetUnavailable
from dlmbench.seeding import request_seed
from dlmbench.specs import DatasetSpec, TaskSpec
from dlmbench.metrics import names
from dlmbench.tasks.base import MetricValue, TaskOutput
from dlmbench.data.tokenization import encode_pair
from dlmbench.data.sources import dataset_name


def _file_spec(ds: DatasetSpec, file: str) -> DatasetSpec:
    """One of the task's JSONL files inside its dataset folder: a folder, a URL prefix, or (``source: package``) a
    folder ``ds.file`` inside the package ``ds.path``."""
    if ds.source == "package":
        folder = (ds.file or "").rstrip("/")
        return dataclasses.replace(ds, file=f"{folder}/{file}" if folder else file, field="prompt", format="jsonl")
    sep = "" if ds.path.endswith("/") else "/"
    return dataclasses.replace(ds, path=ds.path + sep + file, field="prompt", file=None, format="jsonl")


def _direction(model: LanguageModel, task: TaskSpec, direction: str, file: str, seed: int, limit: int | None):
    from dlmbench.data.sources import load_records
    from dlmbench.metrics.reversal import exact_match, substring_match

    st = task.typed_settings
    records = load_records(_file_spec(task.dataset, file), limit=limit)
    if not records:
        raise DatasetUnavailable(f"task {task.name}: {file} has no examples")
    max_new = st.max_new_tokens
    sampler = {"temperature": 0.0, **st.sampler}
    requests, completions = [], []
    for i, rec in enumerate(records):
        ctx_ids, tgt_ids = encode_pair(model.tokenizer, rec["prompt"], rec["completion"])
        requests.append(ScoreRequest(tuple(ctx_ids), tuple(tgt_ids), request_seed(seed, task.name, direction, i)))
        out = model.sample(1, max_new, prefix=ctx_ids, seed=request_seed(seed, task.name, direction, "gen", i), **sampler)
        completions.append(model.tokenizer.decode(until_eos(out.tokens[0], model.tokenizer.eos_id)))
    scored = model.conditional_nll(requests)
    em = np.array([exact_match(c, r["completion"]) for c, r in zip(completions, records)], dtype=float)
    sub = np.array([substring_match(c, r["completion"]) for c, r in zip(completions, records)], dtype=float)
    logp = -scored.nll
    rows = []
    for name, est, bound, hib in (
        (names.EXACT_MATCH, metrics.accuracy(em), "exact", True),
        (names.SUBSTRING, metrics.accuracy(sub), "exact", True),
        (names.LOGPROB, metrics.mean_estimate(logp), scored.bound, True),
    ):
        rows.append(MetricValue(names.reversal_metric(direction, name), est.value, est.stderr, est.n, bound, hib, {"direction": direction, "file": file}))
    examples = [
        {"direction": direction, "index": i, "prompt": r["prompt"], "target": r["completion"], "completion": c,
         "exact_match": bool(e), "substring": bool(s), "logprob": float(lp)}
        for i, (r, c, e, s, lp) in enumerate(zip(records, completions, em, sub, logp))
    ]
    return rows, examples, {"mc_samples": scored.mc_samples, **scored.settings, "sampler": sampler, "max_new_tokens": max_new, "cut_at_eos": True}


def run_reversal(model: LanguageModel, task: TaskSpec, *, seed: int, limit: int | None) -> TaskOutput:
    st = task.typed_settings
    rows, examples, settings = [], [], {}
    for direction, file in ((names.REVERSAL_SAME, st.same_file), (names.REVERSAL_REVERSE, st.reverse_file)):
        r, e, s = _direction(model, task, direction, file, seed, limit)
        rows += r
        examples += e
        settings.update(s)
    return TaskOutput(rows, examples, settings, dataset=dataset_name(task.dataset), split=None)
