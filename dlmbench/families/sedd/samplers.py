"""SEDD samplers over a score function: Euler and analytic (Tweedie) tau-leaping, with SEDD's final
denoising step; absorbing and uniform graphs.

Source: Lou, Meng & Ermon 2024 (SEDD), §4.1 and Alg. 2; reference ``sampling.py`` (``EulerPredictor``,
``AnalyticPredictor``, ``Denoiser``, ``get_pc_sampler``) and ``graph_lib.py``. ``s_y = exp(log_score[y])``
estimates the concrete score ``p_t(x with x^i = y) / p_t(x)``; as SEDD's network does, the entry at the
current token is taken to be 1. Times ``linspace(1, eps, steps + 1)``, ``dt = (1 - eps)/steps``.

Absorbing graph (``N`` real tokens, mask ``M = N``), for a masked position, with ``S = sum_{y<N} s_y``:

- Euler:    ``P(y) = dt sigma'(t) s_y``,               ``P(M) = 1 - dt sigma'(t) S``;
- analytic: ``P(y) = (e^{dsigma} - 1) s_y``,             ``P(M) = 1 - (e^{dsigma} - 1) S``,
  ``dsigma = sigma(t) - sigma(t - dt)`` (``staggered_score * transp_transition``);
- denoise:  at ``sigma = sigma(eps)`` draw ``y`` with ``P(y) ∝ s_y`` (mask column dropped), **sampled**.
An unmasked position never changes. With the exact score ``s_y = p_0(y | x_t)/(e^sigma - 1)``, the
analytic step is exactly the MDLM ancestral step with the same schedule.

Uniform graph (``dim`` tokens, ``Q = 11^T/dim - I``): Euler ``P(y) = dt sigma'(t) s_y / dim`` for
``y != x``; analytic ``P = staggered(s, dsigma) * e^{dsigma Q}[x, .]`` with
``staggered = e^{dsigma} s - (e^{dsigma} - 1)/dim * sum(s)``; denoise the same at ``sigma(eps)``, sampled.
Generated positions start from the uniform limit. Negative entries (possible with an inexact score or a
large step) are clipped to 0 before the draw (the reference's Gumbel draw never picks them either).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dlmbench.families.sedd.estimator import AbsorbingGraph, ScoreFn, UniformGraph
from dlmbench.diffusion.schedules import NoiseSchedule
from dlmbench.diffusion.sampling import Rng, SamplerOutput, check_precision, make_rng

__all__ = ["sedd_sample", "sedd_euler", "sedd_analytic"]


def _scores(score_fn: ScoreFn, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``exp(log score)`` in float64 with the entry at the current token set to 1."""
    ls = score_fn(x, sigma).to(torch.float64)
    ls = ls.scatter(-1, x[..., None].clamp(max=ls.shape[-1] - 1), 0.0)
    return ls.exp()


def _reshape_real(probs_real: torch.Tensor, temperature: float, top_p: float | None) -> torch.Tensor:
    """Keep the total unmasking mass, but apply temperature / nucleus to the clean-token proportions."""
    if temperature == 1.0 and top_p is None:
        return probs_real
    from dlmbench.diffusion.categorical import filter_logits

    total = probs_real.sum(dim=-1, keepdim=True)
    z = torch.log(probs_real.clamp_min(0.0))
    z = filter_logits(z / temperature, top_p=top_p)
    return total * torch.softmax(z, dim=-1).nan_to_num(0.0)


def _absorbing_step(s: torch.Tensor, n: int, rate_scale: torch.Tensor, temperature: float, top_p: float | None) -> torch.Tensor:
    """``[R, L, N + 1]`` probabilities for masked positions: ``rate_scale * s_y`` and stay = 1 - sum."""
    real = rate_scale[:, None, None] * s[..., :n]
    real = _reshape_real(real, temperature, top_p)
    stay = (1.0 - real.sum(dim=-1, keepdim=True)).clamp_min(0.0)
    return torch.cat([real, stay], dim=-1)


def _uniform_probs(s: torch.Tensor, x: torch.Tensor, dsig: torch.Tensor, kind: str, dt_rate: torch.Tensor | None = None) -> torch.Tensor:
    dim = s.shape[-1]
    onehot = torch.nn.functional.one_hot(x, dim).to(torch.float64)
    if kind == "euler":
        assert dt_rate is not None
        rate = s / dim * (1.0 - onehot)
        rate = rate - onehot * rate.sum(dim=-1, keepdim=True)
        return (onehot + dt_rate[:, None, None] * rate).clamp_min(0.0)
    e = torch.exp(dsig)[:, None, None]
    stag = e * s - (e - 1.0) / dim * s.sum(dim=-1, keepdim=True)
    off = (1.0 - 1.0 / e) / dim
    trans = off.expand_as(s) * (1.0 - onehot) + (1.0 - (dim - 1) * off) * onehot
    return (stag * trans).clamp_min(0.0)


