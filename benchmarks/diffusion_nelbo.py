"""Monte Carlo efficiency of the masked-diffusion NELBO: i.i.d. vs antithetic time sampling (part b).

For a fixed sequence, the MDLM estimator with K draws costs K forward passes. We measure the true standard
error of the K-draw mean from R independent replicates (different request seeds) and report

    stderr(K)            true sd of the K-draw mean (nats per sequence)
    stderr * sqrt(K)     the error per forward pass (constant in K for i.i.d. draws; lower is better)
    reported/true        the estimator's own stderr over the true one (> 1 = conservative): the i.i.d. formula
                         for iid, collapsed strata for antithetic (dlmbench.diffusion.montecarlo.mc_stderr)

for two denoisers: a tiny random transformer (its per-token loss barely depends on t, so the time part of
the variance is small) and the exact oracle of a sticky Markov chain (loss depends strongly on how much
context is visible, as in real text), both on CPU.

    python benchmarks/diffusion_nelbo.py [--length 128] [--replicates 200]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from dlmbench.diffusion.masked import mdlm_nelbo_mc
from dlmbench.diffusion.schedules import LogLinearNoise
from dlmbench.seeding import generator


class TinyTransformer(torch.nn.Module):
    """Random bidirectional transformer denoiser, log p(x0 | x_t) with the mask column at -inf (SUBS)."""

    def __init__(self, vocab: int, length: int, d: int = 64, seed: int = 0):
        super().__init__()
        g = generator(seed)
        self.vocab = vocab
        self.emb = torch.nn.Parameter(torch.randn(vocab + 1, d, generator=g) * 0.5)
        self.pos = torch.nn.Parameter(torch.randn(length, d, generator=g) * 0.1)
        layer = torch.nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.0, batch_first=True)
        self.enc = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        with torch.no_grad():
            for p in self.enc.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * (0.3 / math.sqrt(p.shape[-1])))
        self.out = torch.nn.Parameter(torch.randn(d, vocab, generator=g) / math.sqrt(d) * 3)
        self.eval()

    @torch.no_grad()
    def forward(self, x_t: torch.Tensor, sigma: torch.Tensor | None) -> torch.Tensor:
        h = self.enc(self.emb[x_t] + self.pos[: x_t.shape[1]])
        lp = torch.log_softmax(h @ self.out, dim=-1)
        return torch.cat([lp, torch.full((*lp.shape[:2], 1), float("-inf"))], dim=-1)


class MarkovOracle:
    """Exact p(x_i | unmasked) of a stationary sticky Markov chain over V tokens (nearest known neighbours)."""

    def __init__(self, vocab: int, length: int, stay: float = 0.9):
        p = torch.full((vocab, vocab), (1 - stay) / (vocab - 1), dtype=torch.float64)
        p.fill_diagonal_(stay)
        self.v, self.n = vocab, length
        self.powers = torch.stack([torch.linalg.matrix_power(p, d) for d in range(length + 1)])

    def __call__(self, x_t: torch.Tensor, sigma: torch.Tensor | None) -> torch.Tensor:
        b, n = x_t.shape
        idx = torch.arange(n).expand(b, n)
        known = x_t != self.v
        left = torch.cummax(torch.where(known, idx, -1), dim=1).values
        right = n - 1 - torch.cummax(torch.where(known, n - 1 - idx, -1).flip(1), dim=1).values.flip(1)
        xl = x_t.gather(1, left.clamp(min=0)).clamp(max=self.v - 1)
        xr = x_t.gather(1, right.clamp(max=n - 1)).clamp(max=self.v - 1)
        a = torch.where((left >= 0)[..., None], self.powers[(idx - left).clamp(0, n), xl], 1.0 / self.v)
        c = torch.where((right <= n - 1)[..., None], self.powers[(right - idx).clamp(0, n), :, xr], 1.0)
        lp = torch.log(a * c)
        lp = lp - torch.logsumexp(lp, -1, keepdim=True)
        return torch.cat([lp, torch.full((b, n, 1), float("-inf"), dtype=lp.dtype)], dim=-1)

    def sample(self, seed: int) -> torch.Tensor:
        g = generator(seed)
        x = [int(torch.randint(0, self.v, (), generator=g))]
        p = self.powers[1]
        for _ in range(self.n - 1):
            x.append(int(torch.multinomial(p[x[-1]], 1, generator=g)))
        return torch.tensor(x)


def measure(denoiser, x: torch.Tensor, mask_id: int, k: int, reps: int, scheme: str) -> dict[str, float]:
    n = x.shape[0]
    t0 = time.perf_counter()
    est = mdlm_nelbo_mc(
        denoiser, x.repeat(reps, 1), torch.ones(reps, n, dtype=torch.bool), list(range(reps)),
        mask_id=mask_id, schedule=LogLinearNoise(1e-3), num_samples=k, time_sampling=scheme, batch_size=256,
    )
    wall = time.perf_counter() - t0
    true_se = float(np.std(est.mean, ddof=1))
    naive = float(np.sqrt(np.nanmean(est.stderr**2))) if k > 1 else float("nan")
    return {
        "mean": float(est.mean.mean()),
        "se": true_se,
        "se_per_pass": true_se * math.sqrt(k),
        "naive_over_true": naive / true_se,
        "ms_per_pass": 1e3 * wall / (reps * k),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=16)
    ap.add_argument("--replicates", type=int, default=200)
    ap.add_argument("--ks", type=int, nargs="+", default=[4, 16])
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

    cases = {
        "tiny random transformer": (TinyTransformer(args.vocab, args.length), None),
        "Markov-chain oracle": (MarkovOracle(3, args.length), None),
    }
    print(f"sequence length {args.length}, replicates {args.replicates}, sampling_eps 1e-3, log-linear schedule")
    print(f"{'denoiser':<26}{'K':>4} {'scheme':<11}{'mean':>9}{'stderr':>9}{'se*sqrt(K)':>11}{'rep./true':>11}{'ms/pass':>9}")
    for name, (den, _) in cases.items():
        if isinstance(den, MarkovOracle):
            x, mask_id = den.sample(1), 3
        else:
            x, mask_id = torch.randint(0, args.vocab, (args.length,), generator=generator(1)), args.vocab
        for k in args.ks:
            row = {s: measure(den, x, mask_id, k, args.replicates, s) for s in ("iid", "antithetic")}
            for s, r in row.items():
                print(f"{name:<26}{k:>4} {s:<11}{r['mean']:>9.2f}{r['se']:>9.3f}{r['se_per_pass']:>11.3f}"
                      f"{r['naive_over_true']:>11.2f}{r['ms_per_pass']:>9.3f}")
            ratio = row["antithetic"]["se"] ** 2 / row["iid"]["se"] ** 2
            print(f"{'':<26}{'':>4} variance ratio antithetic/iid = {ratio:.2f}  "
                  f"(= {1 / ratio:.1f}x fewer forward passes for the same stderr)")


if __name__ == "__main__":
    main()
