"""Likelihood bounds of diffusion LMs as pure functions over a denoiser callable.

No I/O and no global RNG: every random choice comes from an explicit ``torch.Generator`` (or, in the
``*_mc`` functions, from per-request seeds; see :mod:`dlmbench.estimators.montecarlo`).

- :mod:`.time_sampling`  diffusion times (iid / MDLM antithetic / systematic), LLaDA mask counts
- :mod:`.masked`         MDLM continuous-time NELBO, LLaDA conditional bound, greedy checks
- :mod:`.score_entropy`  SEDD's DWDSE bound (absorbing and uniform graphs) and its prior term
- :mod:`.montecarlo`     per-request seeding of draws, mean and standard error
Noise schedules live in :mod:`dlmbench.noise`.
"""

from .masked import (
    Denoiser,
    iterative_confidence,
    llada_bound,
    llada_bound_mc,
    mask_from_uniforms,
    PositionalDenoiser,
    masked_nll_sum,
    target_log_probs,
    mdlm_nelbo,
    mdlm_nelbo_mc,
    one_shot_argmax,
    subset_mask_from_uniforms,
)
from .montecarlo import MCEstimate, draw_generator
from .score_entropy import AbsorbingGraph, ScoreFn, UniformGraph, sedd_bound, sedd_bound_mc, sedd_prior_kl
from .time_sampling import TIME_SCHEMES, TimeScheme, sample_times, stratified_mask_counts, times_from_uniforms

__all__ = [
    "AbsorbingGraph",
    "Denoiser",
    "MCEstimate",
    "ScoreFn",
    "TIME_SCHEMES",
    "TimeScheme",
    "UniformGraph",
    "draw_generator",
    "iterative_confidence",
    "llada_bound",
    "llada_bound_mc",
    "mask_from_uniforms",
    "masked_nll_sum",
    "PositionalDenoiser",
    "target_log_probs",
    "mdlm_nelbo",
    "mdlm_nelbo_mc",
    "one_shot_argmax",
    "sample_times",
    "sedd_bound",
    "sedd_bound_mc",
    "sedd_prior_kl",
    "stratified_mask_counts",
    "subset_mask_from_uniforms",
    "times_from_uniforms",
]
