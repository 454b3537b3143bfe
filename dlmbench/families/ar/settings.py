"""The autoregressive family's typed settings (the family table names this class: :mod:`dlmbench.plugins`).

:class:`ARSamplingSettings` are the settings one ``sample()`` call may override (temperature, top-k, top-p,
precision of the categorical draw, as Hugging Face ``generate`` names them); :class:`ARSettings` adds the
scoring settings: batch size, the sliding window of the HF guide "Perplexity of fixed-length models"
(https://huggingface.co/docs/transformers/perplexity: ``max_length``, ``stride``) and the token an empty
context is scored against (lm-eval's ``prefix_token_id``). No torch import here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from dlmbench.specs.settings import Settings


class ARSamplingSettings(Settings):
    """The settings a single ``sample(..., **settings)`` call may override."""

    temperature: float = Field(1.0, ge=0.0, description="sampling temperature, >= 0 (0: argmax tokens)")
    top_k: int | None = Field(None, ge=0, description="keep the k most likely tokens (null or 0: off)")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="nucleus sampling mass in (0, 1] (null: off)")
    precision: Literal["float64", "float32"] = Field("float64", description="dtype of the categorical draws: float64 or float32")


class ARSettings(ARSamplingSettings):
    """Settings of an autoregressive model card (``settings:``) or ``--set``."""

    batch_size: int = Field(8, ge=1, description="windows per forward pass (and samples per batch), or auto (the largest that fits the device); does not change a number")
    stride: int | None = Field(None, ge=1, description="sliding-window stride in tokens, at most max_length (null: max_length // 2)")
    max_length: int | None = Field(
        None, ge=1, description="context length in tokens (null: the card's max_length, else the config's max_position_embeddings)"
    )
    prefix_token_id: str | int | None = Field(
        "auto", description="token an empty context is scored against: auto (the tokenizer's BOS), a token id, or none (first token unscored)"
    )

    @field_validator("prefix_token_id", mode="before")
    @classmethod
    def _prefix(cls, v: Any) -> Any:
        if v is None or v in ("auto", "none") or (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            return v
        raise ValueError("expected 'auto', 'none' or a token id >= 0")


__all__ = ["ARSamplingSettings", "ARSettings"]
