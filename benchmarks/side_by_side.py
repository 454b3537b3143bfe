"""Three benchmarks printed side by side in one run, on the committed zoo (offline, CPU by default):

1. **AR log-likelihood throughput**: dlmbench's AR adapter vs lm-eval's HF backend (``HFLM`` given the same
   model object, tokenizer, batch size, context and prefix token; ``loglikelihood_rolling``) vs a bare
   transformers loop (disjoint windows, each window's first input the previous token, batched by length), on
   the same KJV documents (whole Genesis chapters and single verses, as ``benchmarks/ar_loglik.py``). The three
   summed log-likelihoods must agree; tokens per second are printed side by side. Without lm-eval installed its
   column says so and the bare loop remains.
2. **Diffusion bound overhead vs bare forward passes**: each zoo diffusion model's ``nll`` on the same verses
   (its card's ``mc_samples`` draws per verse), with a forward hook counting the network's calls and rows and
   capturing their inputs; the captured calls are then replayed bare (the network alone, same inputs, same
   batches). ``overhead`` = adapter time / replay time - 1 (what the harness costs beyond the network: masking,
   seeding, estimator arithmetic); ``ms/row`` = adapter time per sequence-forward (NFE-normalised time);
   ``x AR`` = the bound's time over the AR model's exact ``nll`` of the same verses.
3. **Decoding NFE and time vs quality**: ``genppl-kjv`` (as the ``zoo-speed-quality`` suite: scored by
   zoo-ar-kjv, temperature 1, small n) for each zoo sampler at a few step counts, and the AR model's own
   ancestral sampler (KV cache, NFE = length): gen-PPL, unigram entropy (real text of that length beside it),
   NFE, seconds per sample and tokens per second.

    python benchmarks/side_by_side.py [--verses 40] [--chapters 1] [--samples 8] [--length 64] [--steps 8 16 64]
    python benchmarks/side_by_side.py --device cuda        # the same on a GPU (prints the card's name)

Figures measured on the 2-core CPU are in the README's performance section.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("DLMBENCH_NO_PROGRESS", "1")

DIFFUSION = ["zoo-mdlm-kjv", "zoo-sedd-kjv", "zoo-llada-kjv", "zoo-plaid-kjv"]


def kjv_documents(n_verses: int, n_chapters: int) -> list[str]:
    """The documents of ``benchmarks/ar_loglik.py`` (loaded from that file, not copied)."""
    spec = importlib.util.spec_from_file_location("ar_loglik", Path(__file__).with_name("ar_loglik.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.kjv_documents(n_verses, n_chapters)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores visible, torch threads {torch.get_num_threads()})"


# -- 1. AR log-likelihood --------------------------------------------------------------------------------


def bare_rolling(model, token_lists: list[list[int]], prefix: int, max_length: int, batch: int, device: str) -> np.ndarray:
    """-log p(document) by lm-eval's rolling windows, written plainly: with ``seq = [prefix] + x``, the window
    that predicts ``x[s:e]`` (``s`` a multiple of ``L``, ``e = min(s + L, len(x))``) feeds ``seq[max(0, e - L):e]``
    (a short last window keeps a full ``L`` of context) and scores its last ``e - s`` positions; windows of
    equal shape are batched."""
    import torch

    windows: list[tuple[int, list[int], list[int]]] = []  # (document, input ids, scored targets)
    for d, toks in enumerate(token_lists):
        seq = [prefix, *toks]
        for s in range(0, len(toks), max_length):
            e = min(s + max_length, len(toks))
            windows.append((d, seq[max(0, e - max_length) : e], toks[s:e]))
    out = np.zeros(len(token_lists))
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (_d, inp, tgt) in enumerate(windows):
        groups.setdefault((len(inp), len(tgt)), []).append(i)
    with torch.inference_mode():
        for (_n, k), idx in sorted(groups.items()):
            for s in range(0, len(idx), batch):
                chunk = idx[s : s + batch]
                inp = torch.tensor([windows[i][1] for i in chunk], device=device)
                tgt = torch.tensor([windows[i][2] for i in chunk], device=device)
                logp = torch.log_softmax(model(inp).logits[:, -k:].float(), dim=-1)
                nll = -logp.gather(-1, tgt[..., None])[..., 0].sum(-1).double().cpu().numpy()
                for i, v in zip(chunk, nll):
                    out[windows[i][0]] += v
    return out


def ar_section(args, docs: list[str]) -> dict[str, Any]:
    from dlmbench.families.ar.adapter import load_ar
    from dlmbench.registry import default_registry

    spec = default_registry().model(args.ar_model)
    ours = load_ar(spec, device=args.device, batch_size=args.batch_size)
    ours.stride = ours.max_length  # lm-eval's rolling windows are disjoint with full context
    toks = [ours.tokenizer.encode(d) for d in docs]
    n_tokens = sum(len(t) for t in toks)
    ours.nll(toks[-4:])  # warm-up
    sync(args.device)
    t0 = time.perf_counter()
    res = ours.nll(toks)
    sync(args.device)
    t_ours = time.perf_counter() - t0
    rows = [("dlmbench", t_ours, res.nll)]

    bare_rolling(ours.model, toks[-4:], ours.prefix_id, ours.max_length, args.batch_size, args.device)
    sync(args.device)
    t0 = time.perf_counter()
    bare = bare_rolling(ours.model, toks, ours.prefix_id, ours.max_length, args.batch_size, args.device)
    sync(args.device)
    rows.append(("bare transformers loop", time.perf_counter() - t0, bare))

    note = ""
    try:
        from lm_eval.api.instance import Instance
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        note = "lm-eval is not installed (pip install 'lm-eval==0.4.*'): its column is missing"
    else:
        import lm_eval

        theirs = HFLM(pretrained=ours.model, tokenizer=ours.tokenizer.hf, batch_size=args.batch_size,
                      max_length=ours.max_length, device=args.device, prefix_token_id=ours.prefix_id)
        req = [Instance("loglikelihood_rolling", {}, (d,), i) for i, d in enumerate(docs)]
        theirs.loglikelihood_rolling(req[-4:], disable_tqdm=True)
        sync(args.device)
        t0 = time.perf_counter()
        ll = theirs.loglikelihood_rolling(req, disable_tqdm=True)
        sync(args.device)
        rows.append((f"lm-eval {lm_eval.__version__} hf", time.perf_counter() - t0, -np.asarray(ll, dtype=np.float64)))
    print(f"\n## 1. AR log-likelihood: {spec.name}, {len(docs)} KJV documents, {n_tokens} tokens, "
          f"batch {args.batch_size}, windows of {ours.max_length}")
    print("| scorer | seconds | tokens/s | vs dlmbench | max abs nll diff (nats/doc) |")
    print("|---|---|---|---|---|")
    for name, t, nll in rows:
        print(f"| {name} | {t:.2f} | {n_tokens / t:,.0f} | {t / t_ours:.2f}x time | {np.abs(nll - res.nll).max():.1e} |")
    if note:
        print(note)
    return {"toks": toks, "ar_seconds_per_token": t_ours / n_tokens}


# -- 2. diffusion bound overhead -------------------------------------------------------------------------


def network_of(lm):
    """The adapter's network: its largest ``nn.Module`` attribute, and that module's direct children (a container
    such as Plaid's, whose transformer is a child, is resolved by which of them the adapter calls)."""
    import torch

    mods = [v for v in vars(lm).values() if isinstance(v, torch.nn.Module)]
    top = max(mods, key=lambda m: sum(p.numel() for p in m.parameters()))
    return [top, *sorted(top.children(), key=lambda m: -sum(p.numel() for p in m.parameters()))]


def recorder(into: list):
    """A forward pre-hook that keeps each call's inputs."""

    def hook(_module, args, kwargs):
        into.append((args, kwargs))

    return hook


def bound_section(args, docs: list[str], ar_seconds_per_token: float) -> None:
    import torch

    from dlmbench.plugins import load_model
    from dlmbench.registry import default_registry

    reg = default_registry()
    print(f"\n## 2. Diffusion bound vs bare forward passes: nll of {args.bound_docs} KJV verses per model")
    print("| model | draws/seq | network calls | rows (NFE) | adapter s | bare forwards s | overhead | ms/row | x AR exact |")
    print("|---|---|---|---|---|---|---|---|---|")
    verses = [d for d in docs if len(d) < 400][: args.bound_docs]
    for name in args.diffusion:
        lm = load_model(reg.model(name), device=args.device)
        toks = [lm.tokenizer.encode(d) for d in verses]
        seeds = list(range(len(toks)))
        lm.nll(toks[:2], seeds[:2])  # warm-up
        calls: dict[int, list[tuple[Any, Any]]] = {id(m): [] for m in network_of(lm)}
        hooks = [m.register_forward_pre_hook(recorder(calls[id(m)]), with_kwargs=True) for m in network_of(lm)]
        sync(args.device)
        t0 = time.perf_counter()
        res = lm.nll(toks, seeds)
        sync(args.device)
        t_adapter = time.perf_counter() - t0
        for h in hooks:
            h.remove()
        net = next(m for m in network_of(lm) if calls[id(m)])
        captured = calls[id(net)]
        rows = sum(int(next(t for t in (*a, *kw.values()) if torch.is_tensor(t)).shape[0]) for a, kw in captured)
        with torch.inference_mode():
            sync(args.device)
            t0 = time.perf_counter()
            for a, kw in captured:
                net(*a, **kw)
            sync(args.device)
        t_bare = time.perf_counter() - t0
        n_tok = int(sum(len(t) for t in toks))
        ar_time = ar_seconds_per_token * n_tok
        draws = int(res.mc_samples)
        print(f"| {name} | {draws} | {len(captured)} | {rows} | {t_adapter:.2f} | {t_bare:.2f} | "
              f"{100 * (t_adapter / t_bare - 1):+.0f}% | {1000 * t_adapter / rows:.2f} | "
              + (f"{t_adapter / ar_time:.0f}x |" if ar_time == ar_time else "- |"))


# -- 3. decoding NFE / time vs quality -------------------------------------------------------------------


def decoding_section(args) -> None:
    from dlmbench import api

    print(f"\n## 3. Decoding: genppl-kjv, {args.samples} samples of {args.length} tokens, temperature 1, "
          f"scored by zoo-ar-kjv (gen-PPL ± stderr; entropy vs real text)")
    print("| model | steps | NFE | gen-PPL | entropy (real) | s/sample | tokens/s |")
    print("|---|---|---|---|---|---|---|")
    base = {"eval_model": "zoo-ar-kjv", "n_samples": args.samples, "length": args.length,
            "sampler": {"temperature": 1.0}}
    jobs = [(m, s) for m in args.samplers for s in args.steps] + [("zoo-ar-kjv", None)]
    with tempfile.TemporaryDirectory() as out:
        for model, steps in jobs:
            settings = dict(base, **({"steps": steps} if steps else {}))
            rec = api.evaluate(model, "genppl-kjv", settings=settings, out=out, device=args.device, force=True)
            m = {r.metric: r for r in rec.rows}
            flag = " low" if m.get("low_entropy_flag") and m["low_entropy_flag"].value else ""
            print(f"| {model} | {steps or '-'} | {m['nfe'].value:.0f} | {m['gen_ppl'].value:.0f} ± {m['gen_ppl'].stderr:.0f} | "
                  f"{m['entropy'].value:.2f} ({m['reference_entropy'].value:.2f}){flag} | "
                  f"{m['seconds_per_sample'].value:.3f} | {m['tokens_per_second'].value:,.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ar-model", default="zoo-ar-kjv")
    ap.add_argument("--verses", type=int, default=100, help="single KJV verses (AR section)")
    ap.add_argument("--chapters", type=int, default=2, help="whole Genesis chapters (AR section)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--bound-docs", type=int, default=24, help="verses scored by each diffusion bound")
    ap.add_argument("--diffusion", nargs="+", default=DIFFUSION)
    ap.add_argument("--samplers", nargs="+", default=["zoo-mdlm-kjv", "zoo-sedd-kjv", "zoo-llada-kjv"])
    ap.add_argument("--steps", nargs="+", type=int, default=[8, 16, 64])
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--skip", nargs="*", default=[], choices=["ar", "bound", "decoding"])
    args = ap.parse_args()

    import torch

    print(f"# dlmbench side-by-side benchmarks on {device_name(args.device)}, torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d')}")
    docs = kjv_documents(args.verses, args.chapters)
    t0 = time.perf_counter()
    ar = ar_section(args, docs) if "ar" not in args.skip else {"ar_seconds_per_token": float("nan")}
    if "bound" not in args.skip:
        bound_section(args, docs, ar["ar_seconds_per_token"])
    if "decoding" not in args.skip:
        decoding_section(args)
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
