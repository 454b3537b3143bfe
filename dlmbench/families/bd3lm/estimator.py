"""BD3-LM's likelihood: the block NELBO (Arriola et al. 2025, eq. 8-9) with its Monte Carlo standard error, the
exact chain rule at block size 1, and the greedy check (pure functions over a block denoiser).

Block denoiser convention: ``denoiser(x_t [B, L], x0 [B, L], sigma [B] or None) -> log p_theta [B, L, V]`` whose
row at position ``i`` of block ``b`` is ``log p_theta(x0^i | x_t^{block b}, x0^{blocks < b})`` (the two-stream
forward of :class:`~dlmbench.families.bd3lm.backbone.BD3LMNet`); a :class:`BlockPositional` denoiser can also
return only chosen rows. Blocks: ``b(i) = i // block_size``, the grid starting at position 0 of the row.

Block NELBO (reference ``diffusion.py:_forward_pass_diffusion`` with ``_sample_t`` and ``q_xt``): every block
``b`` draws its own time ``t_b ~ U[sampling_eps, 1]``; every *scored* token of block ``b`` is masked independently
with probability ``m(t_b)`` (unscored tokens, the context, stay clean); then

    NELBO(x0) = E_{t, x_t} [ sum_b sum_{i in b, masked} -w(t_b) log p_theta(x0^i | x_t^b, x0^{<b}) ]

with ``w = schedule.masked_weight``. bd3lms's log-linear noise is ``m(t) = t``, ``w(t) = 1/t``
(``noise_schedule.py:LogLinearNoise.compute_loss_scaling_and_move_chance``), i.e.
:class:`~dlmbench.diffusion.schedules.LogLinearNoise` with ``eps = 0``, and ``t ~ U[1e-3, 1]`` (the bounds the
reference reports as an ELBO, ``sampling_eps_min = 1e-3, sampling_eps_max = 1``). Blocks are conditionally
independent given the clean past, so the bound is the sum over blocks of MDLM's bound of each block given
the clean prefix: with one block it *is* MDLM's NELBO, with ``block_size = 1`` every term is
``E_t[(1/t) m(t)] (-log p) = -log p(x_i | x_<i)``, the AR chain rule.

Monte Carlo: ``K`` draws per request from :mod:`dlmbench.diffusion.montecarlo` (draw ``k`` of request ``r`` from
``draw_uniforms(seeds)[r, k]``: the first ``n_blocks`` uniforms are the block times, the next ``L`` the masking
uniforms, so one block uses exactly the layout of :func:`dlmbench.diffusion.masked.mdlm_nelbo_mc`). The ``K``
times of each block are coupled by ``time_sampling`` across the draws of the request (MDLM's antithetic
stratification; the reference stratifies across ``batch x blocks`` instead, which depends on batching).

Block size 1 (reference ``validation_step``: ``sampling_eps_min = sampling_eps_max = 1``, every token masked,
weight 1): :func:`block_ar_nll`, exact, no Monte Carlo.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

import torch

from dlmbench.diffusion.masked import iterative_confidence, one_shot_argmax
from dlmbench.diffusion.montecarlo import MCEstimate, check_inputs, draw_uniforms, evaluate_in_chunks, summarize
from dlmbench.diffusion.schedules import NoiseSchedule
from dlmbench.diffusion.timesteps import TimeScheme, times_from_uniforms

BlockDenoiser = Callable[[torch.Tensor, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]
"""``denoiser(x_t [B, L], x0 [B, L], sigma [B] or None) -> log p_theta(x0 | x_t^{own block}, x0^{earlier}) [B, L, V]``."""


@dataclass(frozen=True)
class BlockPositional:
    """A block denoiser that can also answer at chosen rows only: ``at_positions(x_t, x0, sigma, positions)``
    with ``positions`` bool ``[B, L]`` returns ``[N, V]`` in ``positions.nonzero()`` order."""

    full: BlockDenoiser
    at_positions: Callable[[torch.Tensor, torch.Tensor, Optional[torch.Tensor], torch.Tensor], torch.Tensor]

    def __call__(self, x_t, x0, sigma):
        return self.full(x_t, x0, sigma)


def n_blocks(length: int, block_size: int) -> int:
    """Blocks of a length-``length`` row (the last may be shorter): ``ceil(length / block_size)``."""
    return -(-int(length) // int(block_size))


def _target_lp(denoiser, x_t, x0, sigma, positions) -> torch.Tensor:
    """``log p_theta(x0_i | ...)`` at ``positions``, 0 elsewhere (float64 ``[B, L]``)."""
    if isinstance(denoiser, BlockPositional):
        out = torch.zeros(x0.shape, dtype=torch.float64, device=x0.device)
        if bool(positions.any()):
            rows = denoiser.at_positions(x_t, x0, sigma, positions)
            out[positions] = rows.gather(-1, x0[positions][:, None]).squeeze(-1).to(torch.float64)
        return out
    lp = denoiser(x_t, x0, sigma).gather(-1, x0[..., None]).squeeze(-1).to(torch.float64)
    return torch.where(positions, lp, torch.zeros_like(lp))


def block_nelbo_from_uniforms(
    denoiser: BlockDenoiser,
    x0: torch.Tensor,
    score_mask: torch.Tensor,
    t_blocks: torch.Tensor,
    u: torch.Tensor,
    *,
    block_size: int,
    mask_id: int,
    schedule: NoiseSchedule,
) -> torch.Tensor:
    """One draw of the block NELBO per row (float64 ``[B]``): block times ``t_blocks [B, n_blocks]``, masking
    uniforms ``u [B, L]`` (token ``i`` masked iff scored and ``u_i < m(t_{b(i)})``). One denoiser call; the
    network gets ``sigma(t)`` of the first block as the reference passes (ignored when not time-conditioned)."""
    length = x0.shape[1]
    b = torch.arange(length, device=x0.device) // int(block_size)
    t_pos = t_blocks.to(torch.float64)[:, b]
    is_masked = score_mask & (u < schedule.mask_prob(t_pos))
    x_t = torch.where(is_masked, torch.full_like(x0, mask_id), x0)
    lp = _target_lp(denoiser, x_t, x0, schedule.sigma(t_blocks[:, 0].to(torch.float64)), is_masked)
    return -(schedule.masked_weight(t_pos) * lp).sum(dim=-1)


def block_nelbo_mc(
    denoiser: BlockDenoiser,
    x0: torch.Tensor,
    score_mask: torch.Tensor,
    seeds: Sequence[int],
    *,
    block_size: int,
    mask_id: int,
    schedule: NoiseSchedule,
    num_samples: int = 1,
    time_sampling: TimeScheme = "antithetic",
    sampling_eps: float = 1e-3,
    batch_size: int | None = None,
) -> MCEstimate:
    """``num_samples`` draws of the block NELBO per request (module docstring), seeded per request."""
    check_inputs(x0, score_mask, seeds, num_samples)
    r, length = x0.shape
    nb = n_blocks(length, block_size)
    u = draw_uniforms(seeds, num_samples, (nb + length,)).to(x0.device)  # [R, K, nb + L]
    t = times_from_uniforms(u[..., :nb].transpose(1, 2), time_sampling, sampling_eps)  # [R, nb, K]
    t = t.transpose(1, 2).reshape(r * num_samples, nb)
    u_mask = u[..., nb:].reshape(r * num_samples, length)
    x_rep = x0.repeat_interleave(num_samples, dim=0)
    m_rep = score_mask.repeat_interleave(num_samples, dim=0)

    def chunk(s: slice) -> torch.Tensor:
        return block_nelbo_from_uniforms(denoiser, x_rep[s], m_rep[s], t[s], u_mask[s], block_size=block_size,
                                         mask_id=mask_id, schedule=schedule)

    draws = evaluate_in_chunks(chunk, r * num_samples, batch_size).reshape(r, num_samples)
    return summarize(draws, {"estimator": "bd3lm_block_nelbo", "block_size": int(block_size), "mc_samples": num_samples,
                             "time_sampling": time_sampling, "sampling_eps": sampling_eps, "schedule": repr(schedule)},
                     time_sampling)  # draw k lies in stratum k of every block: the stderr of that design (montecarlo.mc_stderr)


def block_ar_nll(denoiser: BlockDenoiser, x0: torch.Tensor, score_mask: torch.Tensor, *, mask_id: int) -> torch.Tensor:
    """Block size 1: ``-sum_{i scored} log p_theta(x0_i | x0_<i)`` (float64 ``[B]``), exact, one denoiser call
    (every scored token masked, weight 1: the reference's ``sampling_eps_min = sampling_eps_max = 1``). The
    denoiser must be read at block size 1."""
    x_t = torch.where(score_mask, torch.full_like(x0, mask_id), x0)
    return -_target_lp(denoiser, x_t, x0, None, score_mask).sum(dim=-1)


def block_greedy_match(denoiser: BlockDenoiser, x0: torch.Tensor, target_mask: torch.Tensor, *, mask_id: int,
                       method: str = "iterative_confidence") -> torch.Tensor:
    """Whether greedy decoding reproduces the targets (bool ``[B]``), every block decoded given the true clean
    past (teacher forcing is exact here: a match needs every earlier block to have come out right).

    ``iterative_confidence``: within each block, repeatedly unmask the most confident masked target with its
    argmax (the decoding of the semi-AR sampler at temperature 0); ``one_shot_argmax``: every target masked at
    once, each the argmax. Implemented with the shared checks of :mod:`dlmbench.diffusion.masked` on the
    concatenated ``[x_t ; x0]`` row (targets only in the first half): a block's prediction depends on its own
    ``x_t`` block and the clean past alone, so picking the most confident position over all blocks at once
    decides each block exactly as decoding the blocks one after another."""
    length = x0.shape[1]

    def cat_denoiser(x_cat: torch.Tensor, sigma: torch.Tensor | None) -> torch.Tensor:
        lp = denoiser(x_cat[:, :length], x_cat[:, length:], None)
        return torch.cat([lp, torch.zeros_like(lp)], dim=1)  # the x0 half holds no target: never read

    x_cat = torch.cat([x0, x0], dim=1)
    t_cat = torch.cat([target_mask, torch.zeros_like(target_mask)], dim=1)
    check = iterative_confidence if method == "iterative_confidence" else one_shot_argmax
    if method not in ("iterative_confidence", "one_shot_argmax"):
        raise ValueError(f"unknown greedy method {method!r}")
    return check(cat_denoiser, x_cat, t_cat, mask_id=mask_id)


__all__ = ["BlockDenoiser", "BlockPositional", "block_ar_nll", "block_greedy_match", "block_nelbo_from_uniforms",
           "block_nelbo_mc", "n_blocks"]
