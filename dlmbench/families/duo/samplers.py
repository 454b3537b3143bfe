"""DUO's samplers over a uniform-state denoiser (pure functions; reference s-sahoo/duo ``trainer_base.py``:
``Diffusion.generate_samples``, ``_ancestral_update``, ``_get_posterior_from_xt``; ``algo.py:DUO_BASE._posterior_from_x0``).

Canvas: ``x [B, L]`` whose free positions start from the prior, a uniform draw over all ``N`` states
(``UniformState.prior_sample``), and whose ``fixed`` positions (a prefix) hold their clean tokens throughout (the
context of a conditional sample, kept clean as in the conditional bound; dlmbench's choice: the reference samples
unconditionally).

Ancestral (``sampling.predictor: ancestral``): times ``t_j = linspace(1, eps, steps + 1)``; at each step the network
gives ``p_theta(. | x_t)`` at ``sigma(t) = -log alpha_t``, nucleus ``top_p`` and temperature act on it (renormalised;
the reference's ``top_k_top_p_filtering`` leaves it unnormalised), and every free position draws

    x_s ~ q(x_s | x_t, p_theta)  ∝  [alpha_{t|s} 1(x_s = x_t) + (1 - alpha_{t|s}) / N] * [alpha_s p_theta(x_s) + (1 - alpha_s) / N]

(``alpha_{t|s} = alpha_t / alpha_s``: Bayes' rule with ``x0`` replaced by the prediction, which is the reference's closed
form). Then the ``noise_removal`` step at ``t = eps``: ``ancestral`` (the same posterior with ``alpha_s = 1``, the
reference default), ``greedy`` (every free position the argmax of ``p_theta`` — the "greedy-tail" sampler of the DUO
paper §4.2, ``sampling.noise_removal=greedy``, which is how the README samples the distilled model with
``sampling.steps=8``: the few-step sampler), or ``none``.

NFE: one network call per step, plus one for ``ancestral`` / ``greedy`` noise removal. Categorical draws in
``precision`` (float64 by default; the reference's ``sampling.use_float64: True``). Randomness: row ``r`` draws
only from ``seeds[r]`` (:class:`dlmbench.diffusion.sampling.Rng`), so a row does not depend on its neighbours.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Optional

import torch

from dlmbench.diffusion.sampling import SamplerOutput, check_precision, clean_probs, make_rng
from dlmbench.families.duo.estimator import UniformLogLinear

NOISE_REMOVAL = ("ancestral", "greedy", "none")


def uniform_posterior(p0: torch.Tensor, x_t: torch.Tensor, alpha_s: torch.Tensor, alpha_t: torch.Tensor) -> torch.Tensor:
    """``q(x_s | x_t, p0)`` ``[B, L, N]`` (module docstring) for predictions ``p0 [B, L, N]`` and ``alpha_s``,
    ``alpha_t`` ``[B]``; in the dtype of ``p0``."""
    n = p0.shape[-1]
    a_s = alpha_s.to(p0.dtype)[:, None, None]
    a_t = alpha_t.to(p0.dtype)[:, None, None]
    a_ts = a_t / a_s
    like = torch.full_like(p0, 0.0) + (1.0 - a_ts) / n
    like = like.scatter_add(-1, x_t[..., None], a_ts.expand(*x_t.shape, 1).contiguous())
    joint = like * (a_s * p0 + (1.0 - a_s) / n)
    return joint / joint.sum(-1, keepdim=True)


def _argmax(log_probs: torch.Tensor, exclude: int | None) -> torch.Tensor:
    if exclude is not None and 0 <= exclude < log_probs.shape[-1]:
        log_probs = log_probs.clone()
        log_probs[..., exclude] = float("-inf")
    return log_probs.argmax(-1)


def prior_canvas(x: torch.Tensor, fixed: torch.Tensor, vocab_size: int, rng) -> torch.Tensor:
    """``x`` with every free position replaced by a uniform draw over the ``N`` states (row ``r`` from its own rng)."""
    u = rng.uniform(tuple(x.shape[1:]), device=x.device)
    noise = (u * vocab_size).floor().to(torch.long).clamp(0, vocab_size - 1)
    return torch.where(fixed, x, noise)


def duo_ancestral(
    denoiser: Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor],
    x: torch.Tensor,
    fixed: torch.Tensor,
    *,
    vocab_size: int,
    seeds: Sequence[int],
    schedule: UniformLogLinear,
    steps: int = 1000,
    eps: float = 1e-5,
    noise_removal: str = "ancestral",
    temperature: float = 1.0,
    top_p: float | None = None,
    precision: str = "float64",
    exclude: int | None = None,
) -> SamplerOutput:
    """Sample the free positions of ``x [B, L]`` (``fixed`` bool ``[B, L]`` kept) by ``steps`` ancestral steps and the
    ``noise_removal`` step (module docstring). ``temperature == 0``: every draw from ``p_theta`` replaced by its argmax
    (the posterior then mixes the argmax with the noise). ``exclude``: a state ``p_theta`` never predicts (its column set
to 0 before nucleus and renormalisation, and never the greedy argmax): the adapters pass the pad row, which is no
text; the noise terms still visit it, but the last ancestral / greedy step cannot leave it. Returns the tokens and the NFE."""
    if noise_removal not in NOISE_REMOVAL:
        raise ValueError(f"noise_removal must be one of {NOISE_REMOVAL}, not {noise_removal!r}")
    if steps < 1:
        raise ValueError("steps must be >= 1")
    prec = check_precision(precision)
    b = x.shape[0]
    rng = make_rng(b, seeds=seeds, device="cpu")
    x = prior_canvas(x.clone(), fixed, vocab_size, rng)
    ts = torch.linspace(1.0, eps, steps + 1, dtype=torch.float64)
    nfe = 0

    def p_theta(x_t: torch.Tensor, t: float) -> torch.Tensor:
        tt = torch.full((b,), t, dtype=torch.float64, device=x.device)
        lp = denoiser(x_t, schedule.sigma(tt))
        if temperature == 0:
            dtype = torch.float64 if prec == "float64" else torch.float32
            return torch.nn.functional.one_hot(_argmax(lp, exclude), lp.shape[-1]).to(dtype)
        return clean_probs(lp, exclude, temperature=temperature, top_p=top_p, precision=prec)

    for j in range(steps):
        t, s = float(ts[j]), float(ts[j + 1])
        p0 = p_theta(x, t)
        nfe += 1
        a_t = schedule.alpha(torch.full((b,), t, dtype=torch.float64, device=x.device))
        a_s = schedule.alpha(torch.full((b,), s, dtype=torch.float64, device=x.device))
        q = uniform_posterior(p0, x, a_s, a_t)
        x = torch.where(fixed, x, rng.categorical(q, prec).to(x.device))
    t0 = float(ts[-1])
    if noise_removal == "ancestral":
        p0 = p_theta(x, t0)
        nfe += 1
        a_t = schedule.alpha(torch.full((b,), t0, dtype=torch.float64, device=x.device))
        q = uniform_posterior(p0, x, torch.ones_like(a_t), a_t)
        x = torch.where(fixed, x, rng.categorical(q, prec).to(x.device))
    elif noise_removal == "greedy":
        tt = torch.full((b,), t0, dtype=torch.float64, device=x.device)
        x = torch.where(fixed, x, _argmax(denoiser(x, schedule.sigma(tt)), exclude))
        nfe += 1
    return SamplerOutput(x, nfe, torch.full((b,), nfe, dtype=torch.long))


__all__ = ["NOISE_REMOVAL", "duo_ancestral", "prior_canvas", "uniform_posterior"]
