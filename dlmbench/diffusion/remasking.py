"""Confidence-ordered samplers over a time-free denoiser: LLaDA's low-confidence / random remasking with
semi-autoregressive blocks and classifier-free guidance, and the "top-k" easy-first decoding of the
diffusion-vs-ar reasoning MDMs.

LLaDA (Nie et al. 2025, App. B.3; reference ``generate.py:generate``): the ``gen_length`` positions after
the prompt are cut into blocks of ``block_length`` decoded left to right, each in ``steps / n_blocks``
steps. In a block with ``M`` masked tokens and ``k`` steps, step ``j`` commits ``M // k`` tokens, plus one
for the first ``M % k`` steps (``get_num_transfer_tokens``). Each step predicts ``x0`` at every position
(argmax if ``temperature == 0``, else a draw from ``softmax(logits / T)`` — the reference's float64
Gumbel ``exp(l) / (-log U)^T``), scores masked positions of the current block by the probability of their
prediction (``low_confidence``) or a uniform number (``random``), and commits the top ones. Committed
tokens are never re-masked. With CFG scale ``w`` the logits are ``un + (w + 1)(cond - un)``, ``un`` from the
unconditional input (prompt replaced by masks) or a given unconditional denoiser.

With ``remasking="random"`` and one token per step (``steps == gen_length``), each step unmasks a uniformly
random masked position of the block with a draw from ``p(x0^i | x_t)``: an exact sampler for an exact
denoiser (any-order autoregression within blocks). ``low_confidence`` is *not* exact (it prefers
confident positions, a data-dependent order).

diffusion-vs-ar (Ye et al. 2024; reference ``tuner/mdm/trainer.py:generate_samples`` and ``topk_decoding``):
``T`` steps, ``t = T-1 .. 0``. Every step predicts ``argmax`` with its log-probability at every initially
masked position (decoded tokens may change and be re-masked), then, if ``t > 0``, re-masks the
``floor(n_maskable * rate)`` lowest-scoring ones, ``rate = t/T`` (``linear``) or
``cos((T - t)/T * pi/2)`` (``cosine``); ``stochastic<s>`` adds ``s * rate * Gumbel`` noise to the scores
before ranking (``deterministic``: none). At ``t = 0`` everything is decoded. NFE = ``T``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from dlmbench.diffusion.sampling import Rng, SamplerOutput, TimeFreeDenoiser, check_precision, clean_log_probs, make_rng

__all__ = ["low_confidence_remasking", "llada_generate", "transfer_counts", "topk_decoding"]


def transfer_counts(masked_in_block: torch.Tensor, steps: int) -> torch.Tensor:
    """``[B, steps]`` tokens to commit per step (LLaDA ``get_num_transfer_tokens``)."""
    base = masked_in_block // steps
    rem = masked_in_block % steps
    j = torch.arange(steps, device=masked_in_block.device)
    return base[:, None] + (j[None, :] < rem[:, None]).long()


def low_confidence_remasking(
    denoiser: TimeFreeDenoiser,
    x: torch.Tensor,
    *,
    mask_id: int,
    steps: int,
    prompt_length: int = 0,
    block_length: int | None = None,
    remasking: str = "low_confidence",
    temperature: float = 0.0,
    top_p: float | None = None,
    cfg_scale: float = 0.0,
    uncond_denoiser: TimeFreeDenoiser | None = None,
    generator: torch.Generator | None = None,
    seeds: Sequence[int] | None = None,
    seed: int | None = None,
    precision: str = "float64",
) -> SamplerOutput:
    """LLaDA generation of the masked positions of ``x [B, L]`` after ``prompt_length``.

    ``gen_length = L - prompt_length`` must be a multiple of ``block_length`` (default ``gen_length``) and
    ``steps`` a multiple of the number of blocks. Masked positions inside the prompt or fixed tokens after
    it are allowed (infilling): only positions holding ``mask_id`` change. The mask column is never
    predicted. A row is evaluated only at steps where it commits a token (its own draws depend only on its
    own state); ``nfe`` counts batched calls (two per step with CFG).
    """
    prec = check_precision(precision)
    if remasking not in ("low_confidence", "random"):
        raise ValueError("remasking must be 'low_confidence' or 'random'")
    b, length = x.shape
    gen_length = length - prompt_length
    block = int(block_length or gen_length)
    if gen_length <= 0 or gen_length % block:
        raise ValueError(f"gen_length {gen_length} must be a positive multiple of block_length {block}")
    n_blocks = gen_length // block
    if steps % n_blocks:
        raise ValueError(f"steps {steps} must be a multiple of the number of blocks {n_blocks}")
    per_block = steps // n_blocks
    needs_rng = temperature > 0 or remasking == "random"
    rng: Rng | None = make_rng(b, generator, seeds, seed, device=x.device) if needs_rng or generator is not None or seeds is not None or seed is not None else None
    if needs_rng and rng is None:  # pragma: no cover - make_rng raises first
        raise ValueError("a random sampler needs `generator`, `seeds` or `seed`")
    x = x.clone()
    given = x != mask_id  # LLaDA's prompt_index: the unconditional pass masks these
    nfe = 0
    row_nfe = torch.zeros(b, dtype=torch.long)
    pos = torch.arange(length, device=x.device)
    for blk in range(n_blocks):
        lo, hi = prompt_length + blk * block, prompt_length + (blk + 1) * block
        in_block = (pos >= lo) & (pos < hi)
        quota = transfer_counts(((x == mask_id) & in_block).sum(dim=-1), per_block)
        for j in range(per_block):
            rows = (quota[:, j] > 0).nonzero().squeeze(-1)
            if rows.numel() == 0:
                continue
            xr = x[rows]
            logits = denoiser(xr)
            nfe += 1
            if cfg_scale > 0:
                un = uncond_denoiser(xr) if uncond_denoiser is not None else denoiser(torch.where(given[rows], torch.full_like(xr, mask_id), xr))
                nfe += 1
                logits = un + (cfg_scale + 1.0) * (logits - un)
            row_nfe[rows.cpu()] += 1
            lp = clean_log_probs(logits, mask_id, precision=prec)
            if temperature == 0:
                x0 = lp.argmax(dim=-1)
            else:
                assert rng is not None
                probs = clean_log_probs(logits, mask_id, temperature=temperature, top_p=top_p, precision=prec).exp()
                x0 = rng.categorical(probs, prec, rows=rows.cpu())
            if remasking == "low_confidence":
                conf = lp.gather(-1, x0[..., None]).squeeze(-1).to(torch.float64)
            else:
                assert rng is not None
                conf = rng.uniform((length,), rows=rows.cpu(), device=x.device)
            eligible = (xr == mask_id) & in_block[None, :]
            conf = torch.where(eligible, conf, torch.full_like(conf, float("-inf")))
            order = conf.argsort(dim=-1, descending=True, stable=True)
            rank = torch.empty_like(order)
            rank.scatter_(-1, order, torch.arange(length, device=x.device).expand_as(order).contiguous())
            commit = (rank < quota[rows, j][:, None]) & eligible
            x[rows] = torch.where(commit, x0, xr)
    return SamplerOutput(x, nfe, row_nfe)


llada_generate = low_confidence_remasking


def _gumbel(rng: Rng, shape: Sequence[int], device) -> torch.Tensor:
    """Float64 standard Gumbel noise ``-log(E)``, ``E = -log(1 - U) ~ Exp(1)``."""
    e = -torch.log1p(-rng.uniform(shape, device=device))
    return -torch.log(e.clamp_min(torch.finfo(torch.float64).tiny))


def topk_decoding(
    denoiser: TimeFreeDenoiser,
    x: torch.Tensor,
    *,
    mask_id: int,
    steps: int,
    strategy: str = "stochastic0.5-linear",
    generator: torch.Generator | None = None,
    seeds: Sequence[int] | None = None,
    seed: int | None = None,
) -> SamplerOutput:
    """diffusion-vs-ar easy-first top-k decoding of the masked positions of ``x [B, L]`` in ``steps`` passes.

    ``strategy = "<deterministic|stochastic<s>>-<linear|cosine>"``. Positions not masked in ``x`` (the
    source) never change. Exactly ``floor(n_maskable * rate)`` positions are re-masked per step (ties
    broken by position; the reference's strict ``<`` cutoff can re-mask fewer on exact ties).
    """
    mode, schedule = strategy.split("-")
    if schedule not in ("linear", "cosine"):
        raise ValueError("schedule must be 'linear' or 'cosine'")
    if mode.startswith("stochastic"):
        noise_scale = float(mode[len("stochastic") :])
    elif mode == "deterministic":
        noise_scale = 0.0
    else:
        raise ValueError("mode must be 'deterministic' or 'stochastic<scale>'")
    b, length = x.shape
    rng = make_rng(b, generator, seeds, seed, device=x.device) if noise_scale > 0 else None
    maskable = x == mask_id
    n_maskable = maskable.sum(dim=-1, keepdim=True)
    xt = x.clone()
    nfe = 0
    for t in range(steps - 1, -1, -1):
        lp = clean_log_probs(denoiser(xt), mask_id)
        nfe += 1
        score, pred = lp.max(dim=-1)
        x0 = torch.where(maskable, pred, x)
        if t == 0:
            xt = x0
            break
        rate = t / steps if schedule == "linear" else math.cos((steps - t) / steps * math.pi * 0.5)
        cutoff = (n_maskable.to(torch.float64) * rate).long()
        s = score.to(torch.float64).masked_fill(~maskable, 1000.0)
        if noise_scale > 0:
            assert rng is not None
            s = s + noise_scale * rate * _gumbel(rng, (length,), x.device)
        order = s.argsort(dim=-1, stable=True)
        rank = torch.empty_like(order)
        rank.scatter_(-1, order, torch.arange(length, device=x.device).expand_as(order).contiguous())
        remask = (rank < cutoff) & maskable
        xt = torch.where(remask, torch.full_like(x0, mask_id), x0)
    return SamplerOutput(xt, nfe, torch.full((b,), nfe, dtype=torch.long))
