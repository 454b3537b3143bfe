"""Tiny random BD3-LM checkpoints in exactly the published ``kuleshov-group/bd3lm-owt-block_size*`` format:
``config.json`` with the published fields (:func:`~dlmbench.families.bd3lm.backbone.config_to_hf`) and
``model.safetensors`` with keys ``backbone.*`` plus the scalar buffers ``sampling_eps_min`` /
``sampling_eps_max``. Random weights with non-zero adaLN / output layers (MDLM's DiT writer); no network.
Used by the tests and the tiny card."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch

from dlmbench.families.bd3lm.backbone import PREFIX, BD3LMConfig, config_to_hf
from dlmbench.nets.dit import DiTConfig
from dlmbench.nets.dit_writer import random_state_dict


def tiny_bd3lm_config(*, block_size: int = 4, **overrides) -> BD3LMConfig:
    """A 2-block, 32-wide network over 67 tokens (66 + mask), 2 heads of 16, cond 16, 16 positions."""
    base = dict(vocab_size=67, hidden_size=32, cond_dim=16, n_blocks=2, n_heads=2, length=16, dropout=0.1,
                time_conditioning=False)
    base.update(overrides)
    return BD3LMConfig(dit=DiTConfig(**base), block_size=block_size, attn_backend="sdpa")


def write_bd3lm_hub_folder(folder: str | Path, config: BD3LMConfig, state: Mapping[str, torch.Tensor] | None = None,
                           seed: int = 0) -> dict[str, torch.Tensor]:
    """Write ``config.json`` + ``model.safetensors`` into ``folder``; returns the network's state (no prefix)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = dict(state if state is not None else random_state_dict(config.dit, seed))
    (folder / "config.json").write_text(json.dumps(config_to_hf(config), indent=2, sort_keys=True) + "\n")
    tensors = {PREFIX + k: v.contiguous() for k, v in state.items()}
    if config.var_min:
        tensors["sampling_eps_min"] = torch.tensor(float(config.sampling_eps_min))
        tensors["sampling_eps_max"] = torch.tensor(float(config.sampling_eps_max))
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return state


__all__ = ["tiny_bd3lm_config", "write_bd3lm_hub_folder"]
