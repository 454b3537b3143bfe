"""Samplers of masked (absorbing) diffusion over a :data:`Denoiser`: MDLM ancestral (``ddpm``), cached
ancestral (``ddpm_cache``), the first-hitting sampler, and semi-autoregressive windows.

Ancestral step (D3PM / MDLM, Sahoo et al. 2024 eq. 7; reference ``diffusion.py:_ddpm_update``): from time
``t`` to ``s < t`` with masking probabilities ``m_t = 1 - exp(-sigma(t))`` and ``m_s``, every masked position
independently draws from

    q(x_s^i | x_t) = (m_t - m_s)/m_t * p_theta(x0^i | x_t)   (a clean token)   +   m_s/m_t * [stay masked],

as **one** categorical over ``V + 1`` outcomes (the reference's joint draw, where the float32 Gumbel
truncation of Zheng et al. 2024 acts); unmasked positions are copied. MDLM's cached sampler
(``_ddpm_caching_update``) reuses ``p_theta(x0 | x_t)`` while ``x_t`` does not change, which is exact for a
time-agnostic denoiser (MDLM's released checkpoints); NFE <= steps.

First-hitting sampler (Zheng et al. 2024, arXiv 2409.02908, Alg. 1; bd3lms ``sampling.first_hitting``):
with ``n`` masked tokens at masking level ``m_t``, each token's unmasking time is independent with
``P(still masked at s | masked at t) = m_s / m_t``, so the first of them to unmask (going backward) has
``m_s = m_t * u^(1/n)``, ``u ~ U(0,1)``; it is a uniformly random masked position and takes a token drawn
from ``p_theta(x0^i | x_t)`` at that time. Exactly one token per event: NFE = number of masked tokens, and
with an exact denoiser the samples follow the data distribution exactly (any-order autoregression).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from dlmbench.diffusion.schedules import LogLinearNoise, NoiseSchedule
from dlmbench.diffusion.sampling import Denoiser, SamplerOutput, check_precision, clean_probs, make_rng

__all__ = ["ancestral_step_probs", "mdlm_ancestral", "ddpm", "ddpm_cache", "first_hitting", "semi_autoregressive"]


def ancestral_step_probs(p_x0: torch.Tensor, m_t: torch.Tensor, m_s: torch.Tensor) -> torch.Tensor:
    """``[R, L, V + 1]`` probabilities of one ancestral step: ``p_x0 (m_t - m_s)/m_t`` for the ``V`` clean
    tokens and ``m_s / m_t`` (last column) for staying masked. ``m_t, m_s``: ``[R]``."""
    keep = (m_s / m_t).to(p_x0.dtype)[:, None, None]
    move = 1.0 - keep
    stay = keep.expand(*p_x0.shape[:2], 1)
    return torch.cat([p_x0 * move, stay], dim=-1)


def mdlm_ancestral(
    denoiser: Denoiser,
    x: torch.Tensor,
    *,
    mask_id: int,
    steps: int,
    generator: torch.Generator | None = None,
    seeds: Sequence[int] | None = None,
    schedule: NoiseSchedule | None = None,
    eps: float = 1e-5,
    cache: bool = False,
    temperature: float = 1.0,
    top_p: float | None = None,
    precision: str = "float64",
    final: str | None = "argmax",
) -> SamplerOutput:
    """MDLM ancestral sampling (``cache=False``: ``ddpm``; ``cache=True``: ``ddpm_cache``).

    ``x [B, L]``: the canvas; positions holding ``mask_id`` are generated, every other token is fixed
    (prefix, infilling) and never changed. Times ``linspace(1, eps, steps + 1)`` (MDLM ``_sample``); the
    denoiser gets ``sigma(t)`` of ``schedule`` (default log-linear, eps 1e-3). Temperature and nucleus
    ``top_p`` act on the clean-token distribution ``p_theta(x0 | x_t)``.

    After the loop, positions still masked (probability ``m(eps)/m(t_1)`` each) are filled by ``final``:
    ``"argmax"`` (MDLM ``noise_removal``), ``"sample"`` (a draw from the clean distribution), or ``None``
    (left masked). That call counts as one NFE and is made only if a mask remains.

    NFE: ``cache=False`` one call per step while any row has a mask; ``cache=True`` a row is re-evaluated
    only if it changed since its last evaluation (rows that did not change keep their cached
    ``p_theta``; valid for time-agnostic denoisers), so ``nfe <= steps`` (+1 for ``final``).
    """
    prec = check_precision(precision)
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if final not in ("argmax", "sample", None):
        raise ValueError("final must be 'argmax', 'sample' or None")
    sched = schedule if schedule is not None else LogLinearNoise()
    x = x.clone()
    b, _ = x.shape
    rng = make_rng(b, generator, seeds, device=x.device)
    times = torch.linspace(1.0, eps, steps + 1, dtype=torch.float64)
    row_nfe = torch.zeros(b, dtype=torch.long)
    nfe = 0
    cached: torch.Tensor | None = None
    valid = torch.zeros(b, dtype=torch.bool)
    ckw = dict(temperature=temperature, top_p=top_p, precision=prec)

    def evaluate(rows: torch.Tensor, t: float) -> torch.Tensor:
        nonlocal nfe
        tt = torch.full((len(rows),), t, dtype=torch.float64, device=x.device)
        lp = denoiser(x[rows], sched.sigma(tt))
        nfe += 1
        row_nfe[rows.cpu()] += 1
        return clean_probs(lp, mask_id, **ckw)

    for i in range(steps):
        masked = x == mask_id
        active = masked.any(dim=-1).nonzero().squeeze(-1)
        if active.numel() == 0:
            break
        t, s = float(times[i]), float(times[i + 1])
        need = active[~valid[active.cpu()].to(active.device)] if cache else active
        if need.numel() > 0:
            fresh = evaluate(need, t)
            if cached is None:
                cached = torch.zeros((b, *fresh.shape[1:]), dtype=fresh.dtype, device=x.device)
            cached[need] = fresh
            valid[need.cpu()] = True
        assert cached is not None
        m_t = sched.mask_prob(torch.full((len(active),), t, dtype=torch.float64, device=x.device))
        m_s = sched.mask_prob(torch.full((len(active),), s, dtype=torch.float64, device=x.device))
        probs = ancestral_step_probs(cached[active], m_t, m_s)
        draw = rng.categorical(probs, prec, rows=active.cpu())
        vocab = probs.shape[-1] - 1
        new = torch.where(draw == vocab, torch.full_like(draw, mask_id), draw)
        xa = x[active]
        xa = torch.where(masked[active], new, xa)
        changed = (xa != x[active]).any(dim=-1)
        x[active] = xa
        valid[active[changed].cpu()] = False

    still = (x == mask_id).any(dim=-1).nonzero().squeeze(-1)
    if final is not None and still.numel() > 0:
        probs = evaluate(still, float(times[-1]))
        fill = probs.argmax(dim=-1) if final == "argmax" else rng.categorical(probs, prec, rows=still.cpu())
        xs = x[still]
        x[still] = torch.where(xs == mask_id, fill, xs)
    return SamplerOutput(x, nfe, row_nfe)


def ddpm(denoiser: Denoiser, x: torch.Tensor, **kw) -> SamplerOutput:
    """MDLM ``ddpm`` predictor: :func:`mdlm_ancestral` without caching."""
    return mdlm_ancestral(denoiser, x, cache=False, **kw)


def ddpm_cache(denoiser: Denoiser, x: torch.Tensor, **kw) -> SamplerOutput:
    """MDLM ``ddpm_cache`` predictor: :func:`mdlm_ancestral` reusing ``p_theta`` while ``x_t`` is unchanged."""
    return mdlm_ancestral(denoiser, x, cache=True, **kw)


def first_hitting(
    denoiser: Denoiser,
    x: torch.Tensor,
    *,
    mask_id: int,
    generator: torch.Generator | None = None,
    seeds: Sequence[int] | None = None,
    schedule: NoiseSchedule | None = None,
    temperature: float = 1.0,
    top_p: float | None = None,
    precision: str = "float64",
) -> SamplerOutput:
    """First-hitting sampler (Zheng et al. 2024): one token per event, event times from the hitting-time law.

    Works in masking-probability space ``m = 1 - exp(-sigma)``, so any schedule works without inverting it:
    start at ``m = schedule.mask_prob(1)``, at each event ``m <- m * u^(1/n)`` (``n`` = masked tokens left in
    the row), call the denoiser at ``sigma = -log(1 - m)``, pick a uniformly random masked position and draw
    its token from the clean distribution (temperature, ``top_p``). Rows are independent: a row's events
    use only its own draws (two uniforms and one categorical per event).

    NFE: ``row_nfe[b]`` = number of masked positions of row ``b``; ``nfe`` = number of batched calls =
    ``max_b row_nfe[b]``.
    """
    prec = check_precision(precision)
    sched = schedule if schedule is not None else LogLinearNoise()
    x = x.clone()
    b, _ = x.shape
    dev = x.device
    rng = make_rng(b, generator, seeds, device=dev)
    m = sched.mask_prob(torch.ones(b, dtype=torch.float64)).to(dev)
    row_nfe = torch.zeros(b, dtype=torch.long)
    nfe = 0
    while True:
        masked = x == mask_id
        n = masked.sum(dim=-1)
        active = (n > 0).nonzero().squeeze(-1)
        if active.numel() == 0:
            break
        u = rng.uniform((2,), rows=active.cpu(), device=dev)
        na = n[active].to(torch.float64)
        m[active] = m[active] * u[:, 0] ** (1.0 / na)
        sigma = -torch.log1p(-m[active])
        lp = denoiser(x[active], sigma)
        nfe += 1
        row_nfe[active.cpu()] += 1
        # the k-th masked position (k uniform on 0..n-1), in left-to-right order
        k = torch.clamp((u[:, 1] * na).long(), max=n[active] - 1)
        rank = masked[active].long().cumsum(dim=-1) - 1
        pos = ((rank == k[:, None]) & masked[active]).long().argmax(dim=-1)
        rows = torch.arange(len(active), device=dev)
        probs = clean_probs(lp[rows, pos][:, None, :], mask_id, temperature=temperature, top_p=top_p, precision=prec)[:, 0]
        tok = rng.categorical(probs, prec, rows=active.cpu())
        x[active, pos] = tok
    return SamplerOutput(x, nfe, row_nfe)


def semi_autoregressive(
    sample_window: Callable[[torch.Tensor, int], SamplerOutput],
    *,
    batch: int,
    total_length: int,
    window: int,
    stride: int,
    mask_id: int,
    prefix: torch.Tensor | Sequence[int] | None = None,
    device: str | torch.device = "cpu",
) -> SamplerOutput:
    """MDLM semi-autoregressive generation of sequences longer than the model's window
    (``diffusion.py:sample_subs_guidance``): sample a full window; then, ``stride`` tokens at a time, keep
    the last ``window - stride`` generated tokens as the clean prefix of a new window whose last ``stride``
    positions are masked, sample it, and append those ``stride`` tokens. Output truncated to
    ``total_length``.

    ``sample_window(canvas [B, window], round) -> SamplerOutput`` is any masked-diffusion sampler bound to
    its settings (``round`` lets it derive per-round seeds). ``prefix`` (optional) is written at the start of
    the first window. NFE and ``row_nfe`` are summed over rounds.
    """
    if not 0 < stride <= window:
        raise ValueError("need 0 < stride <= window")
    canvas = torch.full((batch, window), mask_id, dtype=torch.long, device=device)
    if prefix is not None:
        p = torch.as_tensor(prefix, dtype=torch.long, device=device)
        p = p[None].expand(batch, -1) if p.ndim == 1 else p
        canvas[:, : p.shape[1]] = p
    out = sample_window(canvas, 0)
    result = out.tokens
    nfe, row_nfe = out.nfe, out.row_nfe.clone() if out.row_nfe.numel() else torch.zeros(batch, dtype=torch.long)
    r = 1
    while result.shape[1] < total_length:
        keep = window - stride
        ctx = result[:, result.shape[1] - keep :] if keep > 0 else result[:, :0]
        canvas = torch.cat([ctx, torch.full((batch, stride), mask_id, dtype=torch.long, device=device)], dim=1)
        out = sample_window(canvas, r)
        if not torch.equal(out.tokens[:, :keep], ctx):  # pragma: no cover - a sampler contract violation
            raise RuntimeError("the window sampler changed its clean prefix")
        result = torch.cat([result, out.tokens[:, keep:]], dim=1)
        nfe += out.nfe
        if out.row_nfe.numel():
            row_nfe += out.row_nfe
        r += 1
    return SamplerOutput(result[:, :total_length], nfe, row_nfe)
