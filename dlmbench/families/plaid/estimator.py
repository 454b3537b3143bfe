"""Plaid's continuous-time variational bound (VDM; Kingma et al. 2021, Plaid paper Eqs. 3–5), pure functions.

For a sequence of tokens ``x`` with unit-norm embeddings ``x̃_i = E[x_i]`` and ``z_t = α_t x̃ + σ_t ε``
(``α_t² = sigmoid(−γ_t)``, ``σ_t² = sigmoid(γ_t)``, ``SNR(t) = exp(−γ_t)``)::

    −log p(x) ≤ Σ_i [ KL(q(z_1,i | x_i) ‖ N(0, I))                                 prior
                      + E_{z_0}[−log p(x_i | z_0)]                                   reconstruction (t = 0, γ = γ_0)
                      + ∫_0^1 E_{z_t}[−½ SNR′(t) ‖x̃_i − x̂_θ(z_t)_i‖²] dt ]          diffusion

with ``SNR′(t) = −exp(−γ_t) γ′_t``. Reference: ``igul222/plaid train.py: forward(x_eval=...)``:
``prior_loss = gaussian_kl(α_1 x̃, σ_1, 0, 1).sum(d)``, ``reconst_loss = cross_entropy(logits(z_0), x)``,
``diffusion_loss = −½ · snr_prime · Σ_d (x̃ − x̂)²``, each averaged over positions there (summed here, so a
sequence's value is its NLL bound in nats). ``x̂_θ`` is always the self-conditioned network (two passes, the
second fed the first pass's ``x̂``: "during held-out likelihood evaluation, we always unroll", paper §3.5).

Monte Carlo. The reference evaluation (``train.py: forward(x_eval=X)`` via ``compute_nll``, ``val_batch_size``
64) spends the rows of a batch of ``B`` *different* sequences as follows: the first ``reconst_bs = B // 8`` rows
(plus one with probability ``(B mod 8) / 8``) at ``t = 0`` give the reconstruction term, weighted
``1 / (B / 8)``; the other rows get low-discrepancy times ``t_j = (j + u) / (B − reconst_bs)`` with **one**
shared ``u ~ U(0, 1)`` and give the diffusion term, weighted ``1 / (B − B / 8)``; the prior is exact. Its
estimate is a corpus average. Here the same design is applied to the ``K`` draws of *one* request (so a
request's number does not depend on its batch), ``time_sampling``:

``stratified`` (default; = ``antithetic``)  ``n_rec =`` :func:`reconst_rows` ``(K, p)`` reconstruction rows
    (``round(K p)`` clamped to ``[2, K − 2]``; 4 of 32 at ``p = 1/8``) and ``n_diff = K − n_rec`` diffusion rows
    at ``t_j = (j + u_j) / n_diff``, one uniform per stratum:

        estimate = Σ_i prior_i + (1/n_rec) Σ_{rec rows} Σ_i reconst_i + (1/n_diff) Σ_j Σ_i diffusion_i(t_j),

    unbiased for the bound (each stratum mean averages to ``∫_0^1``). Standard error
    ``sqrt(s²_rec / n_rec + v_diff)``: the i.i.d. formula for the reconstruction rows and the collapsed-strata
    estimate (pairs of adjacent strata, conservative; :mod:`dlmbench.diffusion.montecarlo`) for the diffusion rows.
``systematic``  the reference's shape: the same rows, diffusion times ``(j + u) / n_diff`` with one shared ``u``;
    i.i.d. formula on each part (no design-unbiased estimator exists for one systematic sample).
``iid``  (and any scheme when ``K < 4``) each draw is the reconstruction row with probability ``p = reconst_prob``
    and counts ``reconst / p + prior``, else ``t ~ U(0, 1)`` and it counts ``diffusion(t) / (1 − p) + prior``: an
    unbiased single-draw estimate, i.i.d. standard error. The random choice of term adds the spread between
    the two weighted terms to every draw, which is why this design needs many more draws for the same error.

Draw ``k`` of a request with seed ``s`` uses only :func:`~dlmbench.diffusion.montecarlo.draw_generator` ``(s, k)``
(two uniforms, then ``ε``, float64; :func:`draw_randomness`); the fixed designs read its second uniform as the
stratum's (or, for ``systematic``, the first diffusion row's as the shared) offset.

Conditional bound (``score_mask``): all positions are noised at the same ``t`` and only the scored positions'
terms are summed. This is an upper bound on ``−log p̃(x_scored | x_rest)`` for the *replacement* conditional
model ``p̃`` whose reverse step for the scored latents uses the network fed context latents drawn afresh from
``q(z_t | x_rest)`` (each reverse transition is a mixture over the context noise; KL convexity / Jensen makes
the per-step KL at most the average computed here). The context is therefore *noised*, not clean: Plaid's
network takes one γ for all positions and the reference has no clean-context likelihood. With an empty context
it is exactly the reference bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import torch

import numpy as np

from dlmbench.diffusion.montecarlo import (
    STRATIFIED_SCHEMES,
    MCEstimate,
    check_inputs,
    collapsed_strata_variance,
    draw_generator,
    evaluate_in_chunks,
    iid_variance,
    stderr_method,
    summarize,
)
from dlmbench.diffusion.timesteps import TimeScheme, times_from_uniforms

RECONST_PROB = 1.0 / 8.0
"""``train.py`` eval: ``reconst_bs = batch_size // 8 + Bernoulli((batch_size % 8) / 8)`` with batch size 1."""


