"""One readable training loop for every family; the loss is the family's own bound from the estimators.

For a batch ``x [B, L]`` of equal-length rows ``[BOS, w_1 .. w_{L-1}]`` (BOS is never scored, as in the
``kjv`` task), the loss is a per-token average in nats of

* ``ar``    cross-entropy ``-sum_i log p(w_i | w_<i)`` (exact NLL);
* ``mdlm``  the continuous-time NELBO :func:`~dlmbench.diffusion.masked.mdlm_nelbo` with MDLM's SUBS
            log-probs, ``t`` stratified over the batch ("antithetic", as MDLM trains), log-linear schedule;
* ``sedd``  the score-entropy (DWDSE) integrand :func:`~dlmbench.families.sedd.estimator.sedd_bound`
            on the absorbing graph with SEDD's ``scale_by_sigma`` log score, ``t`` i.i.d. (SEDD's loss);
* ``llada`` LLaDA's bound :func:`~dlmbench.diffusion.masked.llada_bound`: ``l ~ U{1..T}`` tokens masked,
            masked cross-entropy weighted by ``T / l``;
* ``plaid`` Plaid's training loss (``igul222/plaid train.py``), built from the VLB terms of
            :mod:`dlmbench.families.plaid.estimator`; see :func:`plaid_loss`. Plaid has no BOS (its tokenizer marks
            document ends only; the ``kjv`` task scores it with an empty context), so its rows are
            ``tokens(text)`` and every position is scored.

With ``mdm_loss = "ye2024"`` (the ``planning`` config) the MDLM minimises the MDM loss of Ye et al. 2024 instead
(:func:`ye2024_mdm_loss`; not a bound), its held-out number stays the NELBO.

Rows without BOS (``reversal``, ``cd3``, ``planning``) leave their first token unscored in the same way. For a corpus with
``answer_len`` (``cd3``) only the last ``answer_len`` positions of a row are scored (and, for the diffusion
families, noised): the loss is that of the answer given the clean prompt, as the reasoning reference trains.

Each is an upper bound on (or, for AR, equal to) the NLL per token, so training curves and held-out numbers
of the four families are on one scale. AdamW with linear warm-up and linear decay; the model's initial
weights come from ``seed``, the data order from ``(seed, epoch)``, the diffusion noise from a
``torch.Generator`` seeded with ``seed + 1``: a step budget reproduces the same weights bit for bit, also
across a stop and a resume (:func:`save_resume` / :func:`load_resume`; ``dlmbench zoo train --stop-after N``).
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlmbench.zoo import recipe
from dlmbench.zoo.configs import ZooConfig
from dlmbench.zoo.corpus import BOS, MASK, BatchStream, Corpus, corpus_rows, corpus_tokenizer, with_mask_token
from dlmbench.zoo.writers import build_network, n_params, seeded, write_checkpoint


# --------------------------------------------------------------------------------------------------
# The four losses: (network, batch [B, L], noise generator) -> per-row bound in nats, float [B]
# (each row scores its L - 1 tokens after BOS; the training loss is the sum over rows / (B (L - 1)))


@dataclass(frozen=True)
class LossContext:
    family: str
    mask_id: int | None
    sampling_eps: float = 1e-3
    answer_len: int | None = None  # score only the last answer_len positions of a row (cd3)
    score_first: bool = False  # rows carry no BOS and their first token is scored too (plaid)
    bias_warmup_steps: int = 0  # plaid: steps over which the output-prior term is ramped in
    mdm_steps: int = 20  # ye2024_mdm_loss: T, alpha, gamma
    mdm_alpha: float = 0.25
    mdm_gamma: float = 1.0
    # per-run mutable state: the trainer sets "step"; plaid keeps its loss EMAs here
    state: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def schedule(self):
        from dlmbench.diffusion.schedules import LogLinearNoise

        return LogLinearNoise(self.sampling_eps)


def _score_mask(x: torch.Tensor, ctx: LossContext | None = None) -> torch.Tensor:
    m = torch.ones_like(x, dtype=torch.bool)
    if ctx is None or not ctx.score_first:
        m[:, 0] = False  # BOS (or the first token) stays clean and unscored
    if ctx is not None and ctx.answer_len:
        m[:, : x.shape[1] - ctx.answer_len] = False  # the prompt stays clean and unscored
    return m


def scored_tokens(x: torch.Tensor, ctx: LossContext) -> int:
    """Number of scored positions in a batch (the denominator of the per-token loss)."""
    if ctx.score_first and not ctx.answer_len:
        return x.numel()
    return x.shape[0] * (min(ctx.answer_len, x.shape[1] - 1) if ctx.answer_len else x.shape[1] - 1)


def ar_loss(net: nn.Module, x: torch.Tensor, g: torch.Generator, ctx: LossContext) -> torch.Tensor:
    logits = net(input_ids=x).logits[:, :-1].float()
    ce = F.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")
    if ctx.answer_len:
        ce = ce * _score_mask(x, ctx)[:, 1:]
    return ce.sum(-1)


def mdlm_loss(net: nn.Module, x: torch.Tensor, g: torch.Generator, ctx: LossContext) -> torch.Tensor:
    from dlmbench.nets.dit import mdlm_subs_log_probs
    from dlmbench.diffusion.masked import mdlm_nelbo
    from dlmbench.diffusion.timesteps import sample_times

    def denoiser(x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return mdlm_subs_log_probs(net(x_t, sigma.float()), x_t, ctx.mask_id)

    score = _score_mask(x, ctx)
    t = sample_times(x.shape[0], g, "antithetic", ctx.sampling_eps)
    return mdlm_nelbo(denoiser, x, score, t, g, mask_id=ctx.mask_id, schedule=ctx.schedule)


def ye2024_mdm_loss(net: nn.Module, x: torch.Tensor, g: torch.Generator, ctx: LossContext) -> torch.Tensor:
    """The MDM training loss of Ye et al. 2024 ("Beyond Autoregression", HKUNLP/diffusion-vs-ar
    ``tuner/mdm/trainer.py``, flags ``--token_reweighting True --time_reweighting linear --alpha A --gamma G``).

    Per row ``t ~ U{0..T-1}``; each scored position is masked with probability ``(t+1)/T``; per masked token
    ``l = -log p(x_i | x_t)`` (SUBS log-probs, as the sampler reads them) is reweighted to
    ``alpha (1 - e^{-l})^gamma l`` (token reweighting: hard tokens count more) and multiplied by ``T - t``
    (linear time reweighting: lightly masked rows, where the hard tokens are the few left, count more).
    The reference averages over the batch's masked tokens; the trainer divides the sum of the returned rows by
    the batch's scored tokens, so each row is scaled by ``scored / masked`` of the batch to give exactly
    the reference's value. Not a likelihood bound (a training objective only).
    """
    from dlmbench.nets.dit import mdlm_subs_log_probs

    steps = int(ctx.mdm_steps)
    score = _score_mask(x, ctx)
    t = torch.randint(0, steps, (x.shape[0],), generator=g, device=g.device).to(x.device)
    u = torch.rand(x.shape, generator=g, dtype=torch.float64, device=g.device).to(x.device)
    masked = (u < ((t + 1).double() / steps)[:, None]) & score
    x_t = x.masked_fill(masked, ctx.mask_id)
    lp = mdlm_subs_log_probs(net(x_t, torch.zeros(x.shape[0], device=x.device)).float(), x_t, ctx.mask_id)
    nll = -lp.gather(-1, x[..., None]).squeeze(-1)
    nll = torch.where(masked, nll, torch.zeros_like(nll))
    tok = ctx.mdm_alpha * (1.0 - torch.exp(-nll)) ** ctx.mdm_gamma * nll
    per_row = (tok * (steps - t)[:, None].float()).sum(-1)
    return per_row * (scored_tokens(x, ctx) / masked.sum().clamp(min=1))


def bd3lm_loss(net: nn.Module, x: torch.Tensor, g: torch.Generator, ctx: LossContext) -> torch.Tensor:
    """BD3-LM's block NELBO (:func:`dlmbench.families.bd3lm.estimator.block_nelbo_from_uniforms`) as bd3lms trains it:
    one time per block, antithetic across the batch's blocks (``diffusion.py:_sample_t``), masking probability
    ``t``, weight ``1/t`` (log-linear with eps 0), one two-stream pass over ``[x_t ; x_0]`` at the network's block size."""
    from dlmbench.diffusion.schedules import LogLinearNoise
    from dlmbench.diffusion.timesteps import times_from_uniforms
    from dlmbench.families.bd3lm.estimator import block_nelbo_from_uniforms, n_blocks

    bs = int(net.block_size)
    rows, length = x.shape
    nb = n_blocks(length, bs)
    u_t = torch.rand(rows * nb, generator=g, dtype=torch.float64, device=g.device).to(x.device)
    t = times_from_uniforms(u_t, "antithetic", ctx.sampling_eps).reshape(rows, nb)
    u = torch.rand(x.shape, generator=g, dtype=torch.float64, device=g.device).to(x.device)

    def denoiser(x_t: torch.Tensor, x0: torch.Tensor, sigma) -> torch.Tensor:
        logits = net.forward_two_stream(x_t, x0).float()
        logits[..., ctx.mask_id] = float("-inf")
        return torch.log_softmax(logits, dim=-1)

    return block_nelbo_from_uniforms(denoiser, x, _score_mask(x, ctx), t, u, block_size=bs, mask_id=ctx.mask_id,
                                     schedule=LogLinearNoise(0.0))


