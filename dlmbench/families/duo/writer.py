"""Tiny random DUO checkpoints in exactly the published ``s-sahoo/duo`` format: ``config.json`` with the published
fields (:func:`~dlmbench.families.duo.backbone.config_to_hf`) and ``model.safetensors`` with keys ``backbone.*``.
Random weights with non-zero adaLN / output layers (MDLM's DiT writer); no network. Used by the tests and the
tiny card."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch

from dlmbench.families.duo.backbone import PREFIX, DUOConfig, config_to_hf
from dlmbench.nets.dit import DiTConfig
from dlmbench.nets.dit_writer import random_state_dict


def tiny_duo_config(**overrides) -> DUOConfig:
    """A 2-block, 32-wide time-conditioned DiT over 67 states (66 tokens + the pad row), 2 heads, cond 16, 16 positions."""
    base = dict(vocab_size=67, hidden_size=32, cond_dim=16, n_blocks=2, n_heads=2, length=16, dropout=0.1,
                time_conditioning=True)
    base.update(overrides)
    return DUOConfig(dit=DiTConfig(**base))


def write_duo_hub_folder(folder: str | Path, config: DUOConfig, state: Mapping[str, torch.Tensor] | None = None,
                         seed: int = 0) -> dict[str, torch.Tensor]:
    """Write ``config.json`` + ``model.safetensors`` into ``folder``; returns the network's state (no prefix)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = dict(state if state is not None else random_state_dict(config.dit, seed))
    (folder / "config.json").write_text(json.dumps(config_to_hf(config), indent=2, sort_keys=True) + "\n")
    save_file({PREFIX + k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    return state


__all__ = ["tiny_duo_config", "write_duo_hub_folder"]
