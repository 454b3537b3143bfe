"""Peak memory and tokens/s of LLaDA's conditional-likelihood estimator vs ``mc_num`` and MC batch size.

Builds a LLaDA backbone with random weights in the published architecture (``--preset 8b`` is
GSAI-ML/LLaDA-8B; ``small`` / ``tiny`` shrink width and depth but keep the 126,464-row vocabulary, which
dominates the logits memory) on the chosen device and dtype, and times ``LLaDAModel.conditional_nll`` on
requests of ``--prompt`` + ``--answer`` tokens for every (mc_num, batch) pair. It prints one line per pair:

    mc_num  batch  seconds  scored tok/s  forward tok/s  peak MiB (GPU: max_memory_allocated; CPU: RSS growth)

and, before measuring, the on-paper memory of the 8B model (weights, and the logits of one MC batch, which
the bound forms only at the masked answer positions: float32 logits normalised in place with
``--score-precision float32``, the adapter's default, or a float64 copy and its log-softmax with ``float64``).

    python benchmarks/llada_memory.py                                   # CPU, tiny preset
    python benchmarks/llada_memory.py --preset 8b --device cuda --dtype bfloat16 --mc 16,64,128 --batch 8,16,32
    python benchmarks/llada_memory.py --preset 8b --device cuda --score-precision float64   # the old float64 path

Random weights: the numbers are speed and memory only, not likelihoods.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import time

import torch

VOCAB = 126464


def on_paper(preset_params: int, batch: int, length: int, answer: int) -> str:
    weights = preset_params * 2 / 2**30
    rows = batch * answer  # the bound forms logits only at masked answer positions (at most all of them)
    f32 = (2 + 4 + 4) * rows * VOCAB / 2**30  # bf16 logits, their float32 copy, logsumexp's exp temporary
    f64 = (4 + 8 + 8) * rows * VOCAB / 2**30  # float32 logits, float64 copy, float64 log-softmax
    return (
        f"on paper (8B, bf16): weights {weights:.1f} GiB; an MC batch of {batch} x {length} tokens forms logits at no more "
        f"than its {rows} masked answer positions: at most {f32:.2f} GiB with score_precision float32 (in place), "
        f"{f64:.2f} GiB with float64, plus the activations of one block"
    )


def build(preset: str, device: str, dtype: torch.dtype):
    from dlmbench.families.llada.backbone import LLaDABackbone, llada_8b_config

    cfg = llada_8b_config()
    if preset == "small":
        cfg = dataclasses.replace(cfg, d_model=512, n_layers=4, n_heads=8, n_kv_heads=8, mlp_hidden_size=1376)
    elif preset == "tiny":
        cfg = dataclasses.replace(cfg, d_model=64, n_layers=2, n_heads=4, n_kv_heads=4, mlp_hidden_size=172)
    with torch.device("meta"):
        model = LLaDABackbone(cfg, dtype=dtype)
    model = model.to_empty(device=device)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    return model.eval(), cfg


def peak_mib(device: str, rss0: float) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return max(0.0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=["tiny", "small", "8b"], default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on CPU")
    ap.add_argument("--mc", default="8,32", help="comma-separated mc_num values")
    ap.add_argument("--batch", default="4,8", help="comma-separated MC batch sizes")
    ap.add_argument("--prompt", type=int, default=96)
    ap.add_argument("--answer", type=int, default=32)
    ap.add_argument("--requests", type=int, default=2)
    ap.add_argument("--score-precision", choices=["float32", "float64"], default="float32")
    args = ap.parse_args()
    os.environ.setdefault("DLMBENCH_NO_PROGRESS", "1")

    from dlmbench.interface import ScoreRequest
    from dlmbench.families.llada.adapter import LLaDAModel
    from dlmbench.families.llada.settings import LLaDASettings
    from dlmbench.specs import CheckpointRef, ModelSpec

    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if args.device.startswith("cuda") else torch.float32)
    length = args.prompt + args.answer
    print(on_paper(8_015_000_000, max(int(b) for b in args.batch.split(",")), length, args.answer))
    t0 = time.perf_counter()
    backbone, cfg = build(args.preset, args.device, dtype)
    n_params = sum(p.numel() for p in backbone.parameters())
    print(f"preset {args.preset}: {n_params / 1e6:.1f}M parameters, {dtype}, {args.device}, built in {time.perf_counter() - t0:.1f}s; score_precision {args.score_precision}")
    spec = ModelSpec(name=f"llada-{args.preset}-random", family="llada", checkpoint=CheckpointRef("local", "."), max_length=length)
    g = torch.Generator().manual_seed(0)
    reqs = [
        ScoreRequest(tuple(torch.randint(0, 126000, (args.prompt,), generator=g).tolist()),
                     tuple(torch.randint(0, 126000, (args.answer,), generator=g).tolist()))
        for _ in range(args.requests)
    ]
    # warm-up (kernel selection, allocator) so the first measured pair is not charged for it
    LLaDAModel(backbone, None, spec=spec, device=torch.device(args.device),
               settings=LLaDASettings(mc_samples=2, batch_size=2, score_precision=args.score_precision)).conditional_nll(reqs[:1])
    print(f"{'mc_num':>6} {'batch':>5} {'seconds':>8} {'scored tok/s':>12} {'forward tok/s':>13} {'peak MiB':>9}")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for mc in (int(m) for m in args.mc.split(",")):
        for batch in (int(b) for b in args.batch.split(",")):
            model = LLaDAModel(backbone, None, spec=spec, device=torch.device(args.device),
                               settings=LLaDASettings(mc_samples=mc, batch_size=batch, score_precision=args.score_precision))
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            model.conditional_nll(reqs)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            dt = time.perf_counter() - t
            scored = args.requests * args.answer
            forward = args.requests * mc * length
            print(f"{mc:>6} {batch:>5} {dt:>8.2f} {scored / dt:>12.1f} {forward / dt:>13.0f} {peak_mib(args.device, rss0):>9.0f}")


if __name__ == "__main__":
    main()
