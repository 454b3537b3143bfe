"""BD3-LM's typed settings (the family table names this class: :mod:`dlmbench.plugins`).

Defaults follow kuleshov-group/bd3lms ``configs/config.yaml`` and ``noise_schedule.py``: ``t ~ U[1e-3, 1]`` per
block (``training.sampling_eps_min/max``, the interval the reference reports as an ELBO), antithetic times
(``training.antithetic_sampling``), log-linear noise with masking probability ``t`` (``noise_eps: 0``), the
first-hitting block sampler (``sampling.first_hitting: True``), nucleus off (``sampling.nucleus_p: 1.0``; the
gen-PPL scripts pass 0.9), and float64 categorical draws (the reference casts the model output to float64).
No torch import here.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from dlmbench.diffusion.settings import BATCH_SIZE_DOC, PRECISION_DOC, GreedyMethod, Precision, TimeSampling, UnitEps
from dlmbench.specs.settings import Settings

Sampler = Literal["first_hitting", "ddpm_cache", "ddpm"]
SAMPLERS: tuple[str, ...] = get_args(Sampler)


class BD3LMSettings(Settings):
    """Settings of a BD3-LM model card (``settings:``) or ``--set``."""

    batch_size: int = Field(8, ge=1, description=BATCH_SIZE_DOC)
    block_size: int | None = Field(
        None, ge=1, description="block size L' of the bound and the sampler; null: the checkpoint's (what it was trained with)")
    mc_samples: int = Field(32, ge=1, description="Monte Carlo draws of the block NELBO per request (block size 1: exact, no draws)")
    time_sampling: TimeSampling = Field(
        "antithetic", description="how each block's times t are coupled across the draws: iid, antithetic (= stratified), systematic")
    sampling_eps: UnitEps = Field(1e-3, description="block times t ~ U[sampling_eps, 1]; in [0, 1)")
    noise_eps: UnitEps = Field(0.0, description="log-linear schedule, masking probability (1 - eps) t; bd3lms: 0")
    greedy: GreedyMethod = Field(
        "iterative_confidence", description="greedy check per block: iterative_confidence (most confident first) or one_shot_argmax")
    sampler: Sampler = Field("first_hitting", description="block sampler: first_hitting (reference default), ddpm_cache or ddpm")
    steps: int = Field(1000, ge=1, description="ancestral steps per block (ddpm, ddpm_cache); first_hitting takes one per token")
    sampler_eps: UnitEps = Field(1e-5, description="ancestral times linspace(1, sampler_eps, steps + 1) in each block")
    temperature: float = Field(1.0, ge=0.0, description="sampling temperature, >= 0 (0: argmax tokens)")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="nucleus sampling mass in (0, 1]; null: off (gen-PPL scripts: 0.9)")
    precision: Precision = Field("float64", description=PRECISION_DOC)
    kv_cache: bool = Field(
        False, description="sampling: cache the clean past's keys/values per block (same conditionals; reference default off, gen-PPL scripts on)")


__all__ = ["BD3LMSettings", "SAMPLERS", "Sampler"]
