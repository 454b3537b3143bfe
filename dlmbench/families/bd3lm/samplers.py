"""BD3-LM's sampler: blocks left to right (semi-autoregressive), each block denoised by a masked-diffusion
sampler conditioned on the clean blocks before it (reference ``diffusion.py:_semi_ar_sampler`` with
``_ddpm_caching_update``; Arriola et al. 2025, Alg. 2).

Denoiser: ``denoiser(x [B, e], sigma [B] or None) -> log p_theta [B, e, V]``, the single-stream block-causal
forward (:meth:`~dlmbench.families.bd3lm.backbone.BD3LMNet.forward_block_causal`): every block sees itself and
the blocks before it. For block ``b`` (positions ``[s, e)``) the shared samplers of
:mod:`dlmbench.diffusion.masked_samplers` run on the view ``x[:, start:e]``; every position before ``s`` is
already clean, and those samplers only ever fill ``mask_id`` positions, so they fill exactly block ``b``:

- ``first_hitting`` (the reference default, ``sampling.first_hitting: True``; Zheng et al. 2024): one token per
  network call, a uniformly random masked position of the block, event times from the hitting-time law;
- ``ddpm_cache`` / ``ddpm``: ``steps`` ancestral steps per block, times ``linspace(1, eps, steps + 1)``, the
  cached variant reusing ``p_theta`` while the block is unchanged (exact for the published, time-agnostic
  checkpoints); masks left after the last step filled by argmax (``final``).

Nucleus (``top_p``) and temperature act on the clean-token distribution, categorical draws in ``precision``
(float64 by default). The view starts ``window`` tokens before ``e`` at most, rounded up to a block boundary
(the reference's sliding context of ``model_length`` tokens). Randomness: block ``b`` of row ``r`` draws from
``request_seed(seeds[r], "block", b)`` only, so a row does not depend on its neighbours or the batch size.

KV cache (``prefix_denoiser``, the reference's ``sampling.kv_cache``): for each block the clean past of the view is
run through the network once (``prefix_denoiser(prefix)`` returns a denoiser over views with that prefix), and each
call then runs the block alone against the cached keys and values: the same conditionals, up to float rounding.
Without it every call re-reads the clean past. The cache is rebuilt per block (one pass over the view's prefix),
not extended incrementally.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Optional

import torch

from dlmbench.diffusion.masked_samplers import first_hitting, mdlm_ancestral
from dlmbench.diffusion.sampling import SamplerOutput
from dlmbench.diffusion.schedules import NoiseSchedule
from dlmbench.seeding import request_seed

BLOCK_SAMPLERS = ("first_hitting", "ddpm_cache", "ddpm")


def block_semi_ar(
    denoiser: Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor],
    x: torch.Tensor,
    *,
    block_size: int,
    mask_id: int,
    seeds: Sequence[int],
    schedule: NoiseSchedule,
    sampler: str = "first_hitting",
    steps: int = 1000,
    eps: float = 1e-5,
    window: int | None = None,
    temperature: float = 1.0,
    top_p: float | None = None,
    precision: str = "float64",
    final: str | None = "argmax",
    prefix_denoiser: Callable[[torch.Tensor], Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]] | None = None,
) -> SamplerOutput:
    """Fill the ``mask_id`` positions of ``x [B, L]`` block by block (module docstring). Returns the tokens,
    the batched network calls summed over blocks, and each row's calls."""
    if sampler not in BLOCK_SAMPLERS:
        raise ValueError(f"unknown BD3-LM sampler {sampler!r}; known: {', '.join(BLOCK_SAMPLERS)}")
    bs = int(block_size)
    x = x.clone()
    b_rows, length = x.shape
    win = int(window or length)
    nfe = 0
    row_nfe = torch.zeros(b_rows, dtype=torch.long)
    common = dict(mask_id=mask_id, schedule=schedule, temperature=temperature, top_p=top_p, precision=precision)
    for blk, s in enumerate(range(0, length, bs)):
        e = min(s + bs, length)
        if not bool((x[:, s:e] == mask_id).any()):
            continue
        start = max(0, -(-(e - win) // bs) * bs)  # a block boundary, at most `window` tokens before e
        view = x[:, start:e]
        den = prefix_denoiser(view[:, : s - start]) if prefix_denoiser is not None and s > start else denoiser
        block_seeds = [request_seed(int(sd), "block", blk) for sd in seeds]
        if sampler == "first_hitting":
            out = first_hitting(den, view, seeds=block_seeds, **common)
        else:
            out = mdlm_ancestral(den, view, steps=steps, eps=eps, cache=sampler == "ddpm_cache", final=final,
                                 seeds=block_seeds, **common)
        if not torch.equal(out.tokens[:, : s - start], view[:, : s - start]):  # pragma: no cover - sampler contract
            raise RuntimeError("a block sampler changed the clean past")
        x[:, start:e] = out.tokens
        nfe += int(out.nfe)
        row_nfe += out.row_nfe.cpu() if out.row_nfe.numel() else int(out.nfe)
    return SamplerOutput(x, nfe, row_nfe)


__all__ = ["BLOCK_SAMPLERS", "block_semi_ar"]
