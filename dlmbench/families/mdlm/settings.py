"""MDLM's typed settings (the family table names this class: :mod:`dlmbench.plugins`).

Fields shared with SEDD (bound, schedule, greedy check, canvas sampler) come from
:class:`dlmbench.diffusion.settings.CanvasSettings`; MDLM adds its samplers, the final argmax of leftover
masks (``noise_removal``) and the schedule of the easy-first ``topk`` decoding. Defaults follow the MDLM
reference (https://github.com/kuleshov-group/mdlm, ``configs/config.yaml``: ``training.antithetic_sampling``,
``training.sampling_eps``, ``sampling.predictor``, ``sampling.noise_removal``) and
diffusion-vs-ar's ``decoding_strategy`` (https://github.com/HKUNLP/diffusion-vs-ar) for ``topk``. ``t_estimator``
is dlmbench's: the same NELBO with ``t`` integrated out for time-agnostic networks
(:func:`dlmbench.diffusion.masked.mdlm_nelbo_integrated_mc`), far less variance per forward pass.
No torch import here.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import Field, field_validator

from dlmbench.diffusion.settings import CanvasSettings

Sampler = Literal["ddpm_cache", "ddpm", "ancestral", "first_hitting", "topk", "confidence"]
SAMPLERS: tuple[str, ...] = get_args(Sampler)

#: ``<deterministic|stochastic<scale>>-<linear|cosine>`` (:func:`dlmbench.diffusion.remasking.topk_decoding`)
TOPK_STRATEGY = re.compile(r"^(deterministic|stochastic(\d+(\.\d*)?|\.\d+))-(linear|cosine)$")


class MDLMSettings(CanvasSettings):
    """Settings of an MDLM model card (``settings:``) or ``--set``."""

    sampler: Sampler = Field(
        "ddpm_cache",
        description="ddpm_cache (MDLM's default predictor), ddpm (= ancestral), ancestral, first_hitting, topk (easy-first top-k decoding), "
        "or confidence (low-confidence remasking; Fast-dLLM parallel decoding with threshold / factor)",
    )
    t_estimator: Literal["auto", "sampled", "integrated"] = Field(
        "auto",
        description="bound: sampled t (MDLM's estimator), integrated (t integrated out exactly; time-agnostic networks only), "
        "auto (integrated when the network is time-agnostic)",
    )
    steps: int = Field(1000, ge=1, description="sampling steps (MDLM README / HF model card: 1000)")
    noise_removal: bool = Field(True, description="final argmax of the masks left after the last step (MDLM sampling.noise_removal)")
    topk_strategy: str = Field(
        "stochastic0.5-linear",
        description="sampler topk's re-masking schedule: <deterministic|stochastic<scale>>-<linear|cosine>",
    )

    @field_validator("topk_strategy")
    @classmethod
    def _strategy(cls, v: str) -> str:
        if not TOPK_STRATEGY.match(v):
            raise ValueError("expected <deterministic|stochastic<scale>>-<linear|cosine>, e.g. stochastic0.5-linear")
        return v


__all__ = ["MDLMSettings", "SAMPLERS", "Sampler"]
