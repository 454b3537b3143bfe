"""Tiny random MDLM / SEDD checkpoints written in exactly the published formats.

Same file names, config fields and state-dict key names as the real checkpoints; only the sizes are
small (the formats are described in ``dlmbench/nets/dit_checkpoints.py``):

* :func:`write_mdlm_hub_folder` — ``kuleshov-group/mdlm-owt`` layout: ``config.json`` of the HF
  ``MDLM`` model (``model_type: mdlm``, ``architectures: [MDLM]``, ``auto_map``, ``hidden_dim``,
  ``cond_dim``, ``n_blocks``, ``n_heads``, ``vocab_size``, ``model_length``, ``dropout``,
  ``time_conditioning: false``, ``return_dict: false``) and ``model.safetensors`` with keys ``backbone.*``;
* :func:`write_sedd_hub_folder` — ``louaaron/sedd-*`` layout: ``config.json`` = the Hydra training config
  (``tokens``, ``graph``, ``noise``, ``model``, ...) and ``pytorch_model.bin`` (an fp32 state dict
  saved by ``torch.save``, keys without prefix);
* :func:`write_mdlm_lightning_ckpt` — an MDLM-repo Lightning checkpoint (``state_dict`` with keys
  ``backbone.*``, ``ema`` with positional ``shadow_params``, ``hyper_parameters``, ``loops``, ...).
  The real file pickles its Hydra config as OmegaConf objects and the tokenizer object; here the
  config is a plain dict and the tokenizer ``None`` unless ``hyper_parameters`` is passed.

Weights are random with non-zero adaLN / output layers (the reference zero-initialises them, which
would make every output identical). Used by the tests and the model zoo's tiny cards; no network.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from dlmbench.nets.dit import DiTConfig, expected_shapes, parameter_shapes

MDLM_HF_EXTRA_FIELDS: dict[str, Any] = {
    "architectures": ["MDLM"],
    "auto_map": {"AutoConfig": "configuration_mdlm.MDLMConfig", "AutoModelForMaskedLM": "modeling_mdlm.MDLM"},
    "model_type": "mdlm",
    "return_dict": False,
    "torch_dtype": "float32",
    "transformers_version": "4.38.2",
}


def tiny_config(*, time_conditioning: bool = True, scale_by_sigma: bool = False, **overrides) -> DiTConfig:
    """A 2-block, 32-wide DiT over 67 tokens (66 + mask), 2 heads of 16, cond 16."""
    base = dict(vocab_size=67, hidden_size=32, cond_dim=16, n_blocks=2, n_heads=2, length=16, dropout=0.1,
                time_conditioning=time_conditioning, scale_by_sigma=scale_by_sigma)
    base.update(overrides)
    return DiTConfig(**base)


def random_state_dict(config: DiTConfig, seed: int = 0, scale: float = 0.5) -> "OrderedDict[str, torch.Tensor]":
    """Random float32 weights for every key (no prefix) in the reference's order; exact ``inv_freq``."""
    g = torch.Generator().manual_seed(seed)
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name, shape in parameter_shapes(config).items():
        fan_in = shape[-1] if len(shape) > 1 else 1
        t = torch.randn(shape, generator=g) * (scale / fan_in**0.5 if len(shape) > 1 else 0.1)
        if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name.endswith("norm_final.weight"):
            t = 1.0 + t
        if name == "vocab_embed.embedding":
            t = torch.randn(shape, generator=g)
        out[name] = t.float()
    d = config.head_dim
    inv_freq = 1.0 / (config.rotary_base ** (torch.arange(0, d, 2).float() / d))
    # the buffer sits after the sigma_map parameters in the module's state_dict order
    ordered: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name, t in out.items():
        if name.startswith("blocks.0.") and "rotary_emb.inv_freq" not in ordered:
            ordered["rotary_emb.inv_freq"] = inv_freq
        ordered[name] = t
    assert set(ordered) == set(expected_shapes(config))
    return ordered


def mdlm_config_json(config: DiTConfig) -> dict[str, Any]:
    """The published ``config.json`` fields of ``kuleshov-group/mdlm-owt`` for ``config``'s sizes."""
    return {
        **MDLM_HF_EXTRA_FIELDS,
        "cond_dim": config.cond_dim,
        "dropout": config.dropout,
        "hidden_dim": config.hidden_size,
        "model_length": config.length,
        "n_blocks": config.n_blocks,
        "n_heads": config.n_heads,
        "time_conditioning": config.time_conditioning,
        "vocab_size": config.vocab_size,
    }


