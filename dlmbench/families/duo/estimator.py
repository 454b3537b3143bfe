"""DUO's likelihood: the uniform-state continuous-time NELBO (UDLM, Schiff et al. 2025; DUO, Sahoo et al. 2025,
eq. 3-4) with its Monte Carlo standard error, the conditional bound, and the greedy check (pure functions).

Forward process (``trainer_base.py:UniformState.q_xt``): every scored token independently keeps its value with
probability ``alpha_t`` and is otherwise replaced by a token drawn uniformly from all ``N = V`` states, i.e.
``q_t(. | x) = Cat(alpha_t e_x + (1 - alpha_t) / N)``. Log-linear schedule (``trainer_base.py:LogLinear``):
``alpha_t = 1 - (1 - eps) t``, ``alpha'_t = -(1 - eps)``, ``eps = 1e-3``; the network is fed
``sigma = -log alpha_t`` (``Diffusion._sigma_from_alphat``). Unscored positions (the context) stay clean.

Bound. With ``xbar = N alpha_t e_{x0} + (1 - alpha_t) 1`` and ``xbar_theta = N alpha_t p_theta(. | x_t) + (1 - alpha_t) 1``
(``sum = N`` both), the forward rates of the uniform CTMC ``beta_t (1/N - delta)``, ``beta_t = -alpha'_t / alpha_t``, give
true and model reverse rates ``R(x -> y) = (beta_t / N) xbar_y / xbar_x`` and ``R_theta(x -> y) = (beta_t / N) xbar_theta_y / xbar_theta_x``.
The continuous-time ELBO (Campbell et al. 2022; SEDD's denoising score entropy, Lou et al. 2024, Thm 3.6) is, per
scored position with current state ``x = x_t^i``,

    l_i(t) = sum_{y != x} [ R_theta(x -> y) - R(x -> y) + R(x -> y) log(R(x -> y) / R_theta(x -> y)) ]      (>= 0)

    -log p(x0) <= int_0^1 E_{x_t ~ q_t}[ sum_i l_i(t) ] dt + KL(q_1(. | x0) || uniform) + 0.

Summing over ``y`` in closed form (``xbar`` takes two values): with ``c = (1 - alpha) / (N alpha + 1 - alpha)`` and
``S = sum_y log xbar_theta_y``,

    l = w(t) [ N / xbar_theta_x - N / xbar_x + D ],     w(t) = -alpha'_t / (N alpha_t),
    D = c ((N - 1) log c - S + N log xbar_theta_x)                                      if x == x0,
    D = -(1/c) log c - S + N log xbar_theta_x + (N alpha / (1 - alpha)) (log xbar_theta_x - log xbar_theta_{x0})   if x != x0,

which is what the reference's ``algo.py:DUO_BASE.nll_per_token`` computes (written there as
``coeff * (term1 - term2)``). Note that with uniform noise ``x_t`` is never "masked": *every* scored position carries
loss, also those whose token survived.

Reported number (the reference's ``ppl_eval``, ``trainer_base.py:Diffusion.nll`` / ``_sample_t``): ``t ~ U[eps, 1]``
(``training.sampling_eps = 1e-3``), ``E_t E_{x_t}[sum_i l_i(t)]``, antithetic ``t``; neither the prior term at
``t = 1`` (``alpha_1 = eps``) nor the ``[0, eps]`` sliver is added (``Loss.prior_loss = 0``). :func:`prior_kl` gives
the omitted prior term per token for whoever wants it.

Monte Carlo (:mod:`dlmbench.diffusion.montecarlo`): draw ``k`` of request ``r`` uses ``draw_uniforms(seeds)[r, k]``
= ``[u_t, u_move (L), u_token (L)]``: time ``t_k`` from ``u_t`` coupled over the ``K`` draws by ``time_sampling``
(antithetic = one uniform per stratum, as MDLM); token ``i`` is resampled iff ``u_move_i < 1 - alpha_t`` and then
becomes ``floor(u_token_i N)``. Standard error: :func:`~dlmbench.diffusion.montecarlo.mc_stderr`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

import torch

from dlmbench.diffusion.montecarlo import MCEstimate, check_inputs, draw_uniforms, evaluate_in_chunks, summarize
from dlmbench.diffusion.timesteps import TimeScheme, times_from_uniforms

Denoiser = Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]
"""``denoiser(x_t [B, L] int64, sigma [B] float64) -> log p_theta(x0 | x_t) [B, L, V]`` (every column a state)."""


@dataclass(frozen=True)
class UniformLogLinear:
    """DUO's log-linear schedule: ``alpha_t = 1 - (1 - eps) t``; ``alpha'_t = -(1 - eps)``; network input
    ``sigma = -log alpha_t`` (``trainer_base.py:LogLinear``, ``eps = 1e-3``: ``alpha_1 = eps``)."""

    eps: float = 1e-3

    def __post_init__(self) -> None:
        if not 0.0 <= self.eps < 1.0:
            raise ValueError(f"UniformLogLinear.eps must lie in [0, 1), not {self.eps}")

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 - (1.0 - self.eps) * t

    def dalpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(t, -(1.0 - self.eps))

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.log1p(-(1.0 - self.eps) * t)


def uniform_nelbo_integrand(log_probs: torch.Tensor, x_t: torch.Tensor, x0: torch.Tensor, alpha: torch.Tensor,
                            dalpha: torch.Tensor) -> torch.Tensor:
    """``l_i(t)`` of the module docstring at every position (float64 ``[B, L]``): ``log_probs [B, L, N]`` the
    model's ``log p_theta(. | x_t)``, ``alpha``/``dalpha`` ``[B]`` (``alpha_t``, ``alpha'_t``). Callers zero the
    unscored positions."""
    n = log_probs.shape[-1]
    a = alpha.to(torch.float64)[:, None]
    da = dalpha.to(torch.float64)[:, None]
    p = log_probs.to(torch.float64).exp()
    xbar_theta = n * a[..., None] * p + (1.0 - a[..., None])  # [B, L, N]
    s = xbar_theta.log().sum(-1)
    xt_theta = xbar_theta.gather(-1, x_t[..., None]).squeeze(-1)
    x0_theta = xbar_theta.gather(-1, x0[..., None]).squeeze(-1)
    same = x_t == x0
    xbar_x = torch.where(same, n * a + (1.0 - a), 1.0 - a)
    c = (1.0 - a) / (n * a + 1.0 - a)
    log_c = torch.log(c)
    d_same = c * ((n - 1) * log_c - s + n * xt_theta.log())
    d_diff = (-(1.0 / c) * log_c - s + n * xt_theta.log()
              + (n * a / (1.0 - a)) * (xt_theta.log() - x0_theta.log()))
    d = torch.where(same, d_same, d_diff)
    w = -da / (n * a)
    return w * (n / xt_theta - n / xbar_x + d)


def prior_kl(alpha_1: float, vocab_size: int) -> float:
    """``KL(q_1(. | x0) || uniform)`` per token (nats): the prior term the reference leaves out (``alpha_1 = eps``)."""
    n, a = int(vocab_size), float(alpha_1)
    top = a + (1 - a) / n
    rest = (1 - a) / n
    return top * math.log(top * n) + (n - 1) * rest * math.log(rest * n) if rest > 0 else math.log(n)


def uniform_noise(x0: torch.Tensor, score_mask: torch.Tensor, alpha: torch.Tensor, u_move: torch.Tensor,
                  u_token: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """``x_t ~ q_t(. | x0)`` from uniforms: scored token ``i`` resampled iff ``u_move_i < 1 - alpha`` (per row), then
    ``floor(u_token_i N)`` (which may equal ``x0_i``: the uniform draw covers all ``N`` states)."""
    move = score_mask & (u_move < (1.0 - alpha.to(u_move.dtype))[:, None])
    tok = (u_token * vocab_size).floor().to(torch.long).clamp(0, vocab_size - 1)
    return torch.where(move, tok, x0)


def duo_nelbo_from_uniforms(denoiser: Denoiser, x0: torch.Tensor, score_mask: torch.Tensor, t: torch.Tensor,
                            u_move: torch.Tensor, u_token: torch.Tensor, *, vocab_size: int,
                            schedule: UniformLogLinear) -> torch.Tensor:
    """One draw per row (float64 ``[B]``): ``sum_{i scored} l_i(t)`` at ``x_t`` built from the uniforms; one
    denoiser call at ``sigma(t)``."""
    t = t.to(torch.float64)
    alpha, dalpha = schedule.alpha(t), schedule.dalpha(t)
    x_t = uniform_noise(x0, score_mask, alpha, u_move, u_token, vocab_size)
    lp = denoiser(x_t, schedule.sigma(t))
    if lp.shape[-1] != vocab_size:
        raise ValueError(f"denoiser returned {lp.shape[-1]} columns for a {vocab_size}-state uniform process")
    terms = uniform_nelbo_integrand(lp, x_t, x0, alpha, dalpha)
    return torch.where(score_mask, terms, torch.zeros_like(terms)).sum(-1)


def duo_nelbo_mc(denoiser: Denoiser, x0: torch.Tensor, score_mask: torch.Tensor, seeds: Sequence[int], *,
                 vocab_size: int, schedule: UniformLogLinear, num_samples: int = 1,
                 time_sampling: TimeScheme = "antithetic", sampling_eps: float = 1e-3,
                 batch_size: int | None = None) -> MCEstimate:
    """``num_samples`` draws of the uniform-state NELBO per request (module docstring), seeded per request; the
    ``K`` times of a request coupled by ``time_sampling``; chunks of ``batch_size`` rows per network call."""
    check_inputs(x0, score_mask, seeds, num_samples)
    r, length = x0.shape
    u = draw_uniforms(seeds, num_samples, (1 + 2 * length,)).to(x0.device)  # [R, K, 1 + 2L]
    t = times_from_uniforms(u[..., 0], time_sampling, sampling_eps).reshape(-1)
    u_move = u[..., 1:1 + length].reshape(r * num_samples, length)
    u_tok = u[..., 1 + length:].reshape(r * num_samples, length)
    x_rep = x0.repeat_interleave(num_samples, dim=0)
    m_rep = score_mask.repeat_interleave(num_samples, dim=0)

    def chunk(s: slice) -> torch.Tensor:
        return duo_nelbo_from_uniforms(denoiser, x_rep[s], m_rep[s], t[s], u_move[s], u_tok[s], vocab_size=vocab_size,
                                       schedule=schedule)

    draws = evaluate_in_chunks(chunk, r * num_samples, batch_size).reshape(r, num_samples)
    settings = {"estimator": "duo_uniform_nelbo", "mc_samples": num_samples, "time_sampling": time_sampling,
                "sampling_eps": sampling_eps, "schedule": repr(schedule), "prior_term": "omitted (as the reference)"}
    return summarize(draws, settings, time_sampling)


def duo_one_shot_argmax(denoiser: Denoiser, x0: torch.Tensor, target_mask: torch.Tensor, noise: torch.Tensor, *,
                        sigma: torch.Tensor) -> torch.Tensor:
    """DUO's greedy check (bool ``[B]``): every target position replaced by the prior's draw ``noise [B, L]`` (the
    state at ``t = 1``: nothing of the target survives), one call at ``sigma``; match iff every target is the argmax
    of ``log p_theta(. | x_t)`` there (ties to the lowest id). The uniform-state analogue of masked diffusion's
    one-shot argmax; ``noise`` comes from the request's seed, so the answer is deterministic."""
    x_t = torch.where(target_mask, noise, x0)
    pred = denoiser(x_t, sigma).argmax(dim=-1)
    return ((pred == x0) | ~target_mask).all(dim=-1)


__all__ = ["Denoiser", "UniformLogLinear", "duo_nelbo_from_uniforms", "duo_nelbo_mc", "duo_one_shot_argmax",
           "prior_kl", "uniform_nelbo_integrand", "uniform_noise"]
