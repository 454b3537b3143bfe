"""SEDD's diffusion-weighted denoising score entropy (DWDSE) bound, absorbing and uniform graphs.

Source: Lou, Meng & Ermon 2024 (SEDD), Theorem 3.6 / eq. (10); reference ``graph_lib.py``
(``Absorbing.score_entropy``, ``Uniform.score_entropy``) and ``losses.py:get_loss_fn``.

Score-model convention: ``score_fn(x_t, sigma) -> log_score [B, L, dim]`` where
``exp(log_score[b, i, y])`` estimates the concrete score ``p_t(x_t with token i set to y) / p_t(x_t)``
(SEDD's ``model(x, sigma)`` output, after its ``scale_by_sigma`` shift; the entry at ``y = x_t^i`` is
never read here).

For one position with forward rate ``sigma'(t) Q`` and ``r_y = p_{t|0}(y | x0) / p_{t|0}(x_t | x0)``, the
score entropy with its constant (so that it is >= 0 and the bound is a true NLL bound) is

    ent = sum_{y != x_t} Q(y -> x_t) [ s_y - r_y log s_y + K(r_y) ],   K(a) = a (log a - 1),

and the bound per sequence is

    -log p_0(x0) <= int_0^1 dsigma(t) E_{x_t ~ p_{t|0}(.|x0)} [ sum_i ent_i ] dt + KL(p_{1|0}(.|x0) || p_base).

Absorbing graph (``dim = N + 1``, mask = ``N``): only masked positions contribute, ``Q(y -> M) = 1`` for
every real ``y``, and ``r_{x0} = 1/(e^sigma - 1)`` is the only nonzero ratio:
``ent = sum_{y != M} s_y - a log s_{x0} + a (log a - 1)``, ``a = 1/(e^sigma - 1)``.
Uniform graph (``Q = 11^T/dim - I``): every position contributes, with the ratios written out in
:meth:`UniformGraph.score_entropy`.

What the reference reports vs the full bound: SEDD's loss (and MDLM's SEDD port, and RADD) average the
integrand over ``t ~ U[eps, 1]`` with ``eps = 1e-3``, i.e. ``1/(1-eps) int_eps^1``, and drop the prior
term. The full bound is ``int_0^1`` (sample with ``sampling_eps=0``) plus :func:`sedd_prior_kl`. For the
absorbing graph with the log-linear schedule and ``eps > 0`` a fraction ``eps`` of tokens is still unmasked
at ``t = 1``, so ``KL(p_{1|0} || all-mask) = +inf``: the finite numbers in the papers are the integral
alone (SEDD ``losses.py:get_loss_fn``, MDLM ``diffusion.py:_sample_t`` and RADD ``losses.py`` add no prior
term).

Monte Carlo (:func:`sedd_bound_mc`): ``K`` draws per request, draw ``k`` at ``t_k = (1 - eps) v_k + eps`` with
``x_t ~ p_{t_k|0}`` and value ``dsigma(t_k) sum_i ent_i``; the ``v_k`` are coupled by ``time_sampling``
(default ``antithetic``: one uniform per stratum ``[k/K, (k+1)/K)``, as MDLM evaluated SEDD; ``iid`` is SEDD's
own ``get_loss_fn``). The network is time-conditioned, so ``t`` cannot be integrated out as for MDLM. The
standard error is :func:`~dlmbench.diffusion.montecarlo.mc_stderr` (collapsed strata for stratified draws).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Union

import torch

from dlmbench.diffusion.schedules import NoiseSchedule
from dlmbench.diffusion.masked import PositionalDenoiser
from dlmbench.diffusion.montecarlo import MCEstimate, check_inputs, draw_uniforms, evaluate_in_chunks, summarize
from dlmbench.diffusion.timesteps import TimeScheme, times_from_uniforms

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``score_fn(x_t [B, L] int64, sigma [B]) -> log concrete score [B, L, dim]``."""


