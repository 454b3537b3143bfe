"""Samplers of diffusion LMs as pure functions over a denoiser callable (shared by MDLM, SEDD, LLaDA).

Every sampler takes the denoiser, a canvas ``x [B, L]`` (``mask_id`` where tokens are generated; every
other token is fixed and never changed: prefixes, infilling), its step settings, and either a shared
``torch.Generator`` or per-row ``seeds``; it returns a :class:`SamplerOutput` (``tokens, nfe = out``).
All categorical draws go through :mod:`dlmbench.categorical` (float64 unless ``precision="float32"``).

- :mod:`.masked`     MDLM ``ddpm`` / ``ddpm_cache``, first-hitting, semi-autoregressive windows
- :mod:`.sedd`       SEDD Euler / analytic tau-leaping + final denoiser (absorbing and uniform graphs)
- :mod:`.remasking`  LLaDA low-confidence / random remasking (blocks, CFG), diffusion-vs-ar top-k decoding
- :mod:`.common`     denoiser types, output record, per-row randomness, clean-token distribution, canvas
"""

from .common import (
    Denoiser,
    Rng,
    SamplerOutput,
    ScoreFn,
    TimeFreeDenoiser,
    clean_log_probs,
    clean_probs,
    make_rng,
    masked_canvas,
)
from .masked import ancestral_step_probs, ddpm, ddpm_cache, first_hitting, mdlm_ancestral, semi_autoregressive
from .remasking import llada_generate, low_confidence_remasking, topk_decoding, transfer_counts
from .sedd import sedd_analytic, sedd_euler, sedd_sample

__all__ = [
    "Denoiser",
    "Rng",
    "SamplerOutput",
    "ScoreFn",
    "TimeFreeDenoiser",
    "ancestral_step_probs",
    "clean_log_probs",
    "clean_probs",
    "ddpm",
    "ddpm_cache",
    "first_hitting",
    "llada_generate",
    "low_confidence_remasking",
    "make_rng",
    "masked_canvas",
    "mdlm_ancestral",
    "sedd_analytic",
    "sedd_euler",
    "sedd_sample",
    "semi_autoregressive",
    "topk_decoding",
    "transfer_counts",
]