def sedd_hydra_config(config: DiTConfig, name: str = "tiny") -> dict[str, Any]:
    """SEDD's Hydra training config (``configs/config.yaml`` + ``configs/model/*.yaml``) for these sizes."""
    return {
        "ngpus": 8,
        "tokens": config.vocab_size - 1,
        "training": {"batch_size": 512, "accum": 1, "n_iters": 1300001, "snapshot_freq": 50000, "log_freq": 50,
                     "eval_freq": 100, "snapshot_freq_for_preemption": 10000, "weight": "standard",
                     "snapshot_sampling": True, "ema": 0.9999},
        "data": {"train": "openwebtext", "valid": "wikitext103", "cache_dir": "data"},
        "graph": {"type": "absorb", "file": "data", "report_all": False},
        "noise": {"type": "loglinear", "sigma_min": 1e-4, "sigma_max": 20},
        "sampling": {"predictor": "euler", "steps": 128, "noise_removal": True},
        "eval": {"batch_size": 512, "perplexity": True, "perplexity_batch_size": 32},
        "optim": {"weight_decay": 0, "optimizer": "AdamW", "lr": 3e-4, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                  "warmup": 2500, "grad_clip": 1.0},
        "model": {"name": name, "type": "ddit", "hidden_size": config.hidden_size, "cond_dim": config.cond_dim,
                  "length": config.length, "n_blocks": config.n_blocks, "n_heads": config.n_heads,
                  "scale_by_sigma": config.scale_by_sigma, "dropout": config.dropout},
    }


def mdlm_hydra_config(config: DiTConfig, parameterization: str = "subs") -> dict[str, Any]:
    """The parts of MDLM's Hydra config (``configs/config.yaml``) that describe the model."""
    return {
        "mode": "train", "diffusion": "absorbing_state", "backbone": "dit", "parameterization": parameterization,
        "time_conditioning": config.time_conditioning, "T": 0, "subs_masking": False, "seed": 1,
        "model": {"name": "tiny", "type": "ddit", "hidden_size": config.hidden_size, "cond_dim": config.cond_dim,
                  "length": config.length, "n_blocks": config.n_blocks, "n_heads": config.n_heads,
                  "scale_by_sigma": True, "dropout": config.dropout, "tie_word_embeddings": False},
        "noise": {"type": "loglinear", "sigma_min": 1e-4, "sigma_max": 20},
        "training": {"ema": 0.9999, "antithetic_sampling": True, "importance_sampling": False,
                     "sampling_eps": 1e-3, "change_of_variables": False},
        "eval": {"checkpoint_path": "", "disable_ema": False},
    }


def write_mdlm_hub_folder(folder: str | Path, config: DiTConfig, state: Mapping[str, torch.Tensor] | None = None,
                          seed: int = 0) -> dict[str, torch.Tensor]:
    """``config.json`` + ``model.safetensors`` (keys ``backbone.*``) as in ``kuleshov-group/mdlm-owt``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = dict(state if state is not None else random_state_dict(config, seed))
    (folder / "config.json").write_text(json.dumps(mdlm_config_json(config), indent=2, sort_keys=True) + "\n")
    save_file({"backbone." + k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    return state


def write_sedd_hub_folder(folder: str | Path, config: DiTConfig, state: Mapping[str, torch.Tensor] | None = None,
                          seed: int = 0, weights: str = "pytorch_model.bin") -> dict[str, torch.Tensor]:
    """``config.json`` (Hydra dict) + ``pytorch_model.bin`` (or ``model.safetensors``) as in ``louaaron/sedd-*``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = dict(state if state is not None else random_state_dict(config, seed))
    (folder / "config.json").write_text(json.dumps(sedd_hydra_config(config), indent=2) + "\n")
    if weights.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / weights), metadata={"format": "pt"})
    else:
        torch.save(OrderedDict(state), folder / weights)
    return state


def write_mdlm_lightning_ckpt(path: str | Path, config: DiTConfig, state: Mapping[str, torch.Tensor] | None = None,
                              ema_state: Mapping[str, torch.Tensor] | None = None, seed: int = 0,
                              parameterization: str = "subs", hyper_parameters: Any = None,
                              ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """An MDLM-repo Lightning ``.ckpt``: ``state_dict`` (``backbone.*``), ``ema.shadow_params`` (a list in
    ``parameters()`` order, i.e. without the ``inv_freq`` buffer), ``hyper_parameters``, ``loops``, ....

    ``ema_state`` defaults to a second random draw (so tests can tell EMA from raw weights); pass
    ``ema_state={}`` to write no ``ema`` entry. Returns ``(state, ema_state)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = dict(state if state is not None else random_state_dict(config, seed))
    if ema_state is None:
        ema_state = dict(random_state_dict(config, seed + 1000))
    ema_state = dict(ema_state) or None
    ckpt: dict[str, Any] = {
        "epoch": 0,
        "global_step": 10,
        "pytorch-lightning_version": "2.2.1",
        "state_dict": OrderedDict(("backbone." + k, v) for k, v in state.items()),
        "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 0}},
                               "epoch_loop.batch_progress": {"current": {"completed": 10}}}},
        "callbacks": {},
        "optimizer_states": [],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": hyper_parameters if hyper_parameters is not None else {
            "config": mdlm_hydra_config(config, parameterization), "tokenizer": None},
        "sampler": {"random_state": None},
    }
    if ema_state is not None:
        ckpt["ema"] = {"decay": 0.9999, "num_updates": 10,
                       "shadow_params": [ema_state[name] for name in parameter_shapes(config)]}
    torch.save(ckpt, path)
    return state, ema_state
