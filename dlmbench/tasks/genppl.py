"""Generative perplexity with entropy checks (Zheng et al., 2024, https://arxiv.org/abs/2409.02908).

Sample ``n_samples`` sequences of ``length`` tokens with the model's own sampler and settings, score
them with an evaluation model (any AR card; ``gpt2-large`` in the papers, ``smollm2-135m`` offline),
and always report the per-sample unigram entropy beside it, with the entropy of real text of the same
length: a low gen-PPL with low entropy is repetition, not quality (Zheng et al., 2024).

Conventions (recorded in every row):

- ``mdlm`` (default; MDLM/ReMDM/DUO ``compute_generative_perplexity``): decode with the generator's
  tokenizer, retokenize with the evaluator's, split into evaluator-context chunks, the first token of each
  chunk unscored, corpus PPL = ``exp(Σ nll / Σ tokens)`` over all samples (token-weighted).
- ``sedd`` (SEDD ``run_train.py``): the generator's token ids fed to the evaluator directly (same
  tokenizer required), first token unscored, mean over samples of per-sample PPL.
- ``bos`` (HF ``evaluate`` perplexity, ``add_start_token=True``): retokenize, BOS prepended so the first
  token is scored, mean of per-sample PPL.
"""

from __future__ import annotations

import math
import time

import numpy as np

from dlmbench.interface import LanguageModel, ScoreRequest
from dlmbench.errors import BadSpec, DatasetUnavailable
from dlmbench.seeding import request_seed
from dlmbench.specs import TaskSpec
from dlmbench.metrics import names
from dlmbench.tasks.base import MetricValue, TaskOutput
from dlmbench.data.sources import dataset_name

CONVENTIONS = ("mdlm", "sedd", "bos")


def unigram_entropy(ids) -> float:
    """``H = −Σ_v p_v ln p_v`` with ``p_v`` the frequency of token v within one sample (nats)."""
    from dlmbench.metrics.generation import unigram_entropy as _h

    return float(_h(list(ids)))


def score_samples(evaluator: LanguageModel, gen_tokenizer, samples: list[list[int]], convention: str) -> tuple[float, list[float], list[int]]:
    """Gen-PPL of ``samples`` under ``evaluator``; returns (gen_ppl, per-sample nll, per-sample tokens)."""
    if convention not in CONVENTIONS:
        raise BadSpec(f"gen-PPL convention must be one of {', '.join(CONVENTIONS)}, not {convention!r}")
    ctx = evaluator.max_length or 1024
    requests: list[ScoreRequest] = []
    owner: list[int] = []
    for i, ids in enumerate(samples):
        if convention == "sedd":
            if gen_tokenizer.vocab_size != evaluator.tokenizer.vocab_size:
                raise BadSpec("gen-PPL convention 'sedd' scores the generator's ids directly and needs the same tokenizer; use 'mdlm'")
            toks = list(ids)
        else:
            toks = evaluator.tokenizer.encode(gen_tokenizer.decode(ids))
        if convention == "bos":
            requests.append(ScoreRequest((), tuple(toks[:ctx])))
            owner.append(i)
            continue
        for start in range(0, len(toks), ctx):
            chunk = toks[start : start + ctx]
            if len(chunk) >= 2:
                requests.append(ScoreRequest((chunk[0],), tuple(chunk[1:])))
                owner.append(i)
    if not requests:
        raise DatasetUnavailable("gen-PPL: the samples decode to fewer than two evaluator tokens each")
    res = evaluator.conditional_nll(requests)
    nll = np.zeros(len(samples))
    ntok = np.zeros(len(samples), dtype=np.int64)
    for k, i in enumerate(owner):
        nll[i] += res.nll[k]
        ntok[i] += res.n_tokens[k]
    ok = ntok > 0
    if convention == "mdlm":
        value = math.exp(nll[ok].sum() / ntok[ok].sum())
    else:
        value = float(np.mean(np.exp(nll[ok] / ntok[ok])))
    return value, nll.tolist(), ntok.tolist()


