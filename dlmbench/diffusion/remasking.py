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
from typing import Any, Protocol

import torch

from dlmbench.diffusion.categorical import Precision
from dlmbench.diffusion.sampling import Rng, SamplerOutput, TimeFreeDenoiser, check_precision, clean_log_probs, make_rng

__all__ = ["BlockCachedDenoiser", "CACHES", "low_confidence_remasking", "llada_generate", "parallel_commit", "transfer_counts", "topk_decoding"]


def transfer_counts(masked_in_block: torch.Tensor, steps: int) -> torch.Tensor:
    """``[B, steps]`` tokens to commit per step (LLaDA ``get_num_transfer_tokens``)."""
    base = masked_in_block // steps
    rem = masked_in_block % steps
    j = torch.arange(steps, device=masked_in_block.device)
    return base[:, None] + (j[None, :] < rem[:, None]).long()


def _ranks(conf: torch.Tensor) -> torch.Tensor:
    """Rank of each entry of ``conf [R, W]`` in descending order (0 = highest; ties by position)."""
    order = conf.argsort(dim=-1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(conf.shape[-1], device=conf.device).expand_as(order).contiguous())
    return rank


def parallel_commit(conf: torch.Tensor, eligible: torch.Tensor, *, threshold: float | None = None,
                    factor: float | None = None) -> torch.Tensor:
    """Fast-dLLM's parallel decoding rule (Wu et al. 2025, arXiv 2505.22618, Sec. 3.3): which eligible positions
    of ``conf [R, W]`` (the probability of each position's predicted token, float64) to commit in one step.

    - ``threshold`` ``tau``: every eligible position with ``conf >= tau``, and always the most confident one (so a
      step commits at least one token; ``generate.py:get_transfer_index``, whose cut is ``conf < tau``).
    - ``factor`` ``f``: with the eligible confidences sorted ``c_1 >= c_2 >= ...``, the longest prefix ``n`` with
      ``c_k >= 1 - f/(k + 1)`` for every ``k <= n``, at least 1 (the paper's rule "largest ``n`` with
      ``(n + 1)(1 - c_n) <= f``"; the left side grows with ``n``, so this is the same set). The reference
      ``get_transfer_index_dynamic`` also commits the last position when only it fails; not reproduced here.

    Ties are broken by position (lowest first). Rows without an eligible position commit nothing.
    """
    if (threshold is None) == (factor is None):
        raise ValueError("pass exactly one of threshold or factor")
    conf = torch.where(eligible, conf.to(torch.float64), torch.full_like(conf, float("-inf"), dtype=torch.float64))
    rank = _ranks(conf)
    if threshold is not None:
        take = conf >= threshold
    else:
        k = rank.to(torch.float64) + 1.0  # 1-based rank
        ok = conf >= 1.0 - factor / (k + 1.0)
        # longest prefix in rank order: position of the first failure in sorted order
        sorted_ok = torch.zeros_like(ok).scatter_(-1, rank, ok)
        sorted_ok &= torch.zeros_like(eligible).scatter_(-1, rank, eligible)
        n_pass = torch.cumprod(sorted_ok.long(), dim=-1).sum(dim=-1, keepdim=True)
        take = rank < n_pass
    return (take | (rank == 0)) & eligible


class BlockCachedDenoiser(Protocol):
    """A time-free denoiser with Fast-dLLM's block-wise approximate key/value cache (Wu et al. 2025, Sec. 3.2).

    ``refresh(x [R, L]) -> (logits [R, L, V], state)``: an ordinary full forward that also returns every layer's
    keys and values (``state``). ``window(x_w [R, W], state, lo) -> logits [R, W, V]``: a forward over the
    positions ``lo .. lo + W - 1`` only, whose queries attend to the fresh keys/values of the window and the
    *cached* ones of every position outside it. ``select(state, rows)``: the state of a subset of rows.
    """

    def refresh(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]: ...

    def window(self, x_w: torch.Tensor, state: Any, lo: int) -> torch.Tensor: ...

    def select(self, state: Any, rows: torch.Tensor) -> Any: ...


CACHES = ("none", "prefix", "dual")


def _draw_window(rng: Rng, probs: torch.Tensor, lo: int, length: int, rows: torch.Tensor, prec: Precision) -> torch.Tensor:
    """Categorical draws for window positions ``lo .. lo + W - 1`` that consume each generator exactly as a draw
    over all ``length`` positions does, so a cached and an uncached run with the same seeds draw the same
    numbers (the positions outside the window get a point mass that is never used)."""
    r, w, v = probs.shape
    if w == length:
        return rng.categorical(probs, prec, rows=rows)
    full = probs.new_zeros((r, length, v))
    full[..., 0] = 1.0
    full[:, lo : lo + w] = probs
    return rng.categorical(full, prec, rows=rows)[:, lo : lo + w]


