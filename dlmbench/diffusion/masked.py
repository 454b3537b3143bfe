"""Masked (absorbing) diffusion likelihood bounds and greedy checks, shared by MDLM, SEDD and LLaDA.

Denoiser convention: ``denoiser(x_t, sigma) -> log_probs`` with ``x_t`` int64 ``[B, L]`` (masked positions
hold ``mask_id``), ``sigma`` the total noise ``[B]`` (float64; adapters cast it) or ``None`` for a
time-free query, and ``log_probs`` ``[B, L, V]`` = ``log p_theta(x0_i | x_t)``. The SUBS parameterization of
MDLM (mask column at ``-inf``, unmasked positions carried over) is the adapter's business; the estimators
here only read masked positions, so they are correct for any log-probs.

Continuous-time NELBO (MDLM, Sahoo et al. 2024, eq. 10; reference ``diffusion.py:_forward_pass_diffusion``):

    NELBO(x0) = E_{t ~ U[eps, 1]} E_{x_t ~ q_t(.|x0)} [ sum_{i: x_t^i = M} -w(t) log p_theta(x0_i | x_t) ],

``w(t) = dsigma(t) / expm1(sigma(t))`` (``= 1/t`` for the log-linear schedule), each scored token masked
independently with probability ``1 - exp(-sigma(t))``. Positions outside ``score_mask`` stay clean (the
context of a conditional bound). With ``eps = 0`` and an ideal schedule the expectation equals the any-order
autoregressive bound ``E_{order} [ -sum_i log p_theta(x0_{o_i} | x0_{o_<i}) ]`` (the model's any-order
NLL averaged over uniformly random orders), so for an exact denoiser it equals ``-log p(x0)``.
The reference numbers (MDLM, SEDD, RADD) use ``eps = 1e-3`` and report
``E_{t~U[eps,1]}``, i.e. ``1/(1-eps) * int_eps^1``, without the ``[0, eps]`` sliver or any prior term.

LLaDA conditional bound (Nie et al. 2025, eq. 6 of v3 / Algorithm 3; reference ``ML-GSAI/LLaDA``
``get_log_likelihood.py:get_log_likelihood`` and ``eval_llada.py:LLaDAEvalHarness.get_loglikelihood``): with ``T``
continuation tokens, ``l`` in ``{1..T}``, mask a uniformly random subset of exactly ``l`` continuation tokens
(context clean), and score ``(T / l) sum_{masked} -log p_theta(x0_i | x_t)``. With ``l`` uniform its expectation is
the same any-order bound as above (without the eps truncation).

Monte Carlo estimators implemented here (``K`` draws per request, draw ``k`` seeded by
:func:`~dlmbench.diffusion.montecarlo.draw_generator` ``(seed, k)``; standard error by
:func:`~dlmbench.diffusion.montecarlo.mc_stderr`: collapsed strata for stratified draws, i.i.d. formula otherwise):

- :func:`mdlm_nelbo_mc` (``t_estimator: sampled``): draw ``k`` at ``t_k = (1 - eps) v_k + eps``, ``v_k`` coupled by
  ``time_sampling`` (``antithetic`` = one uniform per stratum ``[k/K, (k+1)/K)``, MDLM ``diffusion.py:_sample_t``
  applied to one request's draws), tokens masked independently with probability ``p(t_k)``, value
  ``w(t_k) sum_{masked} -log p``; the request's number is the mean over ``k``.
- :func:`mdlm_nelbo_integrated_mc` (``t_estimator: integrated``, time-agnostic denoisers): ``t`` integrated out,
  ``NELBO = sum_n c_n E_{|S| = n}[sum_{i in S} -log p(x0_i | x_S)]`` with
  ``c_n = E_t[w(t) Binom(n; T, p(t))]`` (:func:`nelbo_count_weights`); draw ``k`` has ``n_k`` masked tokens
  (``n_k = floor(v_k T) + 1``, ``v_k`` coupled as above) and value ``T c_{n_k} sum_{i in S_k} -log p``.
- :func:`llada_bound_mc`: the same count draws with ``c_n = 1/n``: ``l_k = floor(v_k T) + 1`` (``stratified``,
  default; ``iid``), or ``systematic`` ``((offset + floor(k T / K)) mod T) + 1`` with one integer offset per request.
  Floor, never round: LLaDA's own code rounds ``linspace(k, k + (B-1) T/B, B)`` half-to-even, which gives the
  even counts up to three times the weight of the odd ones when ``j T / B`` hits ``.5``
  (:func:`~dlmbench.diffusion.timesteps.stratified_mask_counts`); each count here has weight exactly ``1/T``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from dlmbench.diffusion.schedules import NoiseSchedule
from dlmbench.diffusion.montecarlo import (
    MCEstimate,
    check_inputs,
    draw_uniforms,
    evaluate_in_chunks,
    offset_generator,
    summarize,
)
from dlmbench.diffusion.timesteps import TimeScheme, mask_counts_from_uniforms, stratified_mask_counts, times_from_uniforms

Denoiser = Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]
"""``denoiser(x_t [B, L] int64, sigma [B] float or None) -> log p_theta(x0 | x_t) [B, L, V]``."""


@dataclass(frozen=True)
class PositionalDenoiser:
    """A denoiser that can also give ``log p_theta(x0_i | x_t)`` at chosen positions only.

    ``full(x_t, sigma) -> [B, L, V]`` (the plain :data:`Denoiser`); ``at_positions(x_t, sigma, positions)``
    with ``positions`` bool ``[B, L]`` ``-> [N, V]``, the rows of ``positions.nonzero()`` in order. The
    likelihood bounds read masked positions only, so an adapter whose network can apply its output layer to
    chosen rows (the DiT and LLaDA backbones' ``positions=``) skips the logits, the normalisation and the
    memory of every clean position: the same numbers, less work.
    """

    full: Denoiser
    at_positions: Callable[[torch.Tensor, Optional[torch.Tensor], torch.Tensor], torch.Tensor]

    def __call__(self, x_t: torch.Tensor, sigma: torch.Tensor | None) -> torch.Tensor:
        return self.full(x_t, sigma)


# --------------------------------------------------------------------------------------------------------
# Building blocks


def mask_from_uniforms(
    x0: torch.Tensor, score_mask: torch.Tensor, mask_prob: torch.Tensor, u: torch.Tensor, mask_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Absorbing forward process ``q_t``: mask scored token ``i`` iff ``u_i < mask_prob`` (per row).

    Returns ``(x_t, is_masked)``; ``mask_prob`` is ``[B]``, ``u`` is ``[B, L]`` uniform on ``[0, 1)``.
    """
    is_masked = score_mask & (u < mask_prob.to(u.dtype)[:, None])
    return torch.where(is_masked, torch.full_like(x0, mask_id), x0), is_masked


def subset_mask_from_uniforms(score_mask: torch.Tensor, counts: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Exactly ``counts[b]`` scored positions of row ``b`` chosen uniformly: those with the smallest ``u``.

    Ranking i.i.d. uniforms gives a uniformly random permutation, so the first ``l`` form a uniform
    ``l``-subset of the scored positions.
    """
    keys = torch.where(score_mask, u, torch.full_like(u, 2.0))  # unscored positions rank last
    ranks = keys.argsort(dim=-1).argsort(dim=-1)
    return score_mask & (ranks < counts.to(ranks.device)[:, None])


def masked_nll_sum(
    log_probs: torch.Tensor, x0: torch.Tensor, is_masked: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """``sum_{i masked} -weight_b * log_probs[b, i, x0_i]`` per row, float64 ``[B]``.

    Unmasked positions contribute exactly 0 whatever ``log_probs`` holds there (no ``0 * inf``).
    """
    lp = log_probs.gather(-1, x0[..., None]).squeeze(-1).to(torch.float64)
    return _weighted_nll(torch.where(is_masked, lp, torch.zeros_like(lp)), weight)


def _weighted_nll(target_lp: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return -(weight.to(torch.float64)[:, None] * target_lp).sum(dim=-1)


def target_log_probs(denoiser: Denoiser, x_t: torch.Tensor, sigma: torch.Tensor | None, x0: torch.Tensor,
                     positions: torch.Tensor) -> torch.Tensor:
    """``log p_theta(x0_i | x_t)`` at ``positions`` (bool ``[B, L]``), 0 elsewhere, float64 ``[B, L]``: from a
    :class:`PositionalDenoiser` at those positions only, else gathered from the full ``[B, L, V]``."""
    if isinstance(denoiser, PositionalDenoiser):
        out = torch.zeros(x0.shape, dtype=torch.float64, device=x0.device)
        if bool(positions.any()):
            rows = denoiser.at_positions(x_t, sigma, positions)
            out[positions] = rows.gather(-1, x0[positions][:, None]).squeeze(-1).to(torch.float64)
        return out
    lp = denoiser(x_t, sigma).gather(-1, x0[..., None]).squeeze(-1).to(torch.float64)
    return torch.where(positions, lp, torch.zeros_like(lp))


# --------------------------------------------------------------------------------------------------------
# MDLM continuous-time NELBO


def mdlm_nelbo(
    denoiser: Denoiser,
    x0: torch.Tensor,
    score_mask: torch.Tensor,
    t: torch.Tensor,
    generator: torch.Generator,
    *,
    mask_id: int,
    schedule: NoiseSchedule,
) -> torch.Tensor:
    """One-sample continuous-time NELBO per sequence at times ``t [B]`` (float64 ``[B]``, nats).

    ``sum_{i in score_mask, masked} -w(t) log p_theta(x0_i | x_t)`` with ``x_t ~ q_t(. | x0)`` drawn with
    ``generator``; the denoiser is called once with ``sigma(t)``.
    """
    t = t.to(torch.float64)
    u = torch.rand(x0.shape, generator=generator, dtype=torch.float64, device=generator.device).to(x0.device)
    return _mdlm_from_uniforms(denoiser, x0, score_mask, t.to(x0.device), u, mask_id=mask_id, schedule=schedule)


def _mdlm_from_uniforms(
    denoiser: Denoiser,
    x0: torch.Tensor,
    score_mask: torch.Tensor,
    t: torch.Tensor,
    u: torch.Tensor,
    *,
    mask_id: int,
    schedule: NoiseSchedule,
) -> torch.Tensor:
    x_t, is_masked = mask_from_uniforms(x0, score_mask, schedule.mask_prob(t), u, mask_id)
    lp = target_log_probs(denoiser, x_t, schedule.sigma(t), x0, is_masked)
    return _weighted_nll(lp, schedule.masked_weight(t))


def mdlm_nelbo_mc(
    denoiser: Denoiser,
    x0: torch.Tensor,
    score_mask: torch.Tensor,
    seeds: Sequence[int],
    *,
    mask_id: int,
    schedule: NoiseSchedule,
    num_samples: int = 1,
    time_sampling: TimeScheme = "antithetic",
    sampling_eps: float = 1e-3,
    batch_size: int | None = None,
) -> MCEstimate:
    """``num_samples`` MC draws of :func:`mdlm_nelbo` per request, seeded per request (see ``montecarlo``).

    ``x0``/``score_mask`` are ``[R, L]``; ``seeds[r]`` is request ``r``'s seed. The ``K`` times of one request
    are coupled by ``time_sampling`` (MDLM's antithetic scheme applied across the K draws of that request
    rather than across the batch, so the number does not depend on batching). Draws are evaluated in chunks
    of ``batch_size`` sequences (default: all at once).
    """
    check_inputs(x0, score_mask, seeds, num_samples)
    r, length = x0.shape
    u = draw_uniforms(seeds, num_samples, (1 + length,)).to(x0.device)  # [R, K, 1 + L]
    t = times_from_uniforms(u[..., 0], time_sampling, sampling_eps).reshape(-1)
    u_mask = u[..., 1:].reshape(r * num_samples, length)
    x_rep = x0.repeat_interleave(num_samples, dim=0)
    m_rep = score_mask.repeat_interleave(num_samples, dim=0)

    def chunk(s: slice) -> torch.Tensor:
        return _mdlm_from_uniforms(denoiser, x_rep[s], m_rep[s], t[s], u_mask[s], mask_id=mask_id, schedule=schedule)

    draws = evaluate_in_chunks(chunk, r * num_samples, batch_size).reshape(r, num_samples)
    settings = {
        "estimator": "mdlm_nelbo",
        "t_estimator": "sampled",
        "mc_samples": num_samples,
        "time_sampling": time_sampling,
        "sampling_eps": sampling_eps,
        "schedule": repr(schedule),
    }
    return summarize(draws, settings, time_sampling)


# --------------------------------------------------------------------------------------------------------
# MDLM NELBO with t integrated out (time-agnostic denoisers)


def nelbo_count_weights(total: int, schedule: NoiseSchedule, sampling_eps: float) -> torch.Tensor:
    """``c_n = E_{t ~ U[eps, 1]}[ w(t) C(T, n) p(t)^n (1 - p(t))^(T - n) ]`` for ``n = 0..T`` (float64 ``[T + 1]``),
    ``p = schedule.mask_prob``, ``w = schedule.masked_weight``, by composite Gauss-Legendre quadrature on
    ``[eps, 1]`` (panels at 1e-2, 0.1, 0.5; ``T // 2 + 16`` nodes each). For the log-linear schedule
    ``w p^n (1 - p)^(T - n) = (1 - e)^n t^(n - 1) (1 - (1 - e) t)^(T - n)`` is a polynomial of degree ``T - 1`` in ``t``,
    which that rule integrates exactly (to rounding); ``c_n = 1/n`` when both epsilons are 0.
    """
    if total < 1:
        raise ValueError("need at least one scored token")
    return _count_weights_cached(int(total), schedule, float(sampling_eps)).clone()


@functools.lru_cache(maxsize=256)
def _count_weights_cached(total: int, schedule: NoiseSchedule, sampling_eps: float) -> torch.Tensor:
    x, w = np.polynomial.legendre.leggauss(total // 2 + 16)
    cuts = [sampling_eps] + [c for c in (1e-2, 0.1, 0.5) if sampling_eps < c < 1.0] + [1.0]
    t = np.concatenate([0.5 * (b - a) * x + 0.5 * (b + a) for a, b in zip(cuts[:-1], cuts[1:])])
    wt = np.concatenate([0.5 * (b - a) * w for a, b in zip(cuts[:-1], cuts[1:])]) / (1.0 - sampling_eps)
    tt = torch.tensor(t, dtype=torch.float64)
    p = schedule.mask_prob(tt)
    n = torch.arange(total + 1, dtype=torch.float64)
    log_binom = torch.lgamma(torch.tensor(total + 1.0, dtype=torch.float64)) - torch.lgamma(n + 1) - torch.lgamma(total - n + 1)
    log_pmf = log_binom[:, None] + n[:, None] * torch.log(p)[None] + (total - n)[:, None] * torch.log1p(-p)[None]
    return (torch.exp(log_pmf) * (schedule.masked_weight(tt) * torch.tensor(wt, dtype=torch.float64))[None]).sum(-1)


def mdlm_nelbo_integrated_mc(
    denoiser: Denoiser,
    x0: torch.Tensor,
    score_mask: torch.Tensor,
    seeds: Sequence[int],
    *,
    mask_id: int,
    schedule: NoiseSchedule,
    num_samples: int = 1,
    time_sampling: TimeScheme = "antithetic",
    sampling_eps: float = 1e-3,
    batch_size: int | None = None,
) -> MCEstimate:
    """The MDLM NELBO of :func:`mdlm_nelbo_mc` with ``t`` integrated out, for a *time-agnostic* denoiser
    (``log p_theta(x0 | x_t)`` does not depend on ``sigma``: MDLM-OWT and the zoo MDLM). A conditional
    (Rao-Blackwell) estimator of the same number, not an approximation.

    Given the masked set ``S`` (``|S| = n`` of the ``T`` scored tokens) the integrand ``w(t) sum_{i in S} -log p(x0_i | x_S)``
    depends on ``t`` only through ``w(t)``, and ``P(S | t) = p^n (1 - p)^(T - n)``, so

        NELBO = sum_{n=1}^{T} c_n E_{S uniform, |S| = n}[ sum_{i in S} -log p_theta(x0_i | x_S) ],

    ``c_n`` from :func:`nelbo_count_weights`. Draw ``k``: ``n_k`` in ``{1..T}`` with probability ``1/T``, coupled over
    the draws by ``time_sampling`` exactly as LLaDA's counts (:func:`llada_bound_mc`: ``antithetic``/``stratified``
    one uniform per stratum, ``systematic`` one shared offset, ``iid``), a uniform ``n_k``-subset, value
    ``T c_{n_k} sum_{i in S_k} -log p``. With ``eps = 0`` and the log-linear schedule ``c_n = 1/n`` and this is
    LLaDA's estimator. The randomness of draw ``k`` comes from ``draw_generator(seed, k)`` only (and, under
    ``systematic``, the request's ``offset_generator``). Standard error: :func:`~dlmbench.diffusion.montecarlo.mc_stderr`.
    The network is called with ``sigma`` at ``t = n_k / T`` (ignored by a time-agnostic network).
    """
    check_inputs(x0, score_mask, seeds, num_samples)
    r, length = x0.shape
    totals = score_mask.sum(dim=-1).tolist()
    u = draw_uniforms(seeds, num_samples, (length + 1,))
    counts, weights = [], []
    for row, (seed, total) in enumerate(zip(seeds, totals)):
        if total < 1:
            raise ValueError("every request needs at least one scored token")
        if time_sampling == "systematic":
            offset = int(torch.randint(0, int(total), (), generator=offset_generator(seed)))
            n_k = stratified_mask_counts(int(total), num_samples, offset)
        else:
            n_k = mask_counts_from_uniforms(int(total), u[row, :, length], time_sampling)
        counts.append(n_k)
        weights.append(total * nelbo_count_weights(int(total), schedule, sampling_eps)[n_k])
    n_all = torch.stack(counts).reshape(-1).to(x0.device)
    w_all = torch.stack(weights).reshape(-1).to(x0.device)
    u = u[..., :length].reshape(r * num_samples, length).to(x0.device)
    x_rep = x0.repeat_interleave(num_samples, dim=0)
    m_rep = score_mask.repeat_interleave(num_samples, dim=0)
    t_rep = (n_all.to(torch.float64) / m_rep.sum(dim=-1).to(torch.float64)).clamp(max=1.0)

    def chunk(s: slice) -> torch.Tensor:
        is_masked = subset_mask_from_uniforms(m_rep[s], n_all[s], u[s])
        x_t = torch.where(is_masked, torch.full_like(x_rep[s], mask_id), x_rep[s])
        return _weighted_nll(target_log_probs(denoiser, x_t, schedule.sigma(t_rep[s]), x_rep[s], is_masked), w_all[s])

    draws = evaluate_in_chunks(chunk, r * num_samples, batch_size).reshape(r, num_samples)
    settings = {
        "estimator": "mdlm_nelbo",
        "t_estimator": "integrated",
        "mc_samples": num_samples,
        "time_sampling": time_sampling,
        "sampling_eps": sampling_eps,
        "schedule": repr(schedule),
    }
    return summarize(draws, settings, time_sampling)


# --------------------------------------------------------------------------------------------------------
# LLaDA conditional bound (exactly l of the T continuation tokens masked)


def llada_bound(
    denoiser: Denoiser,
    x0: torch.Tensor,
    score_mask: torch.Tensor,
    num_masked: torch.Tensor,
    generator: torch.Generator,
    *,
    mask_id: int,
) -> torch.Tensor:
    """One-sample LLaDA bound per row: mask a uniform subset of exactly ``num_masked[b]`` scored tokens and
    return ``(T_b / l_b) sum_{masked} -log p_theta(x0_i | x_t)`` (float64 ``[B]``); ``T_b`` = scored count.

    The denoiser is called with ``sigma=None`` (LLaDA is not time-conditioned).
    """
    u = torch.rand(x0.shape, generator=generator, dtype=torch.float64, device=generator.device).to(x0.device)
    return _llada_from_uniforms(denoiser, x0, score_mask, num_masked.to(x0.device), u, mask_id=mask_id)


def _llada_from_uniforms(
    denoiser: Denoiser,
    x0: torch.Tensor,
    score_mask: torch.Tensor,
    num_masked: torch.Tensor,
    u: torch.Tensor,
    *,
    mask_id: int,
) -> torch.Tensor:
    total = score_mask.sum(dim=-1)
    if bool(((num_masked < 1) | (num_masked > total)).any()):
        raise ValueError("num_masked must lie in 1..(number of scored tokens) for every row")
    is_masked = subset_mask_from_uniforms(score_mask, num_masked, u)
    x_t = torch.where(is_masked, torch.full_like(x0, mask_id), x0)
    weight = total.to(torch.float64) / num_masked.to(torch.float64)
    return _weighted_nll(target_log_probs(denoiser, x_t, None, x0, is_masked), weight)


def llada_bound_mc(
    denoiser: Denoiser,
    x0: torch.Tensor,
    score_mask: torch.Tensor,
    seeds: Sequence[int],
    *,
    mask_id: int,
    num_samples: int = 128,
    time_sampling: TimeScheme = "stratified",
    batch_size: int | None = None,
) -> MCEstimate:
    """``num_samples`` draws of :func:`llada_bound` per request; the numbers of masked tokens ``l_k`` of one
    request's draws are coupled by ``time_sampling``:

    - ``stratified`` / ``antithetic`` (default): ``l_k = floor(v_k T) + 1`` with ``v_k`` uniform on
      ``[k/K, (k+1)/K)``, its own uniform per draw (:func:`~dlmbench.diffusion.timesteps.mask_counts_from_uniforms`);
      stderr by collapsed strata (:func:`~dlmbench.diffusion.montecarlo.mc_stderr`);
    - ``systematic``: one integer offset per request (:func:`~dlmbench.diffusion.montecarlo.offset_generator`),
      ``l_k = ((offset + floor(k T / K)) mod T) + 1`` (:func:`~dlmbench.diffusion.timesteps.stratified_mask_counts`:
      LLaDA's design with a floor instead of its half-to-even ``round``, and one offset for all ``K`` draws
      instead of one per mini-batch); i.i.d. stderr formula;
    - ``iid``: ``l_k`` uniform on ``{1..T}`` independently; i.i.d. stderr formula.

    Each scheme's mean is unbiased for the any-order bound ``E_l E_S[(T/l) sum_{i in S} -log p(x0_i | x_{~S})]``.
    Draw ``k``'s mask (a uniform ``l_k``-subset: the ``l_k`` smallest of ``L`` uniforms) and its count uniform
    come from :func:`~dlmbench.diffusion.montecarlo.draw_generator` ``(seed, k)``.
    """
    check_inputs(x0, score_mask, seeds, num_samples)
    r, length = x0.shape
    totals = score_mask.sum(dim=-1).tolist()
    u = draw_uniforms(seeds, num_samples, (length + 1,))  # [R, K, L + 1]: mask uniforms, then the count's
    counts = []
    for row, (seed, total) in enumerate(zip(seeds, totals)):
        if total < 1:
            raise ValueError("every request needs at least one scored token")
        if time_sampling == "systematic":
            offset = int(torch.randint(0, int(total), (), generator=offset_generator(seed)))
            counts.append(stratified_mask_counts(int(total), num_samples, offset))
        else:
            counts.append(mask_counts_from_uniforms(int(total), u[row, :, length], time_sampling))
    l_all = torch.stack(counts).reshape(-1).to(x0.device)
    u = u[..., :length].reshape(r * num_samples, length).to(x0.device)
    x_rep = x0.repeat_interleave(num_samples, dim=0)
    m_rep = score_mask.repeat_interleave(num_samples, dim=0)

    def chunk(s: slice) -> torch.Tensor:
        return _llada_from_uniforms(denoiser, x_rep[s], m_rep[s], l_all[s], u[s], mask_id=mask_id)

    draws = evaluate_in_chunks(chunk, r * num_samples, batch_size).reshape(r, num_samples)
    settings = {"estimator": "llada_bound", "mc_samples": num_samples, "time_sampling": time_sampling,
                "mask_counts": "floor(v T) + 1" if time_sampling != "systematic" else "((offset + floor(k T / K)) mod T) + 1"}
    return summarize(draws, settings, time_sampling)


# --------------------------------------------------------------------------------------------------------
# Greedy checks


def _real_token_log_probs(log_probs: torch.Tensor, mask_id: int) -> torch.Tensor:
    """Never let the model predict the mask token: its column (if inside the vocabulary) becomes -inf."""
    if 0 <= mask_id < log_probs.shape[-1]:
        log_probs = log_probs.clone()
        log_probs[..., mask_id] = float("-inf")
    return log_probs


def one_shot_argmax(denoiser: Denoiser, x0: torch.Tensor, target_mask: torch.Tensor, *, mask_id: int) -> torch.Tensor:
    """Mask every target position at once; match iff every target is the argmax there (bool ``[B]``).

    One forward pass, ``sigma=None``. Argmax ties go to the lowest token id.
    """
    x_t = torch.where(target_mask, torch.full_like(x0, mask_id), x0)
    pred = _real_token_log_probs(denoiser(x_t, None), mask_id).argmax(dim=-1)
    return ((pred == x0) | ~target_mask).all(dim=-1)


def iterative_confidence(
    denoiser: Denoiser, x0: torch.Tensor, target_mask: torch.Tensor, *, mask_id: int
) -> torch.Tensor:
    """LLaDA's greedy check (``eval_llada.py:suffix_greedy_prediction``): mask every target, then repeatedly
    unmask the single masked position whose argmax has the highest probability, with that argmax; match iff
    the decoded targets equal ``x0`` (bool ``[B]``).

    A row is dropped from later passes as soon as it places a wrong token (it can never match again) or is
    fully decoded, which gives the same answers as LLaDA's loop with fewer forward passes. Confidence ties
    go to the leftmost position, argmax ties to the lowest token id. ``sigma=None`` in every call.
    """
    x = torch.where(target_mask, torch.full_like(x0, mask_id), x0)
    still_masked = target_mask.clone()
    ok = torch.ones(x0.shape[0], dtype=torch.bool, device=x0.device)
    active = torch.nonzero(still_masked.any(dim=-1)).squeeze(-1)
    while active.numel() > 0:
        lp = _real_token_log_probs(denoiser(x[active], None), mask_id)
        conf, pred = lp.max(dim=-1)  # max log-prob = log of the argmax's probability
        conf = torch.where(still_masked[active], conf, torch.full_like(conf, float("-inf")))
        pos = conf.argmax(dim=-1)
        tok = pred.gather(-1, pos[:, None]).squeeze(-1)
        x[active, pos] = tok
        still_masked[active, pos] = False
        ok[active] &= tok == x0[active, pos]
        active = active[ok[active] & still_masked[active].any(dim=-1)]
    return ok
