"""Rotary position embedding helper shared by the DiT (MDLM/SEDD), Plaid and LLaDA backbones."""

from __future__ import annotations

import torch


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[x₁, x₂] → [−x₂, x₁]`` on the two halves of the last dimension (GPT-NeoX, non-interleaved layout),
    so that ``x cos θ + rotate_half(x) sin θ`` rotates each pair ``(x₁ᵢ, x₂ᵢ)`` by ``θᵢ`` (Su et al. 2021)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)
