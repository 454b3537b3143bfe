"""DUO's network: MDLM's DiT, always time-conditioned, and its published Hugging Face format.

Reference (read, not copied): s-sahoo/duo @ 7c9b498 ``models/dit.py`` (``DIT``), ``trainer_base.py``
(``TrainerBase.__init__``: ``algo.backbone=hf_dit`` loads ``AutoModelForMaskedLM.from_pretrained(eval.checkpoint_path)``;
``Diffusion._process_sigma``, ``_sigma_from_alphat``), ``algo.py`` (``DUO_BASE``: ``time_conditioning: True``, output
= ``log_softmax`` of the logits, every column kept) and the HF port of the network (``configuration_duo.py`` /
``modeling_duo.py`` beside the hub weights of ``s-sahoo/duo`` and ``s-sahoo/duo-distilled``: ``DUOConfig`` with
``model_type: duo``; ``DUO(PreTrainedModel)`` holding ``self.backbone = HFDIT(config)``, the same modules as
MDLM's ``DITBackbone``).

The network is exactly :class:`~dlmbench.nets.dit.DiT` (``vocab_embed``, ``sigma_map``, ``rotary_emb``,
``blocks.{i}``, ``output_layer``), fed the total noise ``sigma = -log alpha_t`` of the uniform-state schedule as
its time input (``c = SiLU(sigma_map(sigma))``). Its ``V`` output columns are the ``V`` states of the uniform
process: GPT-2's 50,257 tokens plus the ``[PAD]`` the reference tokenizer adds (``dataloader.get_tokenizer``), id
50257 = the last row; there is no mask token. The pad row is noise like any other token (``q_xt`` draws
``randint(0, vocab_size)``) and the model may predict it; dlmbench keeps every column, as the reference does.

Published HF format (``s-sahoo/duo``, ``s-sahoo/duo-distilled``): ``config.json`` with ``model_type: duo``,
``vocab_size``, ``model_length``, ``causal``, ``hidden_dim``, ``cond_dim``, ``n_blocks``, ``n_heads``,
``dropout``, ``var_min`` (``DUOConfig`` defaults: 50258, 1024, false, 768, 129, 12, 12, 0.1, true; the class has no
``time_conditioning`` field: DUO's network always reads ``sigma``) and ``model.safetensors`` with keys
``backbone.<DiT key>``. This layout is read off the HF modeling code, not off the hub files themselves (the hub is
unreachable where this was written); a file that disagrees is refused key by key, never guessed.
Also read: the Lightning checkpoints of the README's Drive folder (``state_dict`` ``backbone.*``, EMA
``shadow_params``, pickled Hydra config), through MDLM's reader (:func:`~dlmbench.nets.dit_checkpoints.load_training_checkpoint`,
EMA weights by default as the reference evaluates).
Safetensors or ``torch.load(weights_only=True)``; never remote code; every tensor accounted for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from dlmbench.errors import CheckpointError
from dlmbench.nets.dit import DiT, DiTConfig, expected_shapes
from dlmbench.nets.dit_checkpoints import dit_fields_from_hf

PREFIX = "backbone."


@dataclass(frozen=True)
class DUOConfig:
    """A DUO checkpoint: the DiT's sizes (``time_conditioning`` always true) and the recorded ``var_min``."""

    dit: DiTConfig
    var_min: bool = True

    def __post_init__(self) -> None:
        if not self.dit.time_conditioning:
            raise CheckpointError("a DUO network is time-conditioned (the reference asserts it); got time_conditioning false")

    # what the DiT helpers of dlmbench.nets.dit_lm read (tokenizer check)
    @property
    def vocab_size(self) -> int:
        return self.dit.vocab_size

    @property
    def mask_id(self) -> int | None:
        return None  # GPT-2 convention: the last row is the reference tokenizer's [PAD] (not a mask)

    @property
    def mask_index(self) -> int:
        return self.dit.vocab_size - 1

    @property
    def length(self) -> int:
        return self.dit.length

    @property
    def time_conditioning(self) -> bool:
        return True


def config_from_hf(data: dict[str, Any]) -> DUOConfig:
    """:class:`DUOConfig` from a ``config.json`` of ``DUOConfig`` (class defaults where a key is absent)."""
    if data.get("causal", False):
        raise CheckpointError("DUO config.json has causal: true (the AR baseline of the DUO repo); load it with family ar")
    try:
        dit = dit_fields_from_hf({**data, "time_conditioning": True}, cond_dim_default=129, mask_id=None)
        return DUOConfig(dit=dit, var_min=bool(data.get("var_min", True)))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"DUO config.json does not describe the network: {e}") from None


