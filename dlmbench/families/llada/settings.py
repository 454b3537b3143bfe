"""LLaDA's typed settings (the family table names this class: :mod:`dlmbench.plugins`).

Defaults follow the LLaDA reference (https://github.com/ML-GSAI/LLaDA: ``get_log_likelihood.py`` with
``mc_num=128`` and ``cfg_scale=0``; ``generate.py`` with ``steps=128``, ``block_length=32``,
``remasking='low_confidence'`` and ``temperature=0``). ``score_precision`` is dlmbench's own choice for the
likelihood bound's normalisation (see :meth:`dlmbench.families.llada.adapter.LLaDAModel._guided_log_probs`).
Fast-dLLM's decoding (Wu et al. 2025, https://github.com/NVlabs/Fast-dLLM ``llada/generate.py``): ``threshold``
(commit every masked position of the block whose prediction has probability >= threshold, at least one per step),
``factor`` (the paper's adaptive rule) and ``cache`` (``prefix`` / ``dual`` block-wise approximate key/value cache);
all off by default, so a card without them decodes as LLaDA's ``generate.py`` does.
``time_sampling`` couples the numbers of masked tokens of one request's draws
(:func:`dlmbench.diffusion.masked.llada_bound_mc`): ``stratified`` (default, one uniform per stratum, collapsed-strata
stderr) or ``systematic`` (one shared offset, the shape of LLaDA's own ``forward_process``) or ``iid``.
No torch import here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dlmbench.diffusion.settings import BATCH_SIZE_DOC, PRECISION_DOC, GreedyMethod, Precision, TimeSampling
from dlmbench.errors import BadSetting
from dlmbench.specs.settings import Settings

Remasking = Literal["low_confidence", "random"]
Cache = Literal["none", "prefix", "dual"]


def block_schedule(length: int, block_length: int | None, steps: int) -> tuple[int, int]:
    """``(block, n_blocks)`` of LLaDA's semi-autoregressive sampler for ``length`` new tokens, or BadSetting.

    As ``generate.py`` of ML-GSAI/LLaDA: the canvas is split into ``n_blocks = length / block_length`` blocks
    decoded left to right with ``steps / n_blocks`` steps each, so both divisions must be exact (the reference
    asserts them). ``block_length`` None, or larger than ``length``, means one block.
    """
    block = min(block_length or length, length)
    if length % block:
        raise BadSetting(
            f"LLaDA sampling: length {length} is not a multiple of block_length {block}; "
            f"set block_length to a divisor of {length}"
        )
    n_blocks = length // block
    if steps % n_blocks:
        raise BadSetting(
            f"LLaDA sampling: steps {steps} is not a multiple of the number of blocks {n_blocks} "
            f"(length {length} / block_length {block}); use steps={n_blocks * max(1, round(steps / n_blocks))}"
        )
    return block, n_blocks


class LLaDASettings(Settings):
    """Settings of a LLaDA model card (``settings:``) or ``--set``."""

    batch_size: int = Field(8, ge=1, description=BATCH_SIZE_DOC)
    mc_samples: int = Field(128, ge=1, description="Monte Carlo draws of the bound per request (get_log_likelihood.py mc_num)")
    time_sampling: TimeSampling = Field(
        "stratified", description="how the draws' numbers of masked tokens are coupled: stratified (= antithetic), systematic (LLaDA's shape), iid"
    )
    cfg: float = Field(0.0, ge=0.0, description="classifier-free guidance scale w >= 0 (0: off; w > 0 is no longer a bound)")
    greedy: GreedyMethod = Field(
        "iterative_confidence", description="greedy check: iterative_confidence (suffix_greedy_prediction) or one_shot_argmax"
    )
    steps: int = Field(128, ge=1, description="sampling steps, a multiple of the number of blocks")
    gen_length: int | None = Field(
        None, ge=1, description="lm-eval bridge: generate this many tokens for every request (null: the request's max_gen_toks)"
    )
    block_length: int | None = Field(32, ge=1, description="semi-autoregressive block length (null: one block)")
    remasking: Remasking = Field("low_confidence", description="which predictions are re-masked: low_confidence or random")
    temperature: float = Field(0.0, ge=0.0, description="sampling temperature, >= 0 (0: argmax tokens)")
    threshold: float | None = Field(
        None, gt=0.0, le=1.0,
        description="Fast-dLLM parallel decoding: commit every masked block position with confidence >= threshold "
        "(at least one per step), in (0, 1]; steps then only fixes the block schedule; null: steps / n_blocks tokens per step",
    )
    factor: float | None = Field(
        None, gt=0.0, description="Fast-dLLM's adaptive rule instead: commit the n most confident with (n + 1)(1 - c_n) <= factor; > 0"
    )
    cache: Cache = Field(
        "none", description="block-wise approximate key/value cache: none, prefix (reuse the prefix), dual (prefix and suffix); needs cfg 0"
    )
    precision: Precision = Field("float64", description=PRECISION_DOC)
    score_precision: Literal["float32", "float64"] = Field(
        "float32", description="dtype of the bound's and greedy check's log-softmax: float32 (in place) or float64"
    )

    @model_validator(mode="after")
    def _fast_decoding(self) -> LLaDASettings:
        if self.threshold is not None and self.factor is not None:
            raise ValueError("set at most one of threshold and factor")
        if (self.threshold is not None or self.factor is not None) and self.remasking != "low_confidence":
            raise ValueError("threshold / factor decoding ranks by confidence: it needs remasking low_confidence")
        if self.cache != "none" and self.cfg > 0:
            raise ValueError(f"cache {self.cache} needs cfg 0 (the unconditional pass has no cache)")
        return self

    @model_validator(mode="after")
    def _gen_length_schedule(self) -> LLaDASettings:
        if self.gen_length is not None:
            try:
                block_schedule(self.gen_length, self.block_length, self.steps)
            except BadSetting as e:  # pydantic reports a ValueError as this check's one-line message
                raise ValueError(f"gen_length {self.gen_length}: {e}") from None
        return self

    def check_sampling(self, length: int, steps: int | None, where: str) -> None:
        try:
            block_schedule(length, self.block_length, self.steps if steps is None else steps)
        except BadSetting as e:
            raise BadSetting(f"{where}: {e}") from None


__all__ = ["Cache", "LLaDASettings", "Remasking", "block_schedule"]