def duo_loss(net: nn.Module, x: torch.Tensor, g: torch.Generator, ctx: LossContext) -> torch.Tensor:
    """DUO's uniform-state NELBO (:func:`dlmbench.families.duo.estimator.duo_nelbo_from_uniforms`) as s-sahoo/duo trains
    ``duo_base`` (``algo.py:DUO_BASE.nll_per_token``): antithetic ``t`` across the batch (``_sample_t``), log-linear
    ``alpha_t = 1 - (1 - eps) t``, every scored token resampled uniformly over all ``V`` states with probability
    ``1 - alpha_t``, the network fed ``sigma = -log alpha_t``. The Gaussian-relaxation curriculum of ``algo.py:DUO`` (and
    its distillation) is not used: the plain uniform-state loss."""
    from dlmbench.diffusion.timesteps import sample_times
    from dlmbench.families.duo.estimator import UniformLogLinear, duo_nelbo_from_uniforms

    vocab = int(net.config.vocab_size)
    t = sample_times(x.shape[0], g, "antithetic", ctx.sampling_eps)
    u_move = torch.rand(x.shape, generator=g, dtype=torch.float64, device=g.device).to(x.device)
    u_tok = torch.rand(x.shape, generator=g, dtype=torch.float64, device=g.device).to(x.device)

    def denoiser(x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(net(x_t, sigma.float()).float(), dim=-1)

    return duo_nelbo_from_uniforms(denoiser, x, _score_mask(x, ctx), t.to(x.device), u_move, u_tok, vocab_size=vocab,
                                   schedule=UniformLogLinear(ctx.sampling_eps))


def sedd_loss(net: nn.Module, x: torch.Tensor, g: torch.Generator, ctx: LossContext) -> torch.Tensor:
    from dlmbench.nets.dit import sedd_log_score
    from dlmbench.families.sedd.estimator import AbsorbingGraph, sedd_bound
    from dlmbench.diffusion.timesteps import sample_times

    def score_fn(x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return sedd_log_score(net(x_t, sigma.float()), x_t, sigma, scale_by_sigma=True)

    score = _score_mask(x, ctx)
    t = sample_times(x.shape[0], g, "iid", ctx.sampling_eps)
    return sedd_bound(score_fn, x, score, t, g, graph=AbsorbingGraph(ctx.mask_id), schedule=ctx.schedule)


def llada_loss(net: nn.Module, x: torch.Tensor, g: torch.Generator, ctx: LossContext) -> torch.Tensor:
    from dlmbench.diffusion.masked import llada_bound

    def denoiser(x_t: torch.Tensor, sigma: Any) -> torch.Tensor:
        return F.log_softmax(net(x_t).float(), dim=-1)

    score = _score_mask(x, ctx)
    total = int(score[0].sum())
    num_masked = torch.randint(1, total + 1, (x.shape[0],), generator=g)
    return llada_bound(denoiser, x, score, num_masked, g, mask_id=ctx.mask_id)


DREAM_AR_FRACTION = 0.2  # the first 20% of the zoo Dream's steps are an autoregressive phase of the same network


def dream_loss(net: nn.Module, x: torch.Tensor, g: torch.Generator, ctx: LossContext) -> torch.Tensor:
    """Dream, as it was made (Ye et al. 2025: initialised from an AR model, then trained as a masked diffusion model
    that keeps the AR habit of predicting token ``i`` at position ``i − 1``): during the first
    :data:`DREAM_AR_FRACTION` of the steps a causal next-token cross-entropy of the same network (output ``i − 1``
    predicts ``i``), then the masked-diffusion NELBO read with shifted logits (``t`` antithetic over the batch in
    ``[eps, 1]``, masking probability ``t``, weight ``1/t``: the bound the adapter reports). Dream's CART token
    reweighting is not reproduced. Outside training (``heldout_loss``) always the NELBO."""
    from dlmbench.diffusion.masked import mdlm_nelbo
    from dlmbench.diffusion.timesteps import sample_times
    from dlmbench.families.dream.estimator import LINEAR, shift_logits

    score = _score_mask(x, ctx)
    step, total = ctx.state.get("step"), ctx.state.get("max_steps")
    if net.training and step is not None and total and step < DREAM_AR_FRACTION * total:
        logits = net.head(net.hidden(x, causal=True))[:, :-1].float()
        ce = F.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")
        return (ce * score[:, 1:]).sum(-1)

    def denoiser(x_t: torch.Tensor, sigma: Any) -> torch.Tensor:
        return F.log_softmax(shift_logits(net(x_t)).float(), dim=-1)

    t = sample_times(x.shape[0], g, "antithetic", ctx.sampling_eps)
    return mdlm_nelbo(denoiser, x, score, t, g, mask_id=ctx.mask_id, schedule=LINEAR)


# --------------------------------------------------------------------------------------------------
# Plaid: its training loss (igul222/plaid train.py: forward in train mode)

PLAID_AUX_LR = 1e-2  # train.py learning_rates of noise_schedule, gamma_bounds, embedding_matrix (model: --lr)
PLAID_GAMMA_BOUNDS_DECAY = 1e-3  # train.py weight_decays["gamma_bounds"] (absolute: divided by the lr there)
PLAID_SELFCOND_EVERY = 4  # train.py: self-conditioning on rows offset::4, offset ~ U{0..3}
PLAID_RECONST_BS_EMA = 0.997  # train.py reconst_bs_ema


@dataclass(frozen=True)
class PlaidDraws:
    """The randomness of one Plaid training batch (``train.py``): which rows are reconstruction rows (at
    ``t = 0``), the diffusion rows' times (low-discrepancy: ``(k + u) / n`` for ``k < n``), which rows are
    self-conditioned, and the Gaussian noise ``ε``. ``reconst_prob`` = the fraction of reconstruction rows."""

    is_reconst: torch.Tensor  # bool [B]
    t: torch.Tensor  # float64 [B], 0 on reconstruction rows
    selfcond: torch.Tensor  # bool [B]
    eps: torch.Tensor  # float64 [B, L, d_e]
    reconst_prob: float


def plaid_training_draws(batch: int, length: int, embed_dim: int, reconst_bs: int, g: torch.Generator) -> PlaidDraws:
    """``reconst_bs`` rows at ``t = 0`` and ``batch - reconst_bs`` at stratified ``t``, every 4th row (random
    offset) self-conditioned, as ``train.py``; rows are assigned through a random permutation (``train.py``
    takes the first rows of a shuffled batch)."""
    if not 0 < reconst_bs < batch:
        raise ValueError(f"reconst_bs must be in 1..{batch - 1}, not {reconst_bs}")
    perm = torch.randperm(batch, generator=g)
    u = float(torch.rand(1, dtype=torch.float64, generator=g))
    offset = int(torch.randint(PLAID_SELFCOND_EVERY, (1,), generator=g))
    eps = torch.randn((batch, length, embed_dim), dtype=torch.float64, generator=g)
    k = torch.empty(batch, dtype=torch.long)
    k[perm] = torch.arange(batch)  # each row's slot in train.py's batch order
    is_rec = k < reconst_bs
    t = torch.where(is_rec, 0.0, (k - reconst_bs + u).double() / (batch - reconst_bs))
    return PlaidDraws(is_rec, t, (k % PLAID_SELFCOND_EVERY) == offset, eps, reconst_bs / batch)


def plaid_reconst_bs(state: dict, batch: int) -> int:
    """``train.py``'s number of reconstruction rows: ``batch · σ_rec / (σ_rec + σ_diff)`` (the allocation that
    minimises the variance of the two-part estimate), from bias-corrected EMAs of the per-row per-token
    losses, rounded and clamped to ``1..batch-1`` (1 on the first step, when both stds are 0)."""
    b = 1.0 / state.get("ema_bias", 1e-8)
    std = lambda m, sq: math.sqrt(max(0.0, b * state.get(sq, 1e-8) - (b * state.get(m, 1e-8)) ** 2))  # noqa: E731
    r_std, d_std = std("rec_ema", "rec_sq_ema"), std("diff_ema", "diff_sq_ema")
    return int(min(max(round(batch * r_std / (1e-8 + r_std + d_std)), 1), batch - 1))


def _plaid_update_emas(state: dict, rec: torch.Tensor, diff: torch.Tensor) -> None:
    a = 1.0 - PLAID_RECONST_BS_EMA
    lerp = lambda key, v: state.__setitem__(key, state.get(key, 1e-8) + a * (v - state.get(key, 1e-8)))  # noqa: E731
    lerp("ema_bias", 1.0)
    lerp("rec_ema", float(rec.mean())), lerp("rec_sq_ema", float(rec.pow(2).mean()))
    lerp("diff_ema", float(diff.mean())), lerp("diff_sq_ema", float(diff.pow(2).mean()))


def plaid_train_terms(net: nn.Module, x: torch.Tensor, score: torch.Tensor, draws: PlaidDraws,
                      bias_scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row training values (float64 ``[B]``) of Plaid's loss, and the per-token reconstruction and
    diffusion terms of every row (detached, for the EMAs and the schedule's gradient).

    A row's value is the estimator's draw (:func:`~dlmbench.families.plaid.estimator.vlb_draw`)
    ``Σ_i prior_i + (reconst_i / p  if reconstruction row  else  diffusion_i(t) / (1 − p))`` with
    ``p = reconst_prob``, with ``train.py``'s training-time network: a self-conditioned row gets a first pass
    without gradient and has its ``γ``, ``γ′``, ``x̃``, ``γ_1`` and the embeddings in the output prior and in
    ``x̂`` detached (so the schedule, γ bounds and embeddings learn only from the other rows); the others get
    ``x_sc = 0``; the output prior is scaled by ``bias_scale``. With ``bias_scale = 1`` a self-conditioned
    row's value is exactly the estimator's. The gradient reaching the normalised schedule ``γ̃n(t)`` and
    ``γ̃n′(t)`` of a diffusion row is multiplied by ``2 · diffusion_i`` (per token), so the schedule minimises
    ``E[loss²]`` (the variance; the bound itself depends only on ``γ_0``, ``γ_1``) while everything else
    minimises ``E[loss]`` (``train.py``'s gradient hook).
    """
    from dlmbench.families.plaid.estimator import diffusion_integrand, noised_latent, prior_kl, reconstruction_nll

    batch = x.shape[0]
    sc, is_rec = draws.selfcond, draws.is_reconst
    emb = net.embedding_matrix()  # unit rows, with gradient
    g0, g1 = net.gamma_bounds.gamma_0.double(), net.gamma_bounds.gamma_1.double()
    # normalised schedule and its derivative; reconstruction rows (t = 0, γ̃n = 0) carry no schedule gradient
    gn = torch.where(is_rec, 0.0, net.noise_schedule(draws.t))
    gn_prime = torch.where(is_rec, 0.0, net.noise_schedule.derivative(draws.t))
    hook_scale = torch.ones(batch, dtype=torch.float64)  # filled below, read during backward
    for tensor in (gn, gn_prime):
        if tensor.requires_grad:
            tensor.register_hook(lambda grad: grad * hook_scale)
    gamma, gamma_prime = g0 + (g1 - g0) * gn, (g1 - g0) * gn_prime
    gamma = torch.where(sc, gamma.detach(), gamma)
    gamma_prime = torch.where(sc, gamma_prime.detach(), gamma_prime)
    x_embed = emb[x].double()
    x_embed = torch.where(sc[:, None, None], x_embed.detach(), x_embed)
    z = noised_latent(x_embed, gamma, draws.eps)  # reparameterised: gradients reach x̃ and γ
    g1_rows = torch.where(sc, g1.detach(), g1)
    w = score.double()
    prior = (prior_kl(x_embed, g1_rows[:, None, None]) * w).sum(-1)

    rec = torch.zeros(batch, dtype=torch.float64)
    diff = torch.zeros(batch, dtype=torch.float64)
    for selfcond in (True, False):
        idx = (sc == selfcond).nonzero()[:, 0]
        if len(idx) == 0:
            continue
        e = emb.detach() if selfcond else emb
        zi, gi = z[idx].float(), gamma[idx]
        x_sc = torch.zeros_like(zi)
        if selfcond:
            with torch.no_grad():
                _, x_sc = net.model(zi, gi.detach(), e, x_sc, bias_scale)
        logits, x_hat = net.model(zi, gi, e, x_sc, bias_scale)
        rec = rec.index_put((idx,), (reconstruction_nll(logits, x[idx]) * w[idx]).sum(-1))
        diff = diff.index_put((idx,), (diffusion_integrand(x_embed[idx], x_hat, gi, gamma_prime[idx]) * w[idx]).sum(-1))
    p = draws.reconst_prob
    values = prior + torch.where(is_rec, rec / p, diff / (1.0 - p))
    n_scored = w.sum(-1).clamp(min=1.0)
    rec_tok, diff_tok = (rec / n_scored).detach(), (diff / n_scored).detach()
    hook_scale.copy_(torch.where(is_rec, 1.0, 2.0 * diff_tok))
    return values, rec_tok, diff_tok


def plaid_loss(net: nn.Module, x: torch.Tensor, g: torch.Generator, ctx: LossContext) -> torch.Tensor:
    """Plaid's loss per row (nats, float64 ``[B]``).

    Training (``net.training``): ``train.py``'s loss, :func:`plaid_train_terms` on :func:`plaid_training_draws`
    with ``reconst_bs`` from :func:`plaid_reconst_bs` and the output prior ramped in over
    ``ctx.bias_warmup_steps``. Evaluation: the estimator's own draw (``train.py`` evaluation; the adapter's
    bound): reconstruction with probability 1/8, else ``t ~ U(0, 1)``, self-conditioning always unrolled.
    Both are unbiased estimates of an upper bound on ``−log p(x)`` of the rows' scored tokens.
    """
    from dlmbench.families.plaid.estimator import RECONST_PROB, vlb_draw

    score = _score_mask(x, ctx)
    batch, length = x.shape
    embed_dim = int(net.config.embed_dim)
    if not net.training or batch < 2:
        u = torch.rand((batch, 2), dtype=torch.float64, generator=g)
        eps = torch.randn((batch, length, embed_dim), dtype=torch.float64, generator=g)
        return vlb_draw(net, x, score, u[:, 0] < RECONST_PROB, u[:, 1], eps)
    state = ctx.state
    draws = plaid_training_draws(batch, length, embed_dim, plaid_reconst_bs(state, batch), g)
    step = state.get("step", 0)
    bias_scale = min(1.0, (step + 1e-8) / (ctx.bias_warmup_steps + 1e-8))
    values, rec, diff = plaid_train_terms(net, x, score, draws, bias_scale)
    _plaid_update_emas(state, rec[draws.is_reconst], diff[~draws.is_reconst])
    return values


def _plaid_param_groups(net: nn.Module, cfg: ZooConfig) -> list[dict[str, Any]]:
    """``train.py``'s optimiser groups: the schedule, γ bounds and embeddings at lr 1e-2 (γ bounds with decay
    1e-3 per unit lr, the other two none); the Transformer at the zoo's ``lr`` (the zoo's decay on matrices), its
    hidden matrices (attention and MLP) at ``lr · 256 / d`` (``mup.MuAdam``: ``lr / width_mult``, base width 256).
    ``lr_scale`` multiplies the scheduled lr of a group."""
    from dlmbench.families.plaid.backbone import MUP_BASE_DIM

    aux = PLAID_AUX_LR / cfg.lr
    hidden = [p for n, p in net.model.named_parameters() if n.startswith("blocks.") and p.ndim == 2]
    hidden_ids = {id(p) for p in hidden}
    rest = [p for p in net.model.parameters() if id(p) not in hidden_ids]
    return [
        {"params": hidden, "lr_scale": MUP_BASE_DIM / net.config.dim, "weight_decay": cfg.weight_decay},
        {"params": [p for p in rest if p.ndim >= 2], "lr_scale": 1.0, "weight_decay": cfg.weight_decay},
        {"params": [p for p in rest if p.ndim < 2], "lr_scale": 1.0, "weight_decay": 0.0},
        {"params": list(net.noise_schedule.parameters()), "lr_scale": aux, "weight_decay": 0.0},
        {"params": list(net.gamma_bounds.parameters()), "lr_scale": aux, "weight_decay": PLAID_GAMMA_BOUNDS_DECAY / PLAID_AUX_LR},
        {"params": list(net.embedding_matrix.parameters()), "lr_scale": aux, "weight_decay": 0.0},
    ]


MDM_LOSSES = ("nelbo", "ye2024")


def training_loss(family: str, cfg: ZooConfig) -> tuple[Any, str]:
    """The loss the trainer minimises and its card text: the recipe's, or, for a recipe with ``ye2024_loss`` (MDLM)
    and ``cfg.mdm_loss == "ye2024"``, :func:`ye2024_mdm_loss` (held-out numbers stay the recipe's bound)."""
    from dlmbench.errors import BadSpec

    rec = recipe(family)  # an unknown family, or one without a zoo recipe, is refused here
    if cfg.mdm_loss not in MDM_LOSSES:
        raise BadSpec(f"zoo config {cfg.name}: mdm_loss must be one of {', '.join(MDM_LOSSES)}, not {cfg.mdm_loss!r}")
    if cfg.mdm_loss == "nelbo" or rec.mask == "none":  # a model without a mask (AR) keeps its own loss
        return rec.loss, rec.loss_text
    if not rec.ye2024_loss:
        raise BadSpec(f"zoo config {cfg.name}: mdm_loss {cfg.mdm_loss!r} is for a recipe that allows it (mdlm), not {family}")
    return ye2024_mdm_loss, (f"Ye et al. 2024 MDM loss (T={cfg.mdm_steps}, token reweighting alpha {cfg.mdm_alpha:g} "
                             f"gamma {cfg.mdm_gamma:g}, linear time reweighting); not a bound")


def family_corpus(family: str, corpus: Corpus) -> Corpus:
    """The corpus as ``family`` is trained and scored on it: a recipe without BOS (Plaid) gets rows without one."""
    import dataclasses

    return corpus if recipe(family).bos else dataclasses.replace(corpus, bos=False)


# --------------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainResult:
    family: str
    net: nn.Module
    tokenizer: Any
    ctx: LossContext
    steps: int = 0
    tokens: int = 0  # tokens fed to the network (rows incl. BOS)
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    stopped_by: str = "max_steps"

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("nan")


def lr_at(step: int, cfg: ZooConfig, elapsed: float = 0.0) -> float:
    """Linear warm-up over ``warmup_steps``, then linear decay to 10% of ``lr`` at the end of the budget.

    The end is ``max_steps`` or, with ``max_seconds``, whichever of the two comes first (so a run stopped by
    the clock has still annealed). Only a pure step budget (``max_seconds=None``) is bit-reproducible.
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    if cfg.max_seconds:
        frac = max(frac, elapsed / cfg.max_seconds)
    return cfg.lr * (1.0 - 0.9 * min(1.0, frac))


def prepare(family: str, corpus: Corpus, cfg: ZooConfig, tokenizer: Any = None) -> tuple[Any, list[list[int]], LossContext, nn.Module]:
    """Tokenizer (trained if not given), training rows, loss context and the seeded initial network."""
    rec = recipe(family)
    tok = tokenizer if tokenizer is not None else corpus_tokenizer(corpus, cfg.vocab_size)
    if rec.mask == "in_vocab" and tok.token_to_id(MASK) is None:
        tok = with_mask_token(tok)
    rows = corpus_rows(tok, family_corpus(family, corpus), corpus.train, cfg.max_len)
    n_tokens, bos = tok.get_vocab_size(), tok.token_to_id(BOS)
    mask_id = {"in_vocab": tok.token_to_id(MASK), "appended": n_tokens}.get(rec.mask)
    ctx = LossContext(family, mask_id, cfg.sampling_eps, corpus.answer_len, score_first=not rec.bos,
                      bias_warmup_steps=cfg.bias_warmup_steps, mdm_steps=cfg.mdm_steps, mdm_alpha=cfg.mdm_alpha,
                      mdm_gamma=cfg.mdm_gamma)
    with seeded(cfg.seed):
        net = build_network(family, cfg, n_tokens, bos, mask_id)
    return tok, rows, ctx, net


def _optimizer(net: nn.Module, cfg: ZooConfig, family: str = "") -> torch.optim.Optimizer:
    param_groups = recipe(family).param_groups if family else None
    if param_groups is not None:
        groups = param_groups(net, cfg)
    else:
        decay = [p for p in net.parameters() if p.ndim >= 2]
        rest = [p for p in net.parameters() if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


def train(family: str, corpus: Corpus, cfg: ZooConfig, *, out: str | Path | None = None, tokenizer: Any = None,
          progress: bool = True, save_dtype: str | None = None, extra_info: dict[str, Any] | None = None,
          resume: str | Path | None = None, stop_after: int | None = None) -> TrainResult:
    """Train ``family`` on ``corpus`` for ``cfg.max_steps`` steps (or ``cfg.max_seconds``); write to ``out``.

    ``resume``: a resume file (:func:`save_resume`). If it exists, training continues from it (weights, optimiser
    moments, noise generator, data position, loss curve, elapsed time) and gives bit for bit the weights of an
    uninterrupted run; it is rewritten every ``cfg.checkpoint_every`` steps and when ``stop_after`` steps of this
    call are done (then the call returns early, ``stopped_by = "stop_after"``, as if the run had been killed).
    """
    from tqdm.auto import tqdm

    loss_fn, _ = training_loss(family, cfg)
    save_dtype = save_dtype or cfg.save_dtype
    tok, rows, ctx, net = prepare(family, corpus, cfg, tokenizer)
    opt = _optimizer(net, cfg, family)
    stream = BatchStream(rows, cfg.batch_tokens, cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    res = TrainResult(family, net, tok, ctx)
    first = 0
    if resume is not None and Path(resume).is_file():
        first = load_resume(resume, res, opt, g, cfg, corpus)
    net.train()
    bar = tqdm(total=cfg.max_steps, initial=first, desc=f"zoo {family}/{corpus.name}", disable=not progress, unit="step")
    start = time.perf_counter() - res.seconds
    batches = iter(stream)
    for _ in range(first):  # the data order is a pure function of (seed, epoch): skip what was trained on
        next(batches)
    for step, x in zip(range(first, cfg.max_steps), batches):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg, time.perf_counter() - start) * group.get("lr_scale", 1.0)
        ctx.state["step"] = step
        ctx.state["max_steps"] = cfg.max_steps
        loss = (loss_fn(net, x, g, ctx).sum() / scored_tokens(x, ctx)).float()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        res.steps, res.tokens = step + 1, res.tokens + x.numel()
        res.losses.append(float(loss.detach()))
        res.seconds = time.perf_counter() - start
        bar.update(1)
        if step % 10 == 0 or step + 1 == cfg.max_steps:
            bar.set_postfix(loss=f"{np.mean(res.losses[-20:]):.3f}", tok_s=f"{res.tokens_per_s:.0f}")
        if out is not None and cfg.checkpoint_every and res.steps % cfg.checkpoint_every == 0:
            _save(res, corpus, cfg, out, save_dtype, extra_info)
        stopping = stop_after is not None and res.steps - first >= stop_after and res.steps < cfg.max_steps
        if resume is not None and ((cfg.checkpoint_every and res.steps % cfg.checkpoint_every == 0) or stopping):
            save_resume(resume, res, opt, g, cfg, corpus)
        if stopping:
            res.stopped_by = "stop_after"
            bar.close()
            return res
        if cfg.max_seconds is not None and res.seconds >= cfg.max_seconds:
            res.stopped_by = "max_seconds"
            break
    bar.close()
    net.eval()
    if out is not None:
        _save(res, corpus, cfg, out, save_dtype, extra_info)
    return res


RESUME_FORMAT = 1


def save_resume(path: str | Path, res: TrainResult, opt: torch.optim.Optimizer, g: torch.Generator, cfg: ZooConfig,
                corpus: Corpus) -> Path:
    """Everything :func:`train` needs to continue exactly: float32 weights, AdamW state, noise generator state,
    steps, tokens, elapsed seconds, losses and the loss's own state, with the config and corpus it belongs to.
    Written atomically (a kill mid-write leaves the previous file); plain tensors and numbers only, so it is
    read back with ``torch.load(weights_only=True)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": RESUME_FORMAT, "family": res.family, "corpus": corpus.name, "config": cfg.to_dict(),
        "steps": res.steps, "tokens": res.tokens, "seconds": res.seconds, "losses": list(res.losses),
        "ctx_state": {k: v for k, v in res.ctx.state.items() if isinstance(v, (int, float))},
        "net": res.net.state_dict(), "opt": opt.state_dict(), "generator": g.get_state(),
    }
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_resume(path: str | Path, res: TrainResult, opt: torch.optim.Optimizer, g: torch.Generator, cfg: ZooConfig,
                corpus: Corpus) -> int:
    """Restore a :func:`save_resume` file into a freshly prepared run; returns the step to continue from.
    A file of another family, corpus or config is refused in one line (:class:`~dlmbench.errors.CheckpointError`)."""
    from dlmbench.errors import CheckpointError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged file is a user-facing one-liner
        raise CheckpointError(f"resume file {path} cannot be read ({type(e).__name__}); delete it to start afresh") from None
    mine = {"format": RESUME_FORMAT, "family": res.family, "corpus": corpus.name, "config": cfg.to_dict()}
    for key, want in mine.items():
        if state.get(key) != want:
            raise CheckpointError(f"resume file {path} belongs to another run ({key} differs: {state.get(key)!r} vs "
                                  f"{want!r}); delete it to start afresh")
    res.net.load_state_dict(state["net"])
    opt.load_state_dict(state["opt"])
    g.set_state(state["generator"])
    res.steps, res.tokens, res.seconds = int(state["steps"]), int(state["tokens"]), float(state["seconds"])
    res.losses = [float(v) for v in state["losses"]]
    res.ctx.state.update(state["ctx_state"])
    return res.steps


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    load = f", load average {os.getloadavg()[0]:.1f} at the end (CPU shared with other jobs)" if hasattr(os, "getloadavg") else ""
    return f"{cpu}; {os.cpu_count()} logical CPUs visible, torch threads {torch.get_num_threads()}{load}; no GPU"


def train_info(res: TrainResult, corpus: Corpus, cfg: ZooConfig, save_dtype: str) -> dict[str, Any]:
    tail = res.losses[-max(1, min(50, len(res.losses) // 10)):] if res.losses else [float("nan")]
    return {
        "family": res.family,
        "corpus": corpus.name,
        "corpus_description": corpus.description,
        "config": cfg.to_dict(),
        "steps": res.steps,
        "tokens_trained": res.tokens,
        "epochs": round(res.tokens / max(1, sum(len(r) for r in corpus_rows(res.tokenizer, family_corpus(res.family, corpus),
                                                                          corpus.train, cfg.max_len))), 3),
        "train_seconds": round(res.seconds, 1),
        "tokens_per_s": round(res.tokens_per_s, 1),
        "stopped_by": res.stopped_by,
        "final_train_loss": round(float(np.mean(tail)), 4),
        # the training curve: mean loss of each block of ~1/20 of the steps, as [last step of the block, mean]
        "loss_curve": [[min(i + block, len(res.losses)), round(float(np.mean(res.losses[i : i + block])), 4)]
                       for block in [max(1, len(res.losses) // 20)] for i in range(0, len(res.losses), block)],
        "loss": training_loss(res.family, cfg)[1],
        "n_params": n_params(res.net),
        "seed": cfg.seed,
        "save_dtype": save_dtype,
        "hardware": hardware(),
        "torch": torch.__version__,
    }


def _save(res: TrainResult, corpus: Corpus, cfg: ZooConfig, out: str | Path, save_dtype: str,
          extra_info: dict[str, Any] | None) -> None:
    info = {**train_info(res, corpus, cfg, save_dtype), **(extra_info or {})}
    write_checkpoint(res.family, res.net, out, tokenizer=res.tokenizer, cfg=cfg, info=info, save_dtype=save_dtype)


# --------------------------------------------------------------------------------------------------
# A quick held-out number (the same bound as the training loss; the task runner gives the reported ones)


@torch.no_grad()
def heldout_loss(res: TrainResult, texts: list[str], max_len: int, *, seed: int = 1234, batch_tokens: int = 8192,
                 samples: int = 1, corpus: Corpus | None = None) -> dict[str, float]:
    """Per-token loss (nats) on ``texts`` with ``samples`` Monte Carlo draws per row; stderr over rows.

    Exact for AR. For the diffusion families a one-draw-per-row estimate of the same bound as the training
    loss, which is an unbiased estimate of the corpus bound; it is a development aid, not a task result.
    """
    from dlmbench.zoo.corpus import encode_rows, length_batches

    rows = [r for r in (corpus_rows(res.tokenizer, family_corpus(res.family, corpus), texts, max_len) if corpus is not None
                        else encode_rows(res.tokenizer, texts, max_len, bos=recipe(res.family).bos)) if len(r) >= 2]
    net, fn = res.net.eval(), recipe(res.family).loss
    g = torch.Generator().manual_seed(seed)
    nll, ntok = [], []
    import random

    for idx in length_batches([len(r) for r in rows], batch_tokens, random.Random(seed)):
        x = torch.tensor([rows[i] for i in idx], dtype=torch.long)
        for _ in range(samples):
            per_row = fn(net, x, g, res.ctx)
            nll += per_row.tolist()
            ntok += [scored_tokens(x, res.ctx) // x.shape[0]] * x.shape[0]
    nll_a, n_a = np.array(nll), np.array(ntok, dtype=np.float64)
    mean = nll_a.sum() / n_a.sum()
    se = float(np.std(nll_a - mean * n_a, ddof=1) * math.sqrt(len(nll_a)) / n_a.sum()) if len(nll_a) > 1 else float("nan")
    return {"nll_per_token": float(mean), "stderr": se, "ppl": float(math.exp(mean)), "n_rows": len(rows) * samples,
            "n_tokens": int(n_a.sum())}
