"""Setting types shared by the diffusion families' typed settings (:mod:`dlmbench.families.mdlm.settings`,
``sedd``, ``llada``, ``plaid``), and the settings base of the two canvas families (MDLM, SEDD).

What is shared, and why here: the choices the shared diffusion code accepts are written once, next to
that code's floor, so each family's settings type only adds its own fields:

- :data:`Precision`: the dtype of the categorical draws (:func:`dlmbench.diffusion.categorical.sample_categorical`);
- :data:`GreedyMethod`: the greedy checks of :mod:`dlmbench.diffusion.masked` (``iterative_confidence``,
  ``one_shot_argmax``), read by :meth:`dlmbench.diffusion.adapter.DiffusionLM.greedy_match`;
- :data:`TimeSampling`: the schemes of :func:`dlmbench.diffusion.timesteps.times_from_uniforms`;
- :class:`CanvasSettings`: the fields MDLM and SEDD share through :mod:`dlmbench.nets.dit_lm` and
  :class:`dlmbench.diffusion.adapter.CanvasDiffusionLM` (bound, schedule, greedy check and canvas sampler).
  A subclass narrows ``sampler`` to its own names and may change a default by redeclaring the field.
  ``threshold`` / ``factor`` belong to the ``confidence`` sampler both families have
  (:meth:`dlmbench.diffusion.adapter.CanvasDiffusionLM._confidence_canvas`).

Defaults are the MDLM reference's (``kuleshov-group/mdlm`` ``configs/config.yaml``; SEDD's own in
:mod:`dlmbench.families.sedd.settings`); ranges are those the consuming functions accept (e.g.
``LogLinearNoise.eps`` in ``[0, 1)``, :mod:`dlmbench.diffusion.schedules`).

No torch import here: settings are validated before any model loads.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from dlmbench.specs.settings import Settings

Precision = Literal["float64", "float32"]
PRECISIONS: tuple[str, ...] = ("float64", "float32")

GreedyMethod = Literal["iterative_confidence", "one_shot_argmax"]
GREEDY_METHODS: tuple[str, ...] = ("iterative_confidence", "one_shot_argmax")

TimeSampling = Literal["iid", "antithetic", "stratified", "systematic"]
TIME_SAMPLING: tuple[str, ...] = ("iid", "antithetic", "stratified", "systematic")

#: a probability-like epsilon in ``[0, 1)`` (time / noise floors)
UnitEps = Annotated[float, Field(ge=0.0, lt=1.0)]

BATCH_SIZE_DOC = "rows (request x Monte Carlo draw, or samples) per network call, or auto (the largest that fits the device); does not change a number"
PRECISION_DOC = "dtype of the categorical draws: float64 (default) or float32 (the reference's Gumbel noise)"


class CanvasSettings(Settings):
    """Settings of the DiT families that sample on a masked canvas (MDLM, SEDD)."""

    batch_size: int = Field(8, ge=1, description=BATCH_SIZE_DOC)
    mc_samples: int = Field(32, ge=1, description="Monte Carlo draws of the bound per request")
    time_sampling: TimeSampling = Field(
        "antithetic", description="how the draws' times t are coupled: iid, antithetic (= stratified, MDLM), systematic"
    )
    sampling_eps: UnitEps = Field(1e-3, description="bound times t ~ U[sampling_eps, 1]; in [0, 1)")
    noise_eps: UnitEps = Field(1e-3, description="log-linear schedule sigma(t) = -log(1 - (1 - eps) t); in [0, 1)")
    greedy: GreedyMethod = Field(
        "iterative_confidence", description="greedy check: iterative_confidence (most confident first) or one_shot_argmax"
    )
    sampler: str = Field("", description="sampler name")  # narrowed to a Literal by each family
    steps: int = Field(1000, ge=1, description="sampling steps (network calls of the ancestral samplers)")
    sampler_eps: UnitEps = Field(1e-5, description="sampler times linspace(1, sampler_eps, steps + 1); in [0, 1)")
    temperature: float = Field(1.0, ge=0.0, description="sampling temperature, >= 0 (0: argmax tokens)")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="nucleus sampling mass in (0, 1]; null: off")
    precision: Precision = Field("float64", description=PRECISION_DOC)
    semi_ar_stride: int | None = Field(
        None, ge=1, description="tokens a semi-autoregressive window advances beyond max_length; null: max_length // 2"
    )
    use_ema: bool = Field(True, description="training checkpoints: load the EMA weights, as the reference evaluation does")
    threshold: float | None = Field(
        None, gt=0.0, le=1.0,
        description="sampler confidence: commit every masked position whose prediction has probability >= threshold (at least one per "
        "network call; Fast-dLLM parallel decoding), in (0, 1]; null: steps calls, masked/steps tokens each",
    )
    factor: float | None = Field(
        None, gt=0.0, description="sampler confidence: Fast-dLLM's adaptive rule instead, the n most confident with (n + 1)(1 - c_n) <= factor"
    )

    @model_validator(mode="after")
    def _confidence_only(self) -> "CanvasSettings":
        if self.threshold is not None and self.factor is not None:
            raise ValueError("set at most one of threshold and factor")
        if (self.threshold is not None or self.factor is not None) and self.sampler != "confidence":
            raise ValueError(f"threshold / factor apply to sampler confidence, not {self.sampler!r}")
        return self


__all__ = [
    "BATCH_SIZE_DOC",
    "CanvasSettings",
    "GREEDY_METHODS",
    "GreedyMethod",
    "PRECISIONS",
    "PRECISION_DOC",
    "Precision",
    "TIME_SAMPLING",
    "TimeSampling",
    "UnitEps",
]
