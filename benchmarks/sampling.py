"""NFE and wall time of the masked-diffusion samplers for the same length on a tiny random denoiser (CPU).

    python benchmarks/sampling.py [--length 128] [--batch 8] [--vocab 512] [--steps 64 256 1024]

The denoiser is a fixed random bidirectional mixer (one embedding, mean-pooled context, one projection), so
a call costs about what a small network costs per token; it ignores time (as MDLM's checkpoints do), which is
what makes the cached sampler valid. Prints one line per (sampler, steps): NFE (batched calls), mean NFE
per row, wall seconds, and seconds per call.
"""

from __future__ import annotations

import argparse
import time

import torch

from dlmbench.diffusion.masked_samplers import ddpm, ddpm_cache, first_hitting
from dlmbench.diffusion.sampling import masked_canvas
from dlmbench.seeding import generator


def tiny_denoiser(vocab: int, dim: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(vocab + 1, dim, generator=g) / dim**0.5
    mix = torch.randn(2 * dim, vocab + 1, generator=g) / (2 * dim) ** 0.5

    def den(x_t: torch.Tensor, sigma=None) -> torch.Tensor:
        h = emb[x_t]
        ctx = h.mean(dim=1, keepdim=True).expand_as(h)
        logits = torch.cat([h, ctx], dim=-1) @ mix * 4.0
        return torch.log_softmax(logits, dim=-1)

    return den


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--steps", type=int, nargs="+", default=[64, 256, 1024])
    args = ap.parse_args()
    torch.set_num_threads(1)
    den = tiny_denoiser(args.vocab)
    x = masked_canvas(args.batch, args.length, args.vocab)
    print(f"length {args.length}, batch {args.batch}, vocab {args.vocab}, CPU 1 thread")
    print(f"{'sampler':<14}{'steps':>7}{'NFE':>7}{'NFE/row':>9}{'wall s':>9}{'ms/call':>9}")
    runs = [("first_hitting", None)] + [(name, s) for s in args.steps for name in ("ddpm", "ddpm_cache")]
    for name, steps in runs:
        t0 = time.perf_counter()
        if name == "first_hitting":
            out = first_hitting(den, x, mask_id=args.vocab, generator=generator(0))
        else:
            fn = ddpm if name == "ddpm" else ddpm_cache
            out = fn(den, x, mask_id=args.vocab, steps=steps, generator=generator(0))
        wall = time.perf_counter() - t0
        assert (out.tokens != args.vocab).all()
        print(f"{name:<14}{steps or '-':>7}{out.nfe:>7}{float(out.row_nfe.double().mean()):>9.1f}{wall:>9.2f}{1000 * wall / max(out.nfe, 1):>9.2f}")


if __name__ == "__main__":
    main()