def _a(sigma: torch.Tensor) -> torch.Tensor:
    """``1 / (e^sigma - 1)`` in float64 (SEDD: ``ratio = 1 / esigm1``)."""
    return 1.0 / torch.expm1(sigma.to(torch.float64))


@dataclass(frozen=True)
class AbsorbingGraph:
    """SEDD ``Absorbing(tokens)``: ``num_tokens`` real tokens plus the absorbing state ``M = num_tokens``."""

    num_tokens: int

    @property
    def dim(self) -> int:
        return self.num_tokens + 1

    @property
    def mask_id(self) -> int:
        return self.num_tokens

    def perturb(
        self, x0: torch.Tensor, score_mask: torch.Tensor, sigma: torch.Tensor, u_move: torch.Tensor, u_token: torch.Tensor
    ) -> torch.Tensor:
        """``x_t ~ p_{t|0}``: a scored token becomes ``M`` with probability ``1 - e^{-sigma}``."""
        move = score_mask & (u_move < -torch.expm1(-sigma.to(torch.float64))[:, None])
        return torch.where(move, torch.full_like(x0, self.mask_id), x0)

    def score_entropy(
        self, log_score: torch.Tensor, sigma: torch.Tensor, x_t: torch.Tensor, x0: torch.Tensor
    ) -> torch.Tensor:
        """Per-position score entropy ``[B, L]`` float64 (0 at unmasked positions)."""
        masked = x_t == self.mask_id
        a = _a(sigma)[:, None]
        # positive term: sum over real tokens (mask column excluded) of exp(log s). logsumexp in the input's
        # precision raised to at least float32 (a float64 copy of [B, L, 50258] would cost too much memory)
        real = log_score[..., : self.num_tokens]
        if real.dtype not in (torch.float32, torch.float64):
            real = real.float()
        pos = torch.logsumexp(real, dim=-1).to(torch.float64).exp()
        log_s_x0 = log_score.gather(-1, x0[..., None]).squeeze(-1).to(torch.float64)
        ent = pos - a * log_s_x0 + a * (torch.log(a) - 1.0)
        return torch.where(masked, ent, torch.zeros_like(ent))

    def prior_kl(self, x0: torch.Tensor, sigma_max: torch.Tensor) -> torch.Tensor:
        """Per-position ``KL(p_{1|0}(.|x0_i) || delta_M)``: 0 if ``e^{-sigma_max} == 0``, else ``+inf``."""
        alpha = torch.exp(-sigma_max.to(torch.float64))[:, None].expand(x0.shape)
        return torch.where(alpha > 0, torch.full_like(alpha, float("inf")), torch.zeros_like(alpha))


