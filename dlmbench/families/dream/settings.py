"""Dream's typed settings (the family table names this class: :mod:`dlmbench.plugins`). No torch import here.

Defaults follow HKUNLP/Dream ``eval/eval.py`` (the authors' lm-eval harness): ``mc_num=128`` Monte Carlo draws of
the bound, ``sampling_eps=1e-3``, ``diffusion_steps=128``, ``alg='entropy'``, ``alg_temp=0``, ``temperature=0``,
no top-p / top-k; ``eps=1e-3`` is ``DreamGenerationConfig``'s. dlmbench's own choices, named here:
``time_sampling: stratified`` (one uniform per stratum of the request's draws, collapsed-strata stderr; the
reference's ``systematic`` shares one offset over a mini-batch of draws), ``t_estimator`` (``sampled`` is Dream's
estimator; ``integrated`` integrates ``t`` out, same expectation, less variance), ``score_precision`` (as LLaDA's:
float32 log-softmax over the 152,064 logits of the bound), ``bos_for_empty_context`` (an empty context is read
after the tokenizer's BOS, as the authors' harness prepends it with ``add_bos_token=true``: with shifted logits the
first token of a sequence has no position before it).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dlmbench.diffusion.settings import BATCH_SIZE_DOC, PRECISION_DOC, GreedyMethod, Precision, TimeSampling, UnitEps
from dlmbench.specs.settings import Settings

Alg = Literal["origin", "maskgit_plus", "topk_margin", "entropy"]


class DreamSettings(Settings):
    """Settings of a Dream model card (``settings:``) or ``--set``."""

    batch_size: int = Field(8, ge=1, description=BATCH_SIZE_DOC)
    mc_samples: int = Field(128, ge=1, description="Monte Carlo draws of the bound per request (eval.py mc_num)")
    t_estimator: Literal["sampled", "integrated"] = Field(
        "sampled", description="bound: sampled t per draw (Dream's estimator) or t integrated out given the mask count")
    time_sampling: TimeSampling = Field(
        "stratified", description="how a request's draws' t are coupled: stratified (= antithetic), systematic (Dream's shape), iid")
    sampling_eps: UnitEps = Field(1e-3, description="bound times t ~ U[sampling_eps, 1], masking probability t, weight 1/t")
    score_precision: Literal["float32", "float64"] = Field(
        "float32", description="dtype of the bound's and greedy check's log-softmax: float32 (in place) or float64")
    bos_for_empty_context: bool = Field(
        True, description="score a request with an empty context after the tokenizer's BOS (shifted logits need a position before)")
    greedy: GreedyMethod = Field(
        "iterative_confidence", description="greedy check: iterative_confidence (most confident first) or one_shot_argmax")
    alg: Alg = Field("entropy", description="decoding order: origin (ancestral), maskgit_plus, topk_margin, entropy")
    steps: int = Field(128, ge=1, description="sampling steps (network calls; eval.py diffusion_steps)")
    eps: UnitEps = Field(1e-3, description="sampler times linspace(1, eps, steps + 1)")
    temperature: float = Field(0.0, ge=0.0, description="sampling temperature, >= 0 (0: argmax tokens)")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="nucleus mass in (0, 1]; null: off")
    top_k: int | None = Field(None, ge=1, description="top-k cut; null: off")
    alg_temp: float | None = Field(
        0.0, ge=0.0, description="confidence temperature: 0/null reveals the most confident, > 0 draws positions from softmax(conf / alg_temp)")
    precision: Precision = Field("float64", description=PRECISION_DOC)


__all__ = ["Alg", "DreamSettings"]
