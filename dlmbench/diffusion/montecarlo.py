"""Per-request Monte Carlo: seeding of each draw, chunked evaluation, mean and standard error.

Seeding contract (docs/architecture.md, "Conventions"): the randomness of draw ``k`` of a request with
seed ``s`` comes only from ``torch.Generator`` seeded with ``request_seed(s, "mc-draw", k)``, so it does
not depend on batch size, on request order or on the other requests in the batch. The one exception is the
coupling of draws *within* a request: under ``antithetic``/``systematic`` time sampling (and the LLaDA
stratified mask counts) draw ``k`` also depends on the number of draws ``K`` (its stratum is ``[k/K, (k+1)/K)``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dlmbench.seeding import generator as make_generator
from dlmbench.seeding import request_seed


@dataclass(frozen=True)
class MCEstimate:
    """Monte Carlo estimate per request (nats, float64).

    ``mean[r]``    average of the ``K`` draws of request ``r``.
    ``stderr[r]``  ``std(draws[r], ddof=1) / sqrt(K)`` (NaN when ``K == 1``). Under antithetic/stratified
                   time sampling the draws are negatively correlated, so this i.i.d. formula is conservative
                   (it overestimates the true error of the mean).
    ``draws[r, k]`` the individual draws.
    ``settings``   estimator settings to record in the result row.
    """

    mean: np.ndarray
    stderr: np.ndarray
    draws: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)


def draw_generator(seed: int, k: int, device: str | torch.device = "cpu") -> torch.Generator:
    """The generator of draw ``k`` of the request with seed ``seed`` (depends on nothing else)."""
    return make_generator(request_seed(int(seed), "mc-draw", int(k)), device)


def offset_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """The generator of a request's shared stratification offset (LLaDA mask counts)."""
    return make_generator(request_seed(int(seed), "mc-offset"), device)


def draw_uniforms(seeds: Sequence[int], num_samples: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Float64 uniforms ``[R, K, *shape]``: entry ``[r, k]`` from :func:`draw_generator` ``(seeds[r], k)``."""
    out = torch.empty((len(seeds), num_samples, *shape), dtype=torch.float64)
    for r, s in enumerate(seeds):
        for k in range(num_samples):
            out[r, k] = torch.rand(shape, generator=draw_generator(s, k), dtype=torch.float64)
    return out


def check_inputs(x0: torch.Tensor, score_mask: torch.Tensor, seeds: Sequence[int], num_samples: int) -> None:
    if x0.ndim != 2 or score_mask.shape != x0.shape:
        raise ValueError(f"x0 and score_mask must both be [R, L]; got {tuple(x0.shape)} and {tuple(score_mask.shape)}")
    if score_mask.dtype != torch.bool:
        raise ValueError("score_mask must be a bool tensor")
    if len(seeds) != x0.shape[0]:
        raise ValueError(f"need one seed per request: {len(seeds)} seeds for {x0.shape[0]} requests")
    if num_samples < 1:
        raise ValueError("num_samples must be >= 1")


def evaluate_in_chunks(
    fn: Callable[[slice], torch.Tensor], total: int, batch_size: int | None
) -> torch.Tensor:
    """Concatenate ``fn(slice)`` over consecutive slices of ``range(total)`` of at most ``batch_size``."""
    step = total if not batch_size else int(batch_size)
    parts = [fn(slice(i, min(i + step, total))) for i in range(0, total, step)]
    return torch.cat(parts).to(torch.float64)


def summarize(draws: torch.Tensor, settings: dict[str, Any]) -> MCEstimate:
    """Mean and standard error over the last axis of ``draws [R, K]``."""
    d = draws.detach().cpu().to(torch.float64).numpy()
    k = d.shape[1]
    mean = d.mean(axis=1)
    if k > 1:
        stderr = d.std(axis=1, ddof=1) / np.sqrt(k)
    else:
        stderr = np.full(d.shape[0], np.nan)
    return MCEstimate(mean=mean, stderr=stderr, draws=d, settings=dict(settings))