@dataclass(frozen=True)
class UniformGraph:
    """SEDD ``Uniform(dim)``: rate ``Q = 11^T / dim - I``; stay probability ``e^{-sigma} + (1 - e^{-sigma}) / dim``."""

    dim: int

    def perturb(
        self, x0: torch.Tensor, score_mask: torch.Tensor, sigma: torch.Tensor, u_move: torch.Tensor, u_token: torch.Tensor
    ) -> torch.Tensor:
        """With probability ``1 - e^{-sigma}`` a scored token is replaced by a uniform draw over all ``dim``
        tokens (possibly itself), as in SEDD ``Uniform.sample_transition``."""
        move = score_mask & (u_move < -torch.expm1(-sigma.to(torch.float64))[:, None])
        new = torch.clamp((u_token * self.dim).long(), max=self.dim - 1)
        return torch.where(move, new, x0)

    def score_entropy(
        self, log_score: torch.Tensor, sigma: torch.Tensor, x_t: torch.Tensor, x0: torch.Tensor
    ) -> torch.Tensor:
        """Per-position score entropy ``[B, L]`` float64.

        With ``e = e^sigma - 1`` and ``rho = e / (e + dim)``: if ``x_t = x0`` every ``r_y = rho``; otherwise
        ``r_{x0} = 1/rho`` and ``r_y = 1`` for the other ``y``. Each neighbour has rate ``1/dim``.
        """
        v = self.dim
        ls = log_score.to(torch.float64)
        e = torch.expm1(sigma.to(torch.float64))[:, None]
        rho = e / (e + v)
        ls_x = ls.gather(-1, x_t[..., None]).squeeze(-1)
        ls_x0 = ls.gather(-1, x0[..., None]).squeeze(-1)
        same = x_t == x0
        pos = (ls.exp().sum(dim=-1) - ls_x.exp()) / v  # (1/dim) sum_{y != x_t} s_y
        sum_other = (ls.sum(dim=-1) - ls_x) / v  # (1/dim) sum_{y != x_t} log s_y
        # (1/dim) sum_{y != x_t} r_y log s_y; when moved, r_{x0}/dim = 1/dim + 1/e
        neg = torch.where(same, rho * sum_other, sum_other + ls_x0 / e)

        def k(r: torch.Tensor) -> torch.Tensor:
            return r * (torch.log(r) - 1.0)

        const = torch.where(same, (v - 1) / v * k(rho), (k(1.0 / rho) + (v - 2) * k(torch.ones_like(rho))) / v)
        return pos - neg + const

    def prior_kl(self, x0: torch.Tensor, sigma_max: torch.Tensor) -> torch.Tensor:
        """Per-position ``KL(p_{1|0}(.|x0_i) || Uniform(dim))``."""
        v = self.dim
        alpha = torch.exp(-sigma_max.to(torch.float64))[:, None].expand(x0.shape)
        off = (1.0 - alpha) / v
        stay = alpha + off
        off_term = torch.where(off > 0, (v - 1) * off * torch.log(off * v), torch.zeros_like(off))
        return stay * torch.log(stay * v) + off_term


Graph = Union[AbsorbingGraph, UniformGraph]


def sedd_bound(
    score_fn: ScoreFn,
    x0: torch.Tensor,
    score_mask: torch.Tensor,
    t: torch.Tensor,
    generator: torch.Generator,
    *,
    graph: Graph,
    schedule: NoiseSchedule,
) -> torch.Tensor:
    """One-sample DWDSE integrand per sequence at times ``t [B]``: ``dsigma(t) sum_{i in score_mask} ent_i``
    (float64 ``[B]``, nats); positions outside ``score_mask`` stay clean and are not scored."""
    u = torch.rand((2, *x0.shape), generator=generator, dtype=torch.float64, device=generator.device).to(x0.device)
    return _sedd_from_uniforms(score_fn, x0, score_mask, t.to(torch.float64).to(x0.device), u[0], u[1], graph=graph, schedule=schedule)


def _sedd_from_uniforms(
    score_fn: ScoreFn,
    x0: torch.Tensor,
    score_mask: torch.Tensor,
    t: torch.Tensor,
    u_move: torch.Tensor,
    u_token: torch.Tensor,
    *,
    graph: Graph,
    schedule: NoiseSchedule,
) -> torch.Tensor:
    sigma, dsigma = schedule.sigma(t), schedule.dsigma(t)
    x_t = graph.perturb(x0, score_mask, sigma, u_move, u_token)
    if isinstance(score_fn, PositionalDenoiser) and isinstance(graph, AbsorbingGraph):
        ent = _absorbing_entropy_at_masked_rows(score_fn, graph, sigma, x_t, x0)
    else:
        ent = graph.score_entropy(score_fn(x_t, sigma), sigma, x_t, x0)
    ent = torch.where(score_mask, ent, torch.zeros_like(ent))
    return dsigma.to(torch.float64) * ent.sum(dim=-1)


