"""DUO's typed settings (the family table names this class: :mod:`dlmbench.plugins`).

Defaults follow s-sahoo/duo ``configs/config.yaml``, ``configs/algo/duo_base.yaml`` and ``configs/noise/log-linear.yaml``:
``t ~ U[1e-3, 1]`` (``training.sampling_eps``), antithetic times (``training.antithetic_sampling``), log-linear
``alpha_t = 1 - (1 - 1e-3) t`` (``noise.eps``), the ancestral sampler with ``sampling.steps: 1000``, ancestral noise
removal, nucleus off (``sampling.p_nucleus: 1.0``) and float64 draws (``sampling.use_float64: True``). The distilled
model's few-step sampler is ``steps: 8, noise_removal: greedy`` (README). No torch import here.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from dlmbench.diffusion.settings import BATCH_SIZE_DOC, PRECISION_DOC, Precision, TimeSampling, UnitEps
from dlmbench.specs.settings import Settings

Sampler = Literal["ancestral"]
SAMPLERS: tuple[str, ...] = get_args(Sampler)
NoiseRemoval = Literal["ancestral", "greedy", "none"]
Greedy = Literal["one_shot_argmax"]


class DUOSettings(Settings):
    """Settings of a DUO model card (``settings:``) or ``--set``."""

    batch_size: int = Field(8, ge=1, description=BATCH_SIZE_DOC)
    mc_samples: int = Field(32, ge=1, description="Monte Carlo draws of the uniform-state NELBO per request")
    time_sampling: TimeSampling = Field(
        "antithetic", description="how the draws' times t are coupled: iid, antithetic (= stratified), systematic")
    sampling_eps: UnitEps = Field(1e-3, description="times t ~ U[sampling_eps, 1]; in [0, 1)")
    noise_eps: UnitEps = Field(1e-3, description="log-linear schedule alpha_t = 1 - (1 - eps) t (reference noise.eps 1e-3)")
    greedy: Greedy = Field(
        "one_shot_argmax", description="greedy check: the continuation replaced by prior noise (seeded), one call at t = 1, each target the argmax")
    sampler: Sampler = Field("ancestral", description="ancestral: uniform-state posterior steps (reference predictor: ancestral)")
    steps: int = Field(1000, ge=1, description="ancestral steps (reference sampling.steps 1000; the distilled model: 8)")
    sampler_eps: UnitEps = Field(1e-5, description="sampling times linspace(1, sampler_eps, steps + 1)")
    noise_removal: NoiseRemoval = Field(
        "ancestral", description="last step at t = sampler_eps: ancestral (reference default), greedy (argmax: the greedy-tail / few-step sampler), none")
    temperature: float = Field(1.0, ge=0.0, description="temperature of p_theta, >= 0 (0: its argmax)")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="nucleus mass on p_theta in (0, 1]; null: off")
    precision: Precision = Field("float64", description=PRECISION_DOC)


__all__ = ["DUOSettings", "SAMPLERS", "Sampler"]
