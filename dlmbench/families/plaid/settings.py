"""Plaid's typed settings (the family table names this class: :mod:`dlmbench.plugins`).

Defaults follow the Plaid reference (https://github.com/igul222/plaid: ``train.py``'s evaluation bound with
1/8 of the rows on the reconstruction term and the other rows' times spread over ``[0, 1]`` (``time_sampling:
stratified``, :func:`dlmbench.families.plaid.estimator.plaid_vlb_mc`); ``sample.py`` with 4096 steps, score temperature 0.9 and token-guidance
weight 2.0). The greedy check ``replacement_ddim`` is dlmbench's (see :mod:`dlmbench.families.plaid.adapter`).

One name per concept (issue 13): the sampling steps are ``steps``, as in every other family. The old
name ``sampling_steps`` is still accepted (cards, ``--set``, ``sample(..., sampling_steps=...)``) and read as
``steps``, with a one-line deprecation notice on stderr (once per process). Result rows record ``steps``;
``dlmbench regress`` reads ``sampling_steps`` in older rows as ``steps``
(:data:`dlmbench.regress.matching.RENAMED_SETTINGS`). No torch import here.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar, Literal, get_args

from pydantic import Field, model_validator

from dlmbench.diffusion.settings import BATCH_SIZE_DOC, TimeSampling
from dlmbench.errors import BadSetting
from dlmbench.specs.settings import Settings

Sampler = Literal["ancestral", "ddim"]
SAMPLERS: tuple[str, ...] = get_args(Sampler)

_warned: set[str] = set()


class PlaidSettings(Settings):
    """Settings of a Plaid model card (``settings:``) or ``--set``."""

    #: old name -> new name: the old name is read as the new one, with a deprecation notice (an override
    #: under either name replaces the other: :meth:`dlmbench.specs.ModelSpec.with_settings`)
    renamed_settings: ClassVar[dict[str, str]] = {"sampling_steps": "steps"}

    batch_size: int = Field(8, ge=1, description=BATCH_SIZE_DOC)
    mc_samples: int = Field(32, ge=1, description="Monte Carlo draws of the bound per request")
    reconst_prob: float = Field(
        0.125, gt=0.0, lt=1.0,
        description="share of the draws spent on the reconstruction term, in (0, 1) (reference: 1/8); under iid the probability per draw",
    )
    time_sampling: TimeSampling = Field(
        "stratified",
        description="bound design: stratified (= antithetic; fixed reconstruction rows, stratified t), systematic (the reference's one offset), iid",
    )
    steps: int = Field(4096, ge=1, description="sampling steps (paper / sample.py: 4096); formerly sampling_steps")
    score_temp: float = Field(0.9, gt=0.0, description="score temperature of the sampler, > 0 (sample.py: 0.9)")
    initial_noise_scale: float = Field(1.0, ge=0.0, description="scale of the initial Gaussian noise z_1, >= 0")
    sampler: Sampler = Field("ancestral", description="ancestral (VDM, sample.py) or ddim (sample.py --ddim_sampler)")
    guidance_weight: float = Field(2.0, ge=0.0, description="token-guidance weight of a prefix / infill's known tokens, >= 0")
    greedy: Literal["replacement_ddim"] = Field(
        "replacement_ddim", description="greedy check: replacement_ddim (deterministic DDIM decode, context replaced)"
    )
    greedy_steps: int = Field(256, ge=1, description="DDIM steps of the greedy check")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for old, new in cls.renamed_settings.items():
            if old not in data:
                continue
            data = dict(data)
            value = data.pop(old)
            if new in data and data[new] != value:
                # BadSetting (not ValueError) passes through pydantic as it is: one line naming both keys
                raise BadSetting(f"plaid settings: {old!r} (the old name of {new!r}) = {value!r} and {new!r} = {data[new]!r} "
                                 f"disagree; give only {new!r}")
            data[new] = value
            if old not in _warned:
                _warned.add(old)
                print(f"dlmbench: plaid setting {old!r} is deprecated; use {new!r}", file=sys.stderr)
        return data


__all__ = ["PlaidSettings", "SAMPLERS", "Sampler"]
