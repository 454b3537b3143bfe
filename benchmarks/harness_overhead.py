"""Harness overhead of the MDLM likelihood bound: the adapter's ``conditional_nll`` vs the estimator called
directly vs bare forward passes, on a small random DiT in the published MDLM format (CPU by default).

    (a) bare    the backbone's forward passes alone on pre-built noised inputs (same rows, same batch size)
    (a2) model the same plus MDLM's output normalisation (mask column -inf, log-softmax): the model's
                forward as MDLM's ``_subs_parameterization`` defines it, before any harness work
    (b) direct  :func:`dlmbench.diffusion.mdlm_nelbo_mc` on the SUBS head, all requests at once
    (c) adapter ``MDLMModel.conditional_nll`` (grouping by length, per-request seeds, chunking, NLLResult)

Prints seconds (best of ``--repeats``) and the overheads (c)/(a) and (c)/(b). The issue's target is <= 5%
over bare forward passes. The adapter applies the output layer only at masked positions (the bound reads
nothing else), so it can be faster than (a), which forms logits at every position. Measured 2026-11-26 on
the 2-core CPU (quiet): -3.3% at the default 7.8M-parameter size, -16% at 78M (H 512, 8 blocks, V 50258);
on an H200, -7.3% at mdlm-owt size (docs/gpu-2026-11-26/).

    python benchmarks/harness_overhead.py [--hidden 256 --blocks 4 --vocab 8193 --length 256 --requests 16 --mc 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from dlmbench.nets.dit_checkpoints import load_mdlm_backbone
from dlmbench.nets.dit import mdlm_subs_log_probs
from dlmbench.nets.dit_writer import tiny_config, write_mdlm_hub_folder
from dlmbench.interface import ScoreRequest
from dlmbench.families.mdlm.adapter import MDLMModel
from dlmbench.families.mdlm.settings import MDLMSettings
from dlmbench.diffusion.masked import mdlm_nelbo_mc
from dlmbench.diffusion.schedules import LogLinearNoise
from dlmbench.seeding import request_seed
from dlmbench.specs import CheckpointRef, ModelSpec


class _NoTokenizer:
    name = "none"
    vocab_size = 0
    bos_id = eos_id = mask_id = None

    def encode(self, text):  # pragma: no cover - the bound never tokenizes
        raise NotImplementedError

    def decode(self, ids):  # pragma: no cover
        raise NotImplementedError


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=8193, help="rows of the output layer, mask included")
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--mc", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16, help="rows (request x draw) per forward pass")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    dev = torch.device(args.device)

    config = tiny_config(vocab_size=args.vocab, hidden_size=args.hidden, n_blocks=args.blocks, n_heads=args.heads,
                         cond_dim=64, length=args.length, time_conditioning=False)
    with tempfile.TemporaryDirectory() as tmp:
        write_mdlm_hub_folder(Path(tmp), config)
        backbone, config, prov = load_mdlm_backbone(Path(tmp), dev)
    spec = ModelSpec(name="bench-mdlm", family="mdlm", checkpoint=CheckpointRef("local", "bench"), max_length=args.length)
    settings = MDLMSettings(mc_samples=args.mc, batch_size=args.batch_size)
    model = MDLMModel(backbone, config, prov, _NoTokenizer(), spec=spec, device=dev, settings=settings)
    mask_id, sched = config.mask_index, LogLinearNoise(1e-3)

    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, mask_id, (args.requests, args.length), generator=g)
    requests = [ScoreRequest((), tuple(row.tolist()), seed=i) for i, row in enumerate(x0)]
    x0 = x0.to(dev)
    score = torch.ones_like(x0, dtype=torch.bool)
    seeds = [request_seed(r.seed, "piece", 0) for r in requests]

    rows = args.requests * args.mc
    x_t = torch.where(torch.rand(rows, args.length, generator=g).to(dev) < 0.5, mask_id, x0.repeat_interleave(args.mc, 0))
    sigma = torch.rand(rows, generator=g).to(dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def bare():
        with torch.inference_mode():
            for s in range(0, rows, args.batch_size):
                backbone(x_t[s : s + args.batch_size], sigma[s : s + args.batch_size])
        sync()

    def model_forward():
        with torch.inference_mode():
            for s in range(0, rows, args.batch_size):
                logits = backbone(x_t[s : s + args.batch_size], sigma[s : s + args.batch_size])
                logits[..., mask_id] = float("-inf")
                torch.log_softmax(logits, dim=-1)
        sync()

    def direct():
        den = lambda x, s: mdlm_subs_log_probs(backbone(x, s.float()), x, mask_id)  # noqa: E731
        with torch.inference_mode():
            mdlm_nelbo_mc(den, x0, score, seeds, mask_id=mask_id, schedule=sched, num_samples=args.mc,
                          time_sampling="antithetic", sampling_eps=1e-3, batch_size=args.batch_size)
        sync()

    def adapter():
        model.conditional_nll(requests)
        sync()

    adapter()  # warm-up
    t_bare, t_model, t_direct, t_adapter = (best_of(f, args.repeats) for f in (bare, model_forward, direct, adapter))
    n_params = sum(p.numel() for p in backbone.parameters())
    print(f"DiT {n_params / 1e6:.1f}M params (H {args.hidden}, {args.blocks} blocks, V {args.vocab}), {args.device}; "
          f"{args.requests} requests x {args.length} tokens x {args.mc} MC draws = {rows} rows, batch {args.batch_size}")
    print(f"{'(a) bare forward passes':<32}{t_bare:>9.3f} s")
    print(f"{'(a2) + output log-softmax':<32}{t_model:>9.3f} s")
    print(f"{'(b) estimator called directly':<32}{t_direct:>9.3f} s")
    print(f"{'(c) adapter conditional_nll':<32}{t_adapter:>9.3f} s")
    print(f"overhead (c)/(a) - 1 = {100 * (t_adapter / t_bare - 1):+.1f}%   (c)/(a2) - 1 = {100 * (t_adapter / t_model - 1):+.1f}%   "
          f"(c)/(b) - 1 = {100 * (t_adapter / t_direct - 1):+.1f}%")


if __name__ == "__main__":
    main()