def run_genppl(model: LanguageModel, task: TaskSpec, *, seed: int, limit: int | None) -> TaskOutput:
    from dlmbench import metrics
    from dlmbench.data.sources import load_texts
    from dlmbench.plugins import load_model, require
    from dlmbench.tasks.registry import MODEL_CARD_NEEDS, model_card_setting

    st = task.typed_settings
    n = limit or st.n_samples
    length, steps, convention, margin = st.length, st.steps, st.convention, st.entropy_margin
    sampler_settings = dict(st.sampler)

    t0 = time.time()
    out = model.sample(n, length, steps=steps, seed=request_seed(seed, task.name, "samples"), **sampler_settings)
    gen_seconds = time.time() - t0
    samples = [list(s) for s in out.tokens]

    eval_name = st.eval_model
    eval_spec = model_card_setting(st, "eval_model")
    require(eval_spec.family, MODEL_CARD_NEEDS["genppl"]["eval_model"], f"gen-PPL eval_model {eval_name}")
    evaluator = load_model(eval_spec)
    gen_ppl, nll, ntok = score_samples(evaluator, model.tokenizer, samples, convention)

    ent = np.array([unigram_entropy(s) for s in samples])
    ent_est = metrics.mean_estimate(ent)
    # real text of the same length, tokenized by the generator's tokenizer
    texts = load_texts(task.dataset, limit=None)
    stream: list[int] = []
    ref_chunks: list[list[int]] = []
    for t in texts:
        stream += model.tokenizer.encode(t)
        while len(stream) >= length and len(ref_chunks) < max(n, 8):
            ref_chunks.append(stream[:length])
            stream = stream[length:]
        if len(ref_chunks) >= max(n, 8):
            break
    if not ref_chunks:
        raise DatasetUnavailable(f"task {task.name}: the reference corpus has fewer than {length} tokens")
    ref = metrics.mean_estimate(np.array([unigram_entropy(c) for c in ref_chunks]))
    low = ent_est.value < ref.value - margin

    # stderr of a token-weighted gen-PPL: delta method over samples
    ok = np.array(ntok) > 0
    ppl_est = metrics.perplexity(np.array(nll)[ok], np.array(ntok)[ok]) if convention == "mdlm" else metrics.mean_estimate(np.exp(np.array(nll)[ok] / np.array(ntok)[ok]))
    rows = [
        MetricValue(names.GEN_PPL, gen_ppl, ppl_est.stderr, n, "exact", False, {}),
        MetricValue(names.ENTROPY, ent_est.value, ent_est.stderr, n, "exact", True, {}),
        MetricValue(names.REFERENCE_ENTROPY, ref.value, ref.stderr, ref.n, "exact", True, {}),
        MetricValue(names.LOW_ENTROPY_FLAG, float(low), None, n, "exact", False, {}),
        # network evaluations per sample (the papers' NFE), not the batched calls summed over chunks
        MetricValue(names.NFE, float(out.settings.get("nfe_per_sample", out.nfe)), None, n, "exact", False,
                    {"batched_calls": int(out.nfe), **({"nfe_total": int(out.settings["nfe_total"])} if "nfe_total" in out.settings else {})}),
        MetricValue(names.SECONDS_PER_SAMPLE, gen_seconds / max(n, 1), None, n, "exact", False, {}),
        MetricValue(names.TOKENS_PER_SECOND, n * length / max(gen_seconds, 1e-9), None, n, "exact", True,
                    {"tokens": int(n * length)}),
    ]
    examples = [
        {"index": i, "tokens": samples[i], "text": out.texts[i] if i < len(out.texts) else None, "nll": nll[i], "n_tokens": ntok[i], "entropy": float(ent[i])}
        for i in range(n)
    ]
    settings = {
        "eval_model": eval_name,
        "eval_checkpoint": eval_spec.checkpoint.describe(),
        "convention": convention,
        "length": length,
        "n_samples": n,
        "entropy_margin": margin,
        "steps": steps,
        **{f"sampler.{k}": v for k, v in out.settings.items()},
    }
    if task.dataset.skip_missing:  # reference records skipped for lacking the text field
        settings["skipped_missing"] = int(texts.skipped_missing)
    return TaskOutput(rows, examples, settings, dataset=dataset_name(task.dataset), split=task.dataset.split)
