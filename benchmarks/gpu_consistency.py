"""GPU vs CPU consistency of every zoo adapter (a device check, not a test: CI has no GPU).

Loads each committed zoo model (AR, MDLM, SEDD, LLaDA-style) on the CPU in float32 and on CUDA in float32
and bfloat16, scores the same requests with the same seeds, and prints the per-token difference from the
CPU figure next to the Monte Carlo stderr; then draws a few samples on CUDA to check each sampler runs
there. Same seeds give the same masks and times on every device (draws are made on the CPU), so float32
rows should agree to rounding and bfloat16 rows to well inside one stderr.

    python benchmarks/gpu_consistency.py [--models zoo-ar-kjv,zoo-mdlm-kjv,zoo-sedd-kjv,zoo-llada-kjv]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np

TEXTS = [
    "In the beginning God created the heaven and the earth.",
    "And the earth was without form, and void; and darkness was upon the face of the deep.",
    "And God said, Let there be light: and there was light.",
    "The LORD is my shepherd; I shall not want.",
    "He maketh me to lie down in green pastures: he leadeth me beside the still waters.",
    "For God so loved the world, that he gave his only begotten Son.",
    "Blessed are the meek: for they shall inherit the earth.",
    "Jesus wept.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="zoo-ar-kjv,zoo-mdlm-kjv,zoo-sedd-kjv,zoo-llada-kjv")
    ap.add_argument("--runs", default="cpu:float32,cuda:float32,cuda:bfloat16", help="device:dtype pairs; the first is the reference")
    args = ap.parse_args()
    runs = [tuple(r.split(":")) for r in args.runs.split(",")]
    os.environ.setdefault("DLMBENCH_NO_PROGRESS", "1")
    from dlmbench.families import load_model
    from dlmbench.interface import ScoreRequest
    from dlmbench.registry import Registry

    reg = Registry.default()
    for name in args.models.split(","):
        spec = reg.models[name]
        ref = None
        for device, dtype in runs:
            model = load_model(dataclasses.replace(spec, dtype=dtype), device=device)
            toks = [model.tokenizer.encode(t) for t in TEXTS]
            reqs = [ScoreRequest(tuple(t[:3]), tuple(t[3:]), seed=i) for i, t in enumerate(toks)]
            n_tok = sum(len(r.continuation) for r in reqs)
            t0 = time.perf_counter()
            res = model.conditional_nll(reqs)
            dt = time.perf_counter() - t0
            per_tok = float(np.sum(res.nll)) / n_tok
            se = float(np.sqrt(np.sum(np.square(res.stderr)))) / n_tok
            if ref is None:
                ref = res.nll
                print(f"{name:<16} {device:<5} {dtype:<9} nll/token {per_tok:.5f} (bound {res.bound}, stderr {se:.4f})  {dt:.2f}s")
            else:
                print(f"{name:<16} {device:<5} {dtype:<9} nll/token {per_tok:.5f}  max |diff| vs first {float(np.max(np.abs(res.nll - ref))):.2e} nats/request  {dt:.2f}s")
        out = model.sample(2, 24, steps=None if model.family == "ar" else 16, seed=0)
        print(f"{name:<16} {device:<5} {dtype:<9} sample: nfe {out.nfe}, {out.texts[0][:60]!r}")


if __name__ == "__main__":
    main()