class PlaidNetwork(Protocol):
    """What the bound needs from a Plaid model (:class:`~dlmbench.families.plaid.backbone.PlaidModules`)."""

    def gamma(self, t: torch.Tensor) -> torch.Tensor: ...  # float64 [n]

    def gamma_prime(self, t: torch.Tensor) -> torch.Tensor: ...  # float64 [n]

    def gamma_bounds(self) -> tuple[torch.Tensor, torch.Tensor]: ...  # (γ_0, γ_1), float64 scalars

    def embeddings(self) -> torch.Tensor: ...  # [V, d_e], unit rows

    def denoise(self, z: torch.Tensor, gamma: torch.Tensor, x_selfcond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


# ----------------------------------------------------------------------------------------------------
# The three terms (per position, float64)
# ----------------------------------------------------------------------------------------------------


def alpha_sigma(gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``α = sqrt(sigmoid(−γ))``, ``σ = sqrt(sigmoid(γ))`` (variance preserving: ``α² + σ² = 1``)."""
    gamma = gamma.double()
    return torch.sigmoid(-gamma).sqrt(), torch.sigmoid(gamma).sqrt()


def prior_kl(x_embed: torch.Tensor, gamma_1: torch.Tensor) -> torch.Tensor:
    """``Σ_d KL(N(α_1 x̃_d, σ_1²) ‖ N(0, 1)) = Σ_d [½(α_1² x̃_d² + σ_1² − 1) − log σ_1]`` over the last axis."""
    a1, s1 = alpha_sigma(gamma_1)
    x = x_embed.double()
    return (0.5 * (a1**2 * x**2 + s1**2 - 1.0) - torch.log(s1)).sum(-1)


def snr_prime(gamma: torch.Tensor, gamma_prime: torch.Tensor) -> torch.Tensor:
    """``d/dt exp(−γ_t) = −exp(−γ_t) γ′_t`` (negative: the SNR decreases with ``t``)."""
    return -torch.exp(-gamma.double()) * gamma_prime.double()


def diffusion_integrand(x_embed: torch.Tensor, x_hat: torch.Tensor, gamma: torch.Tensor, gamma_prime: torch.Tensor) -> torch.Tensor:
    """``−½ SNR′(t) ‖x̃_i − x̂_i‖²`` per position: ``x_embed, x_hat [B, L, d_e]``, ``gamma, gamma_prime [B]`` → ``[B, L]``."""
    sq = (x_embed.double() - x_hat.double()).pow(2).sum(-1)
    return -0.5 * snr_prime(gamma, gamma_prime)[:, None] * sq


def reconstruction_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``−log softmax(logits)[x_i]`` per position (``lib/ops.py: cross_entropy``: float32 log-softmax, then
    ``.double()``), returned as float64 ``[B, L]``; computed as ``logsumexp − logit`` so no ``[B, L, V]`` copy is made."""
    logits = logits.float()
    return (torch.logsumexp(logits, dim=-1) - logits.gather(-1, x[..., None]).squeeze(-1)).double()


def noised_latent(x_embed: torch.Tensor, gamma: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """``z_t = α_t x̃ + σ_t ε`` (float64), ``gamma [B]``."""
    a, s = alpha_sigma(gamma)
    return a[:, None, None] * x_embed.double() + s[:, None, None] * eps.double()


def selfcond_denoise(net: PlaidNetwork, z: torch.Tensor, gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluation-time network: a first pass with ``x_sc = 0`` and a second fed its ``x̂`` (``train.py``)."""
    z32 = z.to(torch.float32)
    _, x_sc = net.denoise(z32, gamma, torch.zeros_like(z32))
    return net.denoise(z32, gamma, x_sc)


# ----------------------------------------------------------------------------------------------------
# One Monte Carlo draw per row
# ----------------------------------------------------------------------------------------------------


def vlb_terms(net: PlaidNetwork, x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-position terms for rows ``x [B, L]`` at times ``t [B]`` with noise ``eps [B, L, d_e]`` (float64):

    ``prior [B, L]``; ``diffusion [B, L]`` (the integrand at ``t``); ``reconst [B, L]`` (the CE at ``γ_0``,
    using the same ``eps``). Costs four network passes; the MC estimator computes only what a draw needs.
    """
    emb = net.embeddings()
    x_embed = emb[x].double()
    g0, g1 = net.gamma_bounds()
    gamma = net.gamma(t.double())
    _, x_hat = selfcond_denoise(net, noised_latent(x_embed, gamma, eps), gamma)
    gamma0 = g0.expand(x.shape[0]).double()
    logits0, _ = selfcond_denoise(net, noised_latent(x_embed, gamma0, eps), gamma0)
    return {
        "prior": prior_kl(x_embed, g1),
        "diffusion": diffusion_integrand(x_embed, x_hat, gamma, net.gamma_prime(t.double())),
        "reconst": reconstruction_nll(logits0, x),
    }


def vlb_draw(
    net: PlaidNetwork,
    x: torch.Tensor,
    score_mask: torch.Tensor,
    is_reconst: torch.Tensor,
    t: torch.Tensor,
    eps: torch.Tensor,
    reconst_prob: float = RECONST_PROB,
) -> torch.Tensor:
    """One unbiased draw of the bound per row (float64 ``[B]``), summed over ``score_mask``:

    ``Σ_i prior_i + (reconst_i / p  if is_reconst  else  diffusion_i(t) / (1 − p))``.
    Rows with ``is_reconst`` are evaluated at ``t = 0`` (``γ = γ_0``), the others at their ``t``.
    """
    if not 0.0 < reconst_prob < 1.0:
        raise ValueError("reconst_prob must be in (0, 1)")
    emb = net.embeddings()
    x_embed = emb[x].double()
    g0, g1 = net.gamma_bounds()
    t = torch.where(is_reconst, torch.zeros_like(t, dtype=torch.float64), t.double())
    gamma = torch.where(is_reconst, g0.double().expand_as(t), net.gamma(t))
    logits, x_hat = selfcond_denoise(net, noised_latent(x_embed, gamma, eps), gamma)
    w = score_mask.double()
    prior = (prior_kl(x_embed, g1) * w).sum(-1)
    diff = (diffusion_integrand(x_embed, x_hat, gamma, net.gamma_prime(t)) * w).sum(-1)
    rec = (reconstruction_nll(logits, x) * w).sum(-1)
    return prior + torch.where(is_reconst, rec / reconst_prob, diff / (1.0 - reconst_prob))


def draw_randomness(seed: int, k: int, length: int, embed_dim: int, reconst_prob: float = RECONST_PROB) -> tuple[bool, float, torch.Tensor]:
    """``(is_reconst, t, ε [L, d_e])`` of draw ``k`` of the request with seed ``seed`` (float64, CPU)."""
    g = draw_generator(seed, k)
    u = torch.rand(2, dtype=torch.float64, generator=g)
    eps = torch.randn((length, embed_dim), dtype=torch.float64, generator=g)
    return bool(u[0] < reconst_prob), float(u[1]), eps


def reconst_rows(num_samples: int, reconst_prob: float = RECONST_PROB) -> int:
    """Rows of a request's ``K`` draws that estimate the reconstruction term under a fixed design:
    ``floor(K p + 1/2)`` clamped to ``[2, K - 2]`` (two rows at least on each side, so both parts have a standard
    error); needs ``K >= 4``. ``K = 32``, ``p = 1/8``: 4 rows, as the reference's ``val_batch_size // 8``."""
    if num_samples < 4:
        raise ValueError("a fixed reconstruction/diffusion split needs at least 4 draws")
    return int(min(max(2, math.floor(num_samples * reconst_prob + 0.5)), num_samples - 2))


def plaid_vlb_mc(
    net: PlaidNetwork,
    x0: torch.Tensor,
    score_mask: torch.Tensor,
    seeds: Sequence[int],
    *,
    num_samples: int,
    batch_size: int | None = None,
    reconst_prob: float = RECONST_PROB,
    time_sampling: TimeScheme = "stratified",
) -> MCEstimate:
    """Per-request MC estimate of the bound on ``−log p(x0[score_mask] | rest)`` (nats) with its stderr.

    ``x0, score_mask [R, L]``; ``num_samples`` draws per request; ``batch_size`` rows (request × draw) per
    network call (two passes each, self-conditioning). The design (module docstring, "Monte Carlo"):

    - ``stratified`` / ``antithetic`` (default) and ``systematic``, when ``K >= 4``: the first
      ``n_rec =`` :func:`reconst_rows` draws are reconstruction rows (``t = 0``), the other ``n_diff = K − n_rec``
      are diffusion rows whose times are coupled by the scheme over ``[0, 1)``
      (:func:`~dlmbench.diffusion.timesteps.times_from_uniforms` with ``eps = 0``; ``systematic`` is the
      reference evaluation's one shared offset). Estimate ``Σ prior + mean_rec(reconst) + mean_diff(diffusion(t))``;
      variance ``s²_rec / n_rec + v_diff`` with ``v_diff`` the collapsed-strata estimate (``stratified``) or
      ``s²_diff / n_diff`` (``systematic``) (:mod:`dlmbench.diffusion.montecarlo`).
    - ``iid``, and any scheme when ``K < 4``: each draw is the reconstruction row with probability ``p``
      (weight ``1/p``), else a diffusion row at ``t ~ U(0, 1)`` (weight ``1/(1 − p)``); i.i.d. stderr. The settings
      record the scheme actually used.
    """
    check_inputs(x0, score_mask, seeds, num_samples)
    r, length = x0.shape
    k_all = int(num_samples)
    dev = x0.device
    embed_dim = int(net.embeddings().shape[1])
    scheme = time_sampling if k_all >= 4 else "iid"
    draws = [draw_randomness(s, k, length, embed_dim, reconst_prob) for s in seeds for k in range(k_all)]
    eps = torch.stack([d[2] for d in draws]).to(dev)
    u_t = torch.tensor([d[1] for d in draws], dtype=torch.float64).view(r, k_all)
    settings = {"estimator": "plaid_vlb", "mc_samples": k_all, "reconst_prob": float(reconst_prob),
                "time_sampling": scheme, "selfcond": "unrolled", "context": "noised (replacement bound)"}
    if scheme == "iid":
        is_rec = torch.tensor([d[0] for d in draws], device=dev)
        t = u_t.reshape(-1).to(dev)
        p_row = float(reconst_prob)
    else:
        n_rec = reconst_rows(k_all, reconst_prob)
        is_rec = (torch.arange(k_all) < n_rec).repeat(r).to(dev)
        t = torch.zeros(r, k_all, dtype=torch.float64)
        t[:, n_rec:] = times_from_uniforms(u_t[:, n_rec:], scheme, 0.0)
        t = t.reshape(-1).to(dev)
        p_row = n_rec / k_all  # weights K / n_rec and K / n_diff: the mean of the K draws is the estimate
        settings["reconst_rows"] = n_rec
    rows = x0.repeat_interleave(k_all, dim=0)
    masks = score_mask.repeat_interleave(k_all, dim=0)

    def fn(sl: slice) -> torch.Tensor:
        return vlb_draw(net, rows[sl], masks[sl], is_rec[sl], t[sl], eps[sl], p_row).cpu()

    values = evaluate_in_chunks(fn, r * k_all, batch_size).view(r, k_all)
    if scheme == "iid":
        return summarize(values, settings, "iid")
    est = summarize(values, settings, "iid")  # mean; the stderr is replaced by the design's below
    y = est.draws
    var = (n_rec / k_all) ** 2 * iid_variance(y[:, :n_rec]) + ((k_all - n_rec) / k_all) ** 2 * (
        collapsed_strata_variance(y[:, n_rec:]) if scheme in STRATIFIED_SCHEMES else iid_variance(y[:, n_rec:]))
    settings["stderr"] = f"reconstruction rows: iid; diffusion rows: {stderr_method(scheme)}"
    return MCEstimate(mean=est.mean, stderr=np.sqrt(var), draws=y, settings=settings)


__all__ = [
    "PlaidNetwork",
    "RECONST_PROB",
    "alpha_sigma",
    "diffusion_integrand",
    "draw_randomness",
    "noised_latent",
    "plaid_vlb_mc",
    "prior_kl",
    "reconst_rows",
    "reconstruction_nll",
    "selfcond_denoise",
    "snr_prime",
    "vlb_draw",
    "vlb_terms",
]
