"""Monte Carlo error of every diffusion bound at equal forward passes: i.i.d. vs stratified draws, on the zoo.

For each zoo diffusion model (``zoo-mdlm-kjv``, ``zoo-sedd-kjv``, ``zoo-llada-kjv``, ``zoo-plaid-kjv``) and the
first ``--verses`` held-out verses of the ``kjv`` task, each verse's bound is estimated ``--replicates`` times
with independent request seeds, ``K = --draws`` draws each (K forward passes; Plaid: K rows of two passes,
self-conditioning), under each ``time_sampling`` scheme. Printed per family and scheme:

    true se       sqrt(sum over verses of the replicate variance of the verse's estimate): the Monte Carlo error
                  of the summed NLL of the verses (nats), measured
    se*sqrt(K)    the error per forward pass (lower is better)
    reported/true sqrt(mean reported stderr^2 / replicate variance), summed over verses (1 = right; > 1 conservative)
    passes ratio  variance under iid / variance under the scheme = how many times fewer forward passes the scheme
                  needs for the same standard error (Plaid: also relative to ``systematic``, the reference's design)

Schemes: ``iid`` (independent draws; MDLM/SEDD: ``t ~ U[eps, 1]``), ``antithetic``/``stratified`` (one uniform
per stratum ``[k/K, (k+1)/K)``), ``systematic`` (one shared offset: LLaDA's and Plaid's reference shape), and for
MDLM ``integrated`` (``t_estimator: integrated``: ``t`` integrated out, stratified counts of masked tokens).

    python benchmarks/bound_variance.py [--verses 6] [--replicates 30] [--draws 32] [--families mdlm sedd llada plaid]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

SCHEMES = {  # label -> settings; the first of each family is the i.i.d. baseline
    "mdlm": {"iid": {"time_sampling": "iid", "t_estimator": "sampled"},
             "antithetic": {"time_sampling": "antithetic", "t_estimator": "sampled"},
             "integrated": {"time_sampling": "antithetic", "t_estimator": "integrated"}},
    "sedd": {s: {"time_sampling": s} for s in ("iid", "antithetic")},
    "llada": {s: {"time_sampling": s} for s in ("iid", "systematic", "stratified")},
    "plaid": {s: {"time_sampling": s} for s in ("iid", "systematic", "stratified")},
}


def rows_of(model, task, n_verses: int):
    from dlmbench.data.pipeline import build_requests

    packed = build_requests(task, model.tokenizer, max_length=model.max_length, limit=n_verses)
    return [(list(p.context), list(p.continuation)) for p in packed[:n_verses]]


def measure(model, rows, scheme: dict, draws: int, reps: int) -> dict[str, float]:
    from dlmbench.seeding import request_seed

    model.settings = model.settings.model_copy(update={"mc_samples": draws, "batch_size": 512, **scheme})
    var_true, var_rep, settings = 0.0, 0.0, {}
    t0 = time.perf_counter()
    for v, (ctx, cont) in enumerate(rows):
        x0 = torch.tensor([ctx + cont] * reps, dtype=torch.long, device=model.device)
        mask = torch.zeros_like(x0, dtype=torch.bool)
        mask[:, len(ctx):] = True
        seeds = [request_seed(2026, "bound-variance", v, r) for r in range(reps)]
        mean, se, settings = model._bound_rows(x0, mask, seeds)
        var_true += float(np.var(mean, ddof=1))
        var_rep += float(np.mean(np.asarray(se) ** 2))
    return {"se": math.sqrt(var_true), "reported": math.sqrt(var_rep / var_true), "var": var_true,
            "seconds": time.perf_counter() - t0, "stderr": str(settings.get("stderr", "")),
            "scheme_used": str(settings.get("time_sampling", ""))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--verses", type=int, default=6)
    ap.add_argument("--replicates", type=int, default=30)
    ap.add_argument("--draws", type=int, default=32)
    ap.add_argument("--families", nargs="+", default=list(SCHEMES))
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

    from dlmbench import plugins
    from dlmbench.registry import default_registry

    reg = default_registry()
    task = reg.task("kjv")
    print(f"kjv held-out verses 1-{args.verses}, K = {args.draws} draws per estimate, {args.replicates} replicates "
          f"per verse and scheme, CPU float32")
    print(f"{'model':<15}{'scheme':<12}{'tokens':>7}{'true se':>9}{'se*sqrt(K)':>11}{'reported/true':>14}"
          f"{'passes ratio':>13}  stderr formula")
    for fam in args.families:
        model = plugins.load_model(reg.model(f"zoo-{fam}-kjv"))
        rows = rows_of(model, task, args.verses)
        n_tok = sum(len(c) for _, c in rows)
        res = {s: measure(model, rows, kw, args.draws, args.replicates) for s, kw in SCHEMES[fam].items()}
        for s, r in res.items():
            ratio = res["iid"]["var"] / r["var"]
            extra = f" ({res['systematic']['var'] / r['var']:.1f}x vs systematic)" if fam == "plaid" and s == "stratified" else ""
            print(f"zoo-{fam}-kjv".ljust(15) + f"{s:<12}{n_tok:>7}{r['se']:>9.3f}{r['se'] * math.sqrt(args.draws):>11.2f}"
                  f"{r['reported']:>14.2f}{ratio:>12.1f}x  {r['stderr']}{extra}  [{r['seconds']:.0f}s]")


if __name__ == "__main__":
    main()