def _absorbing_entropy_at_masked_rows(score_fn: PositionalDenoiser, graph: AbsorbingGraph, sigma: torch.Tensor,
                                      x_t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """The absorbing graph's score entropy ``[B, L]``, computed from the log score at masked positions only
    (``score_fn.at_positions -> [N, V]``): the entropy is 0 at every other position, and each masked position
    is its own ``[1, 1]`` sequence at its row's ``sigma`` for :meth:`AbsorbingGraph.score_entropy`."""
    masked = x_t == graph.mask_id
    ent = torch.zeros(x0.shape, dtype=torch.float64, device=x0.device)
    if bool(masked.any()):
        rows = score_fn.at_positions(x_t, sigma, masked)
        row_sigma = sigma[masked.nonzero(as_tuple=True)[0]]
        ent[masked] = graph.score_entropy(rows[:, None], row_sigma, x_t[masked][:, None], x0[masked][:, None])[:, 0]
    return ent


def sedd_prior_kl(
    x0: torch.Tensor, score_mask: torch.Tensor, *, graph: Graph, schedule: NoiseSchedule
) -> torch.Tensor:
    """Prior term ``sum_{i in score_mask} KL(p_{1|0}(.|x0_i) || p_base)`` per sequence (float64 ``[B]``).

    Not part of the reference numbers; ``+inf`` for the absorbing graph when ``sigma(1)`` is finite.
    """
    sigma1 = schedule.sigma(torch.ones(x0.shape[0], dtype=torch.float64, device=x0.device))
    kl = graph.prior_kl(x0, sigma1)
    return torch.where(score_mask, kl, torch.zeros_like(kl)).sum(dim=-1)


def sedd_bound_mc(
    score_fn: ScoreFn,
    x0: torch.Tensor,
    score_mask: torch.Tensor,
    seeds: Sequence[int],
    *,
    graph: Graph,
    schedule: NoiseSchedule,
    num_samples: int = 1,
    time_sampling: TimeScheme = "antithetic",
    sampling_eps: float = 1e-3,
    batch_size: int | None = None,
) -> MCEstimate:
    """``num_samples`` draws of :func:`sedd_bound` per request, seeded per request (see ``montecarlo``):

        estimate = (1/K) sum_k dsigma(t_k) sum_{i scored} ent_i(x_t_k),   x_t_k ~ p_{t_k|0}(. | x0),

    ``t_k = (1 - eps) v_k + eps`` with the ``v_k`` of one request coupled by ``time_sampling``
    (:func:`~dlmbench.diffusion.timesteps.times_from_uniforms`). Default ``antithetic`` (one uniform per stratum
    ``[k/K, (k+1)/K)``, MDLM's scheme, which MDLM's SEDD baseline also used); ``iid`` is SEDD's own
    ``losses.py:get_loss_fn``. Same expectation either way. Standard error: collapsed strata for
    ``antithetic``/``stratified``, the i.i.d. formula for ``iid``/``systematic``
    (:func:`~dlmbench.diffusion.montecarlo.mc_stderr`). The prior term is not included (see :func:`sedd_prior_kl`).
    """
    check_inputs(x0, score_mask, seeds, num_samples)
    r, length = x0.shape
    u = draw_uniforms(seeds, num_samples, (1 + 2 * length,)).to(x0.device)  # [R, K, 1 + 2L]
    t = times_from_uniforms(u[..., 0], time_sampling, sampling_eps).reshape(-1)
    u_move = u[..., 1 : 1 + length].reshape(r * num_samples, length)
    u_token = u[..., 1 + length :].reshape(r * num_samples, length)
    x_rep = x0.repeat_interleave(num_samples, dim=0)
    m_rep = score_mask.repeat_interleave(num_samples, dim=0)

    def chunk(s: slice) -> torch.Tensor:
        return _sedd_from_uniforms(
            score_fn, x_rep[s], m_rep[s], t[s], u_move[s], u_token[s], graph=graph, schedule=schedule
        )

    draws = evaluate_in_chunks(chunk, r * num_samples, batch_size).reshape(r, num_samples)
    settings = {
        "estimator": "sedd_dwdse",
        "graph": type(graph).__name__,
        "mc_samples": num_samples,
        "time_sampling": time_sampling,
        "sampling_eps": sampling_eps,
        "schedule": repr(schedule),
        "prior_term": "excluded",
    }
    return summarize(draws, settings, time_sampling)
