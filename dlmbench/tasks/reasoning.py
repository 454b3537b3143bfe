"""Reasoning and planning tasks (Ye et al. 2024, "Beyond Autoregression", https://arxiv.org/abs/2410.14157).

prompt → generation with the model's own sampler → two verifiers, both reported:
``faithful_acc`` (the paper's ``compute_acc`` logic, with its known weaknesses) and ``strict_acc`` (a
real solution check). The planning task also reports accuracy per planning distance.

Data: ``dataset: {source: generated, path: countdown|sudoku|sat|planning, name: VARIANT, split: test}``
builds the split with the seeded generators of :mod:`dlmbench.reasoning` (``data_seed``; the train split
uses ``data_seed + 1`` and excludes test inputs) and caches it as JSONL, so every run scores the same
examples; ``source: local``/``url`` reads a fixed JSONL file instead.

Prompt layout: with the 31-token character tokenizer of the reference, ``src + [SEP]`` and the target
``tgt + [EOS]`` (``layout.py``); with any other tokenizer, ``src`` followed by ``prompt_suffix``
(default ``"="``). Decoding is chosen by what the model can do (:meth:`~dlmbench.interface.LanguageModel.supports`),
never by its family name: a ``left_to_right`` model (AR) decodes greedily (temperature 0) by default; other
models use the ``sampler`` setting, and by default (``mdm_decoding: reference``) a model with ``topk_decoding``
(MDLM) uses the reference's easy-first top-k decoding, 20 steps, ``stochastic0.5-linear``. Predictions of a
``left_to_right`` model are cut at the first EOS (HF ``generate`` stops there); canvas predictions keep every
non-special token, as the reference's ``compute_acc`` does.

Cost, beside the accuracies: ``nfe_per_example`` (mean network calls per example, their sum as ``nfe_total``: with
Fast-dLLM's threshold decoding they vary per example), ``seconds_per_sample`` (sampling wall time per example) and
``tokens_per_second`` (``max_new_tokens`` per example over that time).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from dlmbench import metrics
from dlmbench.interface import LanguageModel, until_eos
from dlmbench.errors import BadSpec, UnknownName
from dlmbench.seeding import request_seed
from dlmbench.specs import TaskSpec
from dlmbench.metrics import names
from dlmbench.tasks.base import MetricValue, TaskOutput
from dlmbench.data.sources import dataset_name

PROBLEMS = ("countdown", "sudoku", "sat", "planning")
# the reference's MDM decoding (tuner/mdm/trainer.py generate_samples; scripts: --diffusion_steps 20 --topk_decoding)
REFERENCE_MDM_STEPS = 20
REFERENCE_TOPK_STRATEGY = "stochastic0.5-linear"


def _variant_kwargs(problem: str, variant: str | None) -> tuple[str, dict[str, Any]]:
    """Length-table key and generator keyword arguments of a variant name (``cd3``, ``sat9``, ...)."""
    v = (variant or "").lower()
    if problem == "countdown":
        k = int(v[2:]) if v.startswith("cd") and v[2:].isdigit() else 4
        return f"cd{k}", {"k": k}
    if problem == "sat":
        n = int(v[3:]) if v.startswith("sat") and v[3:].isdigit() else 9
        return f"sat{n}", {"variables": n}
    if problem == "sudoku":
        return "sudoku", {}
    return "planning", {}


def cache_root() -> Path:
    return Path(os.environ.get("DLMBENCH_CACHE", Path.home() / ".cache" / "dlmbench")) / "reasoning"


def generated_split(problem: str, variant: str | None, split: str, n: int, data_seed: int) -> list[dict]:
    """The fixed split (cached JSONL): test from ``data_seed``, train from ``data_seed + 1``, disjoint."""
    from dlmbench.reasoning import MODULES, SOURCE_FIELD
    from dlmbench.reasoning.layout import read_jsonl, write_jsonl

    if problem not in MODULES:
        raise UnknownName("reasoning problem", problem, MODULES)
    if split not in ("test", "train"):
        raise BadSpec(f"reasoning split must be 'test' or 'train', not {split!r}")
    key, kwargs = _variant_kwargs(problem, variant)
    path = cache_root() / f"{key}_{split}_n{n}_seed{data_seed}.jsonl"
    if path.is_file():
        return read_jsonl(path)
    mod = MODULES[problem]
    if split == "test":
        rows = mod.generate(n, data_seed, **kwargs)
    elif problem == "planning":
        from dlmbench.reasoning.planning import reference_splits

        rows = reference_splits(seed=data_seed, num_test=1000, num_train=n)[1]
    else:
        test_inputs = {r[SOURCE_FIELD[problem]] for r in mod.generate(1000, data_seed, **kwargs)}
        rows = mod.generate(n, data_seed + 1, **kwargs, **({"exclude_inputs": frozenset(test_inputs)} if problem == "countdown" else {}))
        rows = [r for r in rows if r[SOURCE_FIELD[problem]] not in test_inputs]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write_jsonl(tmp, rows)
    os.replace(tmp, path)
    return rows


def run_reasoning(model: LanguageModel, task: TaskSpec, *, seed: int, limit: int | None) -> TaskOutput:
    from dlmbench.reasoning import LENGTHS, MODULES, SOURCE_FIELD, TARGET_FIELD
    from dlmbench.reasoning.char_tokenizer import CharTokenizer
    from dlmbench.reasoning.layout import prediction_text

    ds = task.dataset
    st = task.typed_settings
    problem = st.problem or ds.path
    if problem not in PROBLEMS:
        raise UnknownName("reasoning problem", problem, PROBLEMS)
    n_test = limit or st.n_test
    if ds.source == "generated":
        examples_in = generated_split(problem, ds.name, ds.split or "test", st.n_split, st.data_seed)[:n_test]
    else:
        from dlmbench.data.sources import load_records

        examples_in = load_records(ds, limit=n_test)
    key, _ = _variant_kwargs(problem, ds.name)
    lengths = LENGTHS[key]
    max_new = st.max_new_tokens or lengths.max_new_tokens
    left_to_right = model.supports("left_to_right")
    sampler = {"temperature": 0.0, **st.sampler} if left_to_right else dict(st.sampler)
    steps = st.steps
    decoding = st.mdm_decoding
    if not sampler and decoding == "reference" and model.supports("topk_decoding"):
        sampler = {"sampler": "topk", "topk_strategy": REFERENCE_TOPK_STRATEGY}
        steps = REFERENCE_MDM_STEPS if steps is None else steps
    tok = model.tokenizer
    char = isinstance(tok, CharTokenizer) or getattr(tok, "name", "") == CharTokenizer.name
    mod = MODULES[problem]
    faithful, strict, rows_out = [], [], []
    nfe = 0
    gen_seconds, gen_tokens = 0.0, 0
    for i, ex in enumerate(examples_in):
        src = ex[SOURCE_FIELD[problem]]
        if char:
            prompt = tok.encode(src) + [tok.sep_id]
        else:
            prompt = tok.encode(src + st.prompt_suffix)
        t0 = time.perf_counter()
        out = model.sample(1, max_new, prefix=prompt, steps=steps, seed=request_seed(seed, task.name, i), **sampler)
        gen_seconds += time.perf_counter() - t0
        gen_tokens += max_new
        nfe += out.nfe
        gen = list(out.tokens[0])
        if char:
            pred = prediction_text(tok, gen, cut_at_eos=left_to_right)
        else:
            if left_to_right:
                gen = until_eos(gen, tok.eos_id)
            pred = tok.decode(gen).strip().split("\n")[0]
        f_ok, s_ok = bool(mod.verify_faithful(pred, ex)), bool(mod.verify_strict(pred, ex))
        faithful.append(f_ok)
        strict.append(s_ok)
        rec = {"index": i, "source": src, "target": ex[TARGET_FIELD[problem]], "prediction": pred, "faithful": f_ok, "strict": s_ok,
               "nfe": int(out.nfe)}
        if problem == "planning":
            from dlmbench.reasoning.planning import planning_distance

            rec["planning_distance"] = planning_distance(ex)
        rows_out.append(rec)
    if not rows_out:
        raise BadSpec(f"task {task.name}: no examples to evaluate")
    fa, sa = metrics.accuracy(np.array(faithful)), metrics.accuracy(np.array(strict))
    out_rows = [
        MetricValue(names.FAITHFUL_ACC, fa.value, fa.stderr, fa.n, "exact", True, {"verifier": names.VERIFIER_OF[names.FAITHFUL_ACC]}),
        MetricValue(names.STRICT_ACC, sa.value, sa.stderr, sa.n, "exact", True, {"verifier": names.VERIFIER_OF[names.STRICT_ACC]}),
        # one example per sample call: its batched calls are its own network evaluations (Fast-dLLM's threshold makes them vary)
        MetricValue(names.NFE_PER_EXAMPLE, nfe / len(rows_out), None, len(rows_out), "exact", False, {"nfe_total": int(nfe)}),
        MetricValue(names.SECONDS_PER_SAMPLE, gen_seconds / len(rows_out), None, len(rows_out), "exact", False, {}),
        MetricValue(names.TOKENS_PER_SECOND, gen_tokens / max(gen_seconds, 1e-9), None, len(rows_out), "exact", True,
                    {"tokens": int(gen_tokens)}),
    ]
    if problem == "planning":
        for pd in sorted({r["planning_distance"] for r in rows_out}):
            sel = np.array([r["faithful"] for r in rows_out if r["planning_distance"] == pd])
            e = metrics.accuracy(sel)
            out_rows.append(MetricValue(f"{names.FAITHFUL_ACC}.pd{pd}", e.value, e.stderr, e.n, "exact", True, {"planning_distance": pd}))
    settings = {"problem": problem, "variant": key, "max_new_tokens": max_new, "sampler": sampler, "steps": steps,
                "data_seed": st.data_seed, "prompt_layout": "char[SEP]" if char else "text+suffix"}
    return TaskOutput(out_rows, rows_out, settings, dataset=dataset_name(task.dataset), split=ds.split)
