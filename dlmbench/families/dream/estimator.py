"""Dream's masked-diffusion bound with its shifted-logit convention: pure functions.

**Shifted logits** (``modeling_dream.py`` callers: ``generation_utils.py:_sample`` and the lm-eval harness
``eval/eval.py:Dream.get_logits`` of HKUNLP/Dream): Dream was initialised from an autoregressive model and keeps its
habit, the network output at position ``i - 1`` is the prediction of token ``i``:

    logits_used = cat(logits[:, :1], logits[:, :-1])        (position 0 reads its own output)

so ``log p_θ(x0_i | x_t) = log_softmax(f_θ(x_t)_{max(i-1, 0)})[x0_i]`` (:func:`shift_logits`,
:func:`source_positions`). Dream's own evaluation never scores position 0 (it prepends BOS and keeps it clean).

**Bound** (``eval/eval.py:Dream._forward_process`` / ``_eval_target_nll_mc``; the continuous-time masked
diffusion ELBO with the linear schedule, Shi et al. 2024 / Sahoo et al. 2024, as LLaDA and SMDM): with ``T`` scored
tokens (the continuation; the context stays clean),

    NELBO(x0) = E_{t ~ U[ε, 1]} E_{x_t} [ Σ_{i scored, masked} −(1/t) log p_θ(x0_i | x_t) ],

each scored token masked independently with probability ``t``; the reference draws ``t = (1 − ε) u + ε``,
``ε = sampling_eps = 1e-3``, with ``u = (u₀ + k/B) mod 1`` across a batch (systematic). This is the MDLM NELBO of
:mod:`dlmbench.diffusion.masked` with the log-linear schedule at ``noise_eps = 0`` (masking probability ``t``, weight
``w(t) = 1/t``), so the Monte Carlo estimators there are reused on the shifted denoiser:

- ``t_estimator: sampled`` (Dream's own): :func:`~dlmbench.diffusion.masked.mdlm_nelbo_mc`, one ``t`` per draw, the
  ``K`` draws of a request coupled by ``time_sampling`` (``stratified``: one uniform per stratum ``[k/K, (k+1)/K)``,
  collapsed-strata stderr; ``systematic``: one shared offset, the reference's design; ``iid``);
- ``t_estimator: integrated``: :func:`~dlmbench.diffusion.masked.mdlm_nelbo_integrated_mc`, ``t`` integrated out given
  the number of masked tokens (Dream is not time-conditioned), the same expectation with less variance.

Every draw is seeded per request (:mod:`dlmbench.diffusion.montecarlo`). With ``ε = 0`` and an exact denoiser the
bound equals ``−log p(x0 | context)`` (any-order autoregressive identity); it is an upper bound for any denoiser.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch

from dlmbench.diffusion.masked import PositionalDenoiser, mdlm_nelbo_integrated_mc, mdlm_nelbo_mc
from dlmbench.diffusion.montecarlo import MCEstimate
from dlmbench.diffusion.schedules import LogLinearNoise
from dlmbench.diffusion.timesteps import TimeScheme

TEstimator = Literal["sampled", "integrated"]
LINEAR = LogLinearNoise(0.0)  # masking probability t, masked weight 1/t (Dream's p_mask and 1/p_mask)


def shift_logits(logits: torch.Tensor) -> torch.Tensor:
    """``cat(logits[:, :1], logits[:, :-1])`` along the sequence axis (dim 1): row ``i`` holds the output at ``i − 1``."""
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


def source_positions(positions: torch.Tensor) -> torch.Tensor:
    """For bool ``positions [B, L]``, the flat row indices ``b·L + max(i − 1, 0)`` of the outputs that predict them,
    in the order of ``positions.nonzero()`` (so :func:`shift_logits` never needs all ``L`` logits)."""
    b, i = positions.nonzero(as_tuple=True)
    return b * positions.shape[1] + (i - 1).clamp(min=0)


def shifted_denoiser(hidden: Callable[[torch.Tensor], torch.Tensor], head: Callable[[torch.Tensor], torch.Tensor],
                     log_softmax: Callable[[torch.Tensor], torch.Tensor]) -> PositionalDenoiser:
    """A :class:`~dlmbench.diffusion.masked.PositionalDenoiser` over Dream's network read with shifted logits.

    ``hidden(x_t) -> [B, L, D]`` and ``head(h) -> logits`` are the two halves of the network;
    ``log_softmax(logits)`` normalises (the adapter's choice of dtype). ``full`` gives ``[B, L, V]``; ``at_positions``
    applies the head only to the ``N`` rows that predict the chosen positions (``[N, V]``)."""

    def full(x_t: torch.Tensor, _sigma) -> torch.Tensor:
        return log_softmax(shift_logits(head(hidden(x_t))))

    def at_positions(x_t: torch.Tensor, _sigma, positions: torch.Tensor) -> torch.Tensor:
        h = hidden(x_t)
        return log_softmax(head(h.reshape(-1, h.shape[-1])[source_positions(positions)]))

    return PositionalDenoiser(full, at_positions)


def dream_bound_mc(denoiser, x0: torch.Tensor, score_mask: torch.Tensor, seeds: Sequence[int], *, mask_id: int,
                   num_samples: int = 128, time_sampling: TimeScheme = "stratified", sampling_eps: float = 1e-3,
                   t_estimator: TEstimator = "sampled", batch_size: int | None = None) -> MCEstimate:
    """Per-request Monte Carlo estimate (mean, stderr, draws) of Dream's NELBO of ``x0[score_mask]`` given the rest
    (module docstring). ``denoiser(x_t, sigma) -> log p_θ(x0 | x_t)`` must already apply the shift
    (:func:`shifted_denoiser`). ``x0``/``score_mask`` ``[R, L]``; ``seeds[r]`` request ``r``'s seed."""
    fn = mdlm_nelbo_mc if t_estimator == "sampled" else mdlm_nelbo_integrated_mc
    est = fn(denoiser, x0, score_mask, seeds, mask_id=mask_id, schedule=LINEAR, num_samples=num_samples,
             time_sampling=time_sampling, sampling_eps=sampling_eps, batch_size=batch_size)
    settings = {**est.settings, "estimator": "dream_nelbo", "logits": "shifted", "mask_prob": "t", "weight": "1/t"}
    settings.pop("schedule", None)
    return MCEstimate(est.mean, est.stderr, est.draws, settings)


__all__ = ["LINEAR", "TEstimator", "dream_bound_mc", "shift_logits", "shifted_denoiser", "source_positions"]
