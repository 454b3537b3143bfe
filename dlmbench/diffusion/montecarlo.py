"""Per-request Monte Carlo: seeding of each draw, chunked evaluation, mean and a standard error that matches
the sampling design.

Seeding contract (docs/architecture.md, "Conventions"): the randomness of draw ``k`` of a request with
seed ``s`` comes only from ``torch.Generator`` seeded with ``request_seed(s, "mc-draw", k)``, so it does
not depend on batch size, on request order or on the other requests in the batch. The one exception is the
coupling of draws *within* a request: under ``antithetic``/``stratified``/``systematic`` time sampling (and
the LLaDA mask counts) draw ``k`` also depends on the number of draws ``K`` (its stratum is ``[k/K, (k+1)/K)``).

Standard error of the mean of the ``K`` draws of one request (:func:`mc_stderr`), by design:

``iid``          ``s / sqrt(K)`` with ``s`` the sample std (ddof 1): unbiased for the variance.
``antithetic`` / ``stratified``  one draw in each of ``K`` equal strata ``[k/K, (k+1)/K)``, each with its own
                 uniform. The mean's variance is ``(1/K^2) sum_k sigma_k^2`` (within-stratum variances), which
                 one draw per stratum cannot identify. Estimated by **collapsed strata** (Cochran, *Sampling
                 Techniques*, 3rd ed. 1977, §5A.12; Hansen, Hurwitz & Madow 1953): adjacent strata are
                 grouped in pairs ``(0, 1), (2, 3), ...`` (the last group is a triple when ``K`` is odd) and

                     v = (1/K^2) sum_g  G_g/(G_g - 1) sum_{k in g} (y_k - ybar_g)^2    (= (y_a - y_b)^2 for a pair)

                 Its expectation is ``Var + (1/K^2) sum_g G_g/(G_g-1) sum_{k in g} (mu_k - mubar_g)^2 >= Var``:
                 conservative, and only by the spread of the stratum means *within* a group of neighbouring
                 strata, which is small when the integrand is smooth in ``t`` (the i.i.d. formula instead adds the
                 spread over all of ``[0, 1]``, which is what stratification removed). ``K // 2`` degrees of
                 freedom. Chosen over ``R`` replicates of an ``S``-stratum design because it keeps all ``K``
                 strata (the most variance reduction) and needs no second setting.
``systematic``   one shared random offset, draws on a grid of spacing ``1/K``: no design-unbiased variance
                 estimator exists from one systematic sample (Cochran §8.11); reported with the i.i.d. formula,
                 which overestimates the variance when the integrand is smooth (Cochran §8.6: for a linear trend the
                 systematic mean is far more precise than the s.r.s. formula says) but carries no guarantee.
                 Kept to reproduce the references that use it (VDM/RADD, Plaid's and LLaDA's evaluation).

Corpus-level numbers do not read these per-request errors: :mod:`dlmbench.metrics` takes the spread of the
per-request values across requests (which contains their Monte Carlo noise), and
:class:`dlmbench.diffusion.adapter.DiffusionLM` adds the variances of the independent pieces of a long request.
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
    ``stderr[r]``  the standard error of ``mean[r]`` for the design that produced the draws (:func:`mc_stderr`;
                   NaN when ``K == 1``); ``settings["stderr"]`` names the formula.
    ``draws[r, k]`` the individual draws (draw ``k`` in stratum ``k`` under stratified designs).
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


STRATIFIED_SCHEMES: tuple[str, ...] = ("antithetic", "stratified")


def stderr_method(scheme: str) -> str:
    """The name of the standard-error formula of a time-sampling scheme (recorded as ``settings["stderr"]``)."""
    return "collapsed_strata" if scheme in STRATIFIED_SCHEMES else "iid"


def iid_variance(y: np.ndarray) -> np.ndarray:
    """``var(y[..., :], ddof=1) / K``: the variance of the mean of ``K`` i.i.d. draws (NaN when ``K < 2``)."""
    y = np.asarray(y, dtype=np.float64)
    k = y.shape[-1]
    if k < 2:
        return np.full(y.shape[:-1], np.nan)
    return y.var(axis=-1, ddof=1) / k


def collapsed_strata_variance(y: np.ndarray) -> np.ndarray:
    """Collapsed-strata estimate of the variance of ``mean(y[..., :K])`` when draw ``k`` is the one draw of the
    ``k``-th of ``K`` equal-weight strata (see the module docstring): adjacent strata in pairs, the last three
    together when ``K`` is odd; NaN when ``K < 2``. Conservative: its expectation is at least the variance."""
    y = np.asarray(y, dtype=np.float64)
    k = y.shape[-1]
    if k < 2:
        return np.full(y.shape[:-1], np.nan)
    n_pairs = k // 2 if k % 2 == 0 else k // 2 - 1
    pairs = y[..., : 2 * n_pairs].reshape(*y.shape[:-1], n_pairs, 2)
    total = ((pairs[..., 0] - pairs[..., 1]) ** 2).sum(axis=-1)
    if k % 2:
        tail = y[..., 2 * n_pairs :]  # three strata
        total = total + 1.5 * ((tail - tail.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
    return total / k**2


def mc_stderr(draws: np.ndarray, scheme: str = "iid") -> np.ndarray:
    """Standard error of the mean over the last axis of ``draws [R, K]`` for the sampling ``scheme``
    (module docstring): collapsed strata for ``antithetic``/``stratified``, the i.i.d. formula otherwise."""
    var = collapsed_strata_variance(draws) if scheme in STRATIFIED_SCHEMES else iid_variance(draws)
    return np.sqrt(var)


def summarize(draws: torch.Tensor, settings: dict[str, Any], scheme: str = "iid") -> MCEstimate:
    """Mean and standard error (:func:`mc_stderr` for ``scheme``) over the last axis of ``draws [R, K]``;
    the settings record the formula as ``stderr``."""
    d = draws.detach().cpu().to(torch.float64).numpy()
    return MCEstimate(mean=d.mean(axis=1), stderr=mc_stderr(d, scheme), draws=d,
                      settings={**settings, "stderr": stderr_method(scheme)})