def sedd_sample(
    score_fn: ScoreFn,
    x: torch.Tensor,
    *,
    graph: AbsorbingGraph | UniformGraph,
    schedule: NoiseSchedule,
    steps: int,
    predictor: str = "analytic",
    fixed: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    seeds: Sequence[int] | None = None,
    eps: float = 1e-5,
    denoise: bool = True,
    temperature: float = 1.0,
    top_p: float | None = None,
    precision: str = "float64",
) -> SamplerOutput:
    """SEDD predictor sampling (``predictor`` = ``"analytic"`` or ``"euler"``) plus the final denoiser.

    ``x [B, L]``: the canvas. Absorbing graph: positions holding ``graph.mask_id`` are generated.
    Uniform graph: ``fixed`` (bool ``[B, L]``) marks the given tokens; the others are generated, starting
    from uniform draws. Fixed positions never change (SEDD's ``proj_fun`` for conditional sampling).
    ``temperature``/``top_p`` (absorbing only) reshape the clean-token proportions without changing the
    unmasking probability. NFE = ``steps`` (+1 with ``denoise``); every row is evaluated every step.
    """
    prec = check_precision(precision)
    if predictor not in ("analytic", "euler"):
        raise ValueError("predictor must be 'analytic' or 'euler'")
    b, l = x.shape
    dev = x.device
    rng: Rng = make_rng(b, generator, seeds, device=dev)
    absorbing = isinstance(graph, AbsorbingGraph)
    x = x.clone()
    if absorbing:
        free = x == graph.mask_id
    else:
        if top_p is not None or temperature != 1.0:
            raise ValueError("temperature/top_p are only defined for the absorbing graph")
        free = ~fixed if fixed is not None else torch.ones_like(x, dtype=torch.bool)
        start = torch.clamp((rng.uniform((l,), device=dev) * graph.dim).long(), max=graph.dim - 1)
        x = torch.where(free, start, x)
    times = torch.linspace(1.0, eps, steps + 1, dtype=torch.float64)
    dt = (1.0 - eps) / steps
    nfe = 0

    def sig(t: float) -> torch.Tensor:
        return schedule.sigma(torch.full((b,), t, dtype=torch.float64, device=dev))

    for i in range(steps):
        t, t_next = float(times[i]), float(times[i + 1])
        sigma = sig(t)
        s = _scores(score_fn, x, sigma)
        nfe += 1
        if predictor == "euler":
            dsig_rate = dt * schedule.dsigma(torch.full((b,), t, dtype=torch.float64, device=dev))
        else:
            dsig = sigma - sig(t_next)
        if absorbing:
            scale = dsig_rate if predictor == "euler" else torch.expm1(dsig)
            probs = _absorbing_step(s, graph.num_tokens, scale, temperature, top_p)
            draw = rng.categorical(probs, prec)
        else:
            if predictor == "euler":
                probs = _uniform_probs(s, x, None, "euler", dsig_rate)  # type: ignore[arg-type]
            else:
                probs = _uniform_probs(s, x, dsig, "analytic")
            draw = rng.categorical(probs, prec)
        x = torch.where(free & (x == graph.mask_id) if absorbing else free, draw, x)

    if denoise:
        sigma = sig(float(times[-1]))
        s = _scores(score_fn, x, sigma)
        nfe += 1
        if absorbing:
            real = _reshape_real(s[..., : graph.num_tokens], temperature, top_p)
            probs = real / real.sum(dim=-1, keepdim=True)
            draw = rng.categorical(probs, prec)
            x = torch.where(x == graph.mask_id, draw, x)
        else:
            probs = _uniform_probs(s, x, sigma, "analytic")
            draw = rng.categorical(probs / probs.sum(dim=-1, keepdim=True), prec)
            x = torch.where(free, draw, x)
    return SamplerOutput(x, nfe, torch.full((b,), nfe, dtype=torch.long))


def sedd_euler(score_fn: ScoreFn, x: torch.Tensor, **kw) -> SamplerOutput:
    """SEDD ``euler`` predictor (first-order tau-leaping)."""
    return sedd_sample(score_fn, x, predictor="euler", **kw)


def sedd_analytic(score_fn: ScoreFn, x: torch.Tensor, **kw) -> SamplerOutput:
    """SEDD ``analytic`` predictor (Tweedie tau-leaping)."""
    return sedd_sample(score_fn, x, predictor="analytic", **kw)