def low_confidence_remasking(
    denoiser: TimeFreeDenoiser | BlockCachedDenoiser,
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
    threshold: float | None = None,
    factor: float | None = None,
    cache: str = "none",
) -> SamplerOutput:
    """LLaDA generation of the masked positions of ``x [B, L]`` after ``prompt_length``.

    ``gen_length = L - prompt_length`` must be a multiple of ``block_length`` (default ``gen_length``) and
    ``steps`` a multiple of the number of blocks. Masked positions inside the prompt or fixed tokens after
    it are allowed (infilling): only positions holding ``mask_id`` change. The mask column is never
    predicted. A row is evaluated only at steps where it commits a token (its own draws depend only on its
    own state); ``nfe`` counts batched calls (two per step with CFG), ``row_nfe`` each row's calls.

    Fast-dLLM (Wu et al. 2025, arXiv 2505.22618; reference ``llada/generate.py``):

    - ``threshold`` / ``factor`` (parallel decoding, :func:`parallel_commit`): a block is decoded in as many
      steps as it takes, each step committing every masked position of the block the rule accepts (at least
      one); ``steps`` then only fixes the block schedule's divisibility. ``threshold = 1`` commits exactly one
      token per step unless a prediction has probability exactly 1 in float64: the same outputs as
      ``steps = gen_length`` without it. Needs ``remasking = "low_confidence"`` (a confidence to threshold).
    - ``cache = "prefix" | "dual"`` (``denoiser`` a :class:`BlockCachedDenoiser`): the first step of every block
      is a full forward that stores every layer's keys/values; the block's later steps run the network over
      the positions ``[block start, L)`` (``prefix``: the prefix's keys/values reused) or over the block alone
      (``dual``: prefix and suffix reused). Exact at each block's first step; **approximate** afterwards: the
      reused keys/values of layers above the first were computed from the canvas at the block's start, and in
      a bidirectional network they depend on the block's tokens, which have changed since (with one layer the
      cache is exact). Draws consume the generators as the uncached sampler does (:func:`_draw_window`).
    """
    prec = check_precision(precision)
    if remasking not in ("low_confidence", "random"):
        raise ValueError("remasking must be 'low_confidence' or 'random'")
    parallel = threshold is not None or factor is not None
    if threshold is not None and factor is not None:
        raise ValueError("pass at most one of threshold and factor")
    if parallel and remasking != "low_confidence":
        raise ValueError("threshold / factor decoding needs remasking='low_confidence'")
    if threshold is not None and not 0 < threshold <= 1:
        raise ValueError(f"threshold must lie in (0, 1], not {threshold}")
    if factor is not None and not factor > 0:
        raise ValueError(f"factor must be > 0, not {factor}")
    if cache not in CACHES:
        raise ValueError(f"cache must be one of {', '.join(CACHES)}, not {cache!r}")
    if cache != "none" and (cfg_scale > 0 or not hasattr(denoiser, "window")):
        raise ValueError("a key/value cache needs cfg_scale 0 and a BlockCachedDenoiser")
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
        masked0 = ((x == mask_id) & in_block).sum(dim=-1)
        quota = transfer_counts(masked0, per_block)
        state: Any = None
        slot = torch.full((b,), -1, dtype=torch.long)  # row -> its index in the cached state
        j = 0
        while True:
            if parallel:
                rows = ((x == mask_id) & in_block).any(dim=-1).nonzero().squeeze(-1)
            elif j < per_block:
                rows = (quota[:, j] > 0).nonzero().squeeze(-1)
            else:
                break
            if parallel and rows.numel() == 0:
                break
            j += 1
            if rows.numel() == 0:
                continue
            xr = x[rows]
            w_lo, w_hi = 0, length  # the window of positions whose logits this step computes
            if cache == "none":
                logits = denoiser(xr)
            elif state is None:
                logits, state = denoiser.refresh(xr)  # type: ignore[union-attr]
                slot[rows.cpu()] = torch.arange(rows.numel())
            else:
                w_lo, w_hi = lo, (length if cache == "prefix" else hi)
                sub = denoiser.select(state, slot[rows.cpu()].to(x.device))  # type: ignore[union-attr]
                logits = denoiser.window(xr[:, w_lo:w_hi], sub, w_lo)  # type: ignore[union-attr]
            nfe += 1
            if cfg_scale > 0:
                un = uncond_denoiser(xr) if uncond_denoiser is not None else denoiser(torch.where(given[rows], torch.full_like(xr, mask_id), xr))  # type: ignore[operator]
                nfe += 1
                logits = un + (cfg_scale + 1.0) * (logits - un)
            row_nfe[rows.cpu()] += 1
            xw = xr[:, w_lo:w_hi]
            lp = clean_log_probs(logits, mask_id, precision=prec)
            if temperature == 0:
                x0 = lp.argmax(dim=-1)
            else:
                assert rng is not None
                probs = clean_log_probs(logits, mask_id, temperature=temperature, top_p=top_p, precision=prec).exp()
                x0 = _draw_window(rng, probs, w_lo, length, rows.cpu(), prec)
            if remasking == "low_confidence":
                conf = lp.gather(-1, x0[..., None]).squeeze(-1).to(torch.float64)
            else:
                assert rng is not None
                conf = rng.uniform((length,), rows=rows.cpu(), device=x.device)[:, w_lo:w_hi]
            eligible = (xw == mask_id) & in_block[None, w_lo:w_hi]
            if parallel:
                commit = parallel_commit(conf.exp(), eligible, threshold=threshold, factor=factor)
            else:
                conf = torch.where(eligible, conf, torch.full_like(conf, float("-inf")))
                commit = (_ranks(conf) < quota[rows, j - 1][:, None]) & eligible
            xr[:, w_lo:w_hi] = torch.where(commit, x0, xw)
            x[rows] = xr
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