def config_to_hf(config: DUOConfig) -> dict[str, Any]:
    """The published ``config.json`` fields for ``config`` (see the module docstring)."""
    d = config.dit
    return {
        "architectures": ["DUO"],
        "auto_map": {"AutoConfig": "configuration_duo.DUOConfig", "AutoModelForMaskedLM": "modeling_duo.DUO"},
        "causal": False,
        "cond_dim": d.cond_dim,
        "dropout": d.dropout,
        "hidden_dim": d.hidden_size,
        "model_length": d.length,
        "model_type": "duo",
        "n_blocks": d.n_blocks,
        "n_heads": d.n_heads,
        "return_dict": False,
        "torch_dtype": "float32",
        "transformers_version": "4.52.4",
        "var_min": config.var_min,
        "vocab_size": d.vocab_size,
    }


def published_shapes(config: DUOConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of the published file (``backbone.*``) with its shape."""
    return expected_shapes(config.dit, PREFIX)


def build_net(config: DUOConfig, state: dict[str, torch.Tensor], *, where: str, prefix: str = PREFIX,
              device: torch.device | str = "cpu", dtype: torch.dtype | None = None) -> DiT:
    """Check ``state`` key for key (one-line :class:`CheckpointError`) and load it strictly into a :class:`DiT`."""
    from dlmbench.nets.dit_checkpoints import check_shapes

    check_shapes(expected_shapes(config.dit, prefix), {k: tuple(v.shape) for k, v in state.items()}, where=where,
                 architecture="the DUO network of its config")
    net = DiT(config.dit)
    net.load_state_dict({k[len(prefix):]: v for k, v in state.items()}, strict=True)
    net = net.to(device=device)
    if dtype is not None:
        net = net.to(dtype=dtype)
    return net.eval()


def load_duo_backbone(source: Any, device: torch.device | str = "cpu", dtype: torch.dtype | None = None, *,
                      revision: str | None = None, use_ema: bool = True) -> tuple[DiT, DUOConfig, dict[str, Any]]:
    """The network of a DUO checkpoint: a hub id (``s-sahoo/duo``, ``s-sahoo/duo-distilled``), a local folder with
    ``config.json`` + ``model.safetensors`` (or ``pytorch_model.bin``, read with ``weights_only=True``), or a DUO-repo
    Lightning ``.ckpt`` (EMA weights unless ``use_ema=False``). Returns ``(net, config, provenance)``."""
    from dlmbench.nets.dit_checkpoints import (
        CONFIG_FILE,
        _read_json,
        file_sha256,
        load_training_checkpoint,
        locate,
        read_state_dict,
        weight_file,
    )

    located = locate(source, revision)
    folder = located.folder if located.folder is not None else located.file.parent
    weights = located.file if located.file is not None else weight_file(folder)
    if weights.suffix in (".ckpt", ".pth", ".pt"):
        dit, state, prefix, info = load_training_checkpoint(weights, family="duo", use_ema=use_ema, time_conditioning=True)
        if info.get("parameterization") not in (None, "mean"):
            raise CheckpointError(f"{weights} was trained with parameterization {info['parameterization']!r}, not DUO's "
                                  "'mean'; load it with the matching family")
        config = DUOConfig(dit=replace(dit, time_conditioning=True, scale_by_sigma=False, mask_id=None))
        fmt = "lightning-ckpt"
    else:
        if not (Path(folder) / CONFIG_FILE).is_file():
            raise CheckpointError(f"no {CONFIG_FILE} next to {weights} (DUO hub format: config.json + model.safetensors)")
        data = _read_json(Path(folder) / CONFIG_FILE)
        if data.get("model_type") not in (None, "duo"):
            raise CheckpointError(f"{folder}: config.json has model_type {data.get('model_type')!r}, not duo")
        config = config_from_hf(data)
        state, prefix, info, fmt = read_state_dict(weights), PREFIX, {"ema": None}, "hf-duo"
    net = build_net(config, state, where=f"DUO checkpoint {weights}", prefix=prefix, device=device, dtype=dtype)
    provenance = {
        "family": "duo",
        "format": fmt,
        "checkpoint": located.checkpoint,
        "path": str(weights),
        "revision": located.revision,
        "sha256": file_sha256(weights),
        **info,
    }
    return net, config, provenance


__all__ = ["DUOConfig", "PREFIX", "build_net", "config_from_hf", "config_to_hf", "load_duo_backbone", "published_shapes"]
