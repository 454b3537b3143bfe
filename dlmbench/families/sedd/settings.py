"""SEDD's typed settings (the family table names this class: :mod:`dlmbench.plugins`).

Fields shared with MDLM come from :class:`dlmbench.diffusion.settings.CanvasSettings`; SEDD changes the
defaults that differ in its reference (https://github.com/louaaron/Score-Entropy-Discrete-Diffusion:
``run_sample.py`` uses the ``analytic`` predictor with 1024 steps and a final denoising step) and adds ``denoise``.
``time_sampling`` keeps the shared default ``antithetic`` (stratified times, as MDLM's evaluation of SEDD):
SEDD's ``losses.get_loss_fn`` draws ``t`` i.i.d. (``time_sampling: iid``), which has the same expectation and
more variance per forward pass: 2.3x on a 32-token Markov-chain oracle (``tests/diffusion/test_bound_variance.py``
setting), about the same on the zoo's short KJV verses, where which tokens are masked dominates the variance
(``benchmarks/bound_variance.py``). No torch import here.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from dlmbench.diffusion.settings import CanvasSettings

Sampler = Literal["analytic", "euler", "confidence"]
SAMPLERS: tuple[str, ...] = get_args(Sampler)


class SEDDSettings(CanvasSettings):
    """Settings of a SEDD model card (``settings:``) or ``--set``."""

    sampler: Sampler = Field("analytic", description="predictor: analytic (Tweedie tau-leaping, run_sample.py), euler, or confidence "
                          "(SEDD read as a masked model, low-confidence remasking; Fast-dLLM parallel decoding with threshold / factor)")
    steps: int = Field(1024, ge=1, description="sampling steps (run_sample.py default: 1024)")
    denoise: bool = Field(True, description="final denoising step that samples the masks left after the last step")


__all__ = ["SAMPLERS", "SEDDSettings", "Sampler"]
