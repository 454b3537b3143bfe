"""Tiny random LLaDA checkpoints in exactly the published ``GSAI-ML/LLaDA-8B-*`` format.

What is written (same file names, field names, key names and dtype as the published repositories):

* ``config.json`` — every field of the published Instruct ``config.json`` (incl. ``model_type: llada``,
  ``architectures``, ``auto_map``), only the sizes changed;
* ``model-0000k-of-0000N.safetensors`` shards (bfloat16 by default) and ``model.safetensors.index.json``
  with ``metadata.total_size`` (bytes) and the ``weight_map``;
* optionally a tokenizer: ``tokenizer.json`` (a byte-level BPE over the 256 byte symbols, ids 0–255)
  with the published special tokens at their published ids (126080 ``<|startoftext|>`` … 126336
  ``<|mdm_mask|>`` … 126348 ``<|eot_id|>``) and ``tokenizer_config.json`` with the published fields and
  the Instruct chat template. The real tokenizer's ordinary vocabulary is of course not reproduced.

Used by the tests and by the model zoo's tiny card. Random weights only; no network.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import torch

from dlmbench.families.llada.backbone import LLaDAConfig, expected_shapes, llada_8b_config

# Fields of the published config.json that the architecture does not read (kept for format fidelity).
_PUBLISHED_EXTRA_FIELDS = {
    "alibi_bias_max": 8.0,
    "architectures": ["LLaDAModelLM"],
    "attention_dropout": 0.0,
    "attention_layer_norm_with_affine": True,
    "auto_map": {
        "AutoConfig": "configuration_llada.LLaDAConfig",
        "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
        "AutoModel": "modeling_llada.LLaDAModelLM",
    },
    "embedding_dropout": 0.0,
    "flash_attention": False,
    "init_cutoff_factor": None,
    "init_device": "meta",
    "init_fn": "mitchell",
    "init_std": 0.02,
    "model_type": "llada",
    "precision": "amp_bf16",
    "residual_dropout": 0.0,
    "transformers_version": "4.46.3",
    "use_cache": False,
}


def tiny_llada_config(**overrides) -> LLaDAConfig:
    """A 2-layer, 16-wide LLaDA with the full 126464-row vocabulary (so the real special ids exist).

    Pass e.g. ``vocab_size=64, embedding_size=64`` for a model without the special ids.
    """
    base = replace(
        llada_8b_config(), d_model=16, n_layers=2, n_heads=2, n_kv_heads=2, mlp_hidden_size=24, max_sequence_length=64
    )
    return replace(base, **overrides)


def config_json(config: LLaDAConfig) -> dict:
    """The published ``config.json`` dict for ``config`` (keys sorted as in the published file)."""
    data = {**config.to_dict(), **_PUBLISHED_EXTRA_FIELDS}
    return dict(sorted(data.items()))


def random_state_dict(config: LLaDAConfig, *, seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Random weights for every published key: linear ``N(0, 1/fan_in)``, embedding ``N(0, 1)``, norms ``1 + N(0, 0.1²)``.

    The norm weights are not all ones so that a loader or forward pass that ignores them is caught.
    """
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, shape in expected_shapes(config).items():
        if key.endswith("norm.weight") or key.endswith("ln_f.weight"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        elif key.endswith("wte.weight"):
            t = torch.randn(shape, generator=g, dtype=torch.float64)
        else:
            t = torch.randn(shape, generator=g, dtype=torch.float64) / shape[1] ** 0.5
        out[key] = t.to(dtype)
    return out


def _assign_shards(sizes: Mapping[str, int], n_shards: int) -> list[list[str]]:
    """Split keys (in state-dict order) into at most ``n_shards`` contiguous groups of roughly equal bytes.

    Key ``k`` goes to shard ``⌊n · (bytes before k) / total⌋``; empty shards are dropped.
    """
    total = max(1, sum(sizes.values()))
    groups: list[list[str]] = [[] for _ in range(max(1, n_shards))]
    before = 0
    for key, size in sizes.items():
        groups[min(before * len(groups) // total, len(groups) - 1)].append(key)
        before += size
    return [g for g in groups if g]


def save_llada_checkpoint(
    state_dict: Mapping[str, torch.Tensor],
    config: LLaDAConfig,
    folder: str | Path,
    *,
    n_shards: int = 2,
    dtype: torch.dtype | None = torch.bfloat16,
) -> Path:
    """Write ``config.json``, sharded safetensors and ``model.safetensors.index.json`` in the published layout.

    ``dtype=None`` keeps each tensor's dtype; the default is bfloat16, as published.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        k: (v.detach().to("cpu") if dtype is None else v.detach().to("cpu", dtype)).contiguous()
        for k, v in state_dict.items()
    }
    sizes = {k: t.numel() * t.element_size() for k, t in tensors.items()}
    groups = _assign_shards(sizes, n_shards)
    weight_map: dict[str, str] = {}
    for i, keys in enumerate(groups, start=1):
        name = f"model-{i:05d}-of-{len(groups):05d}.safetensors"
        save_file({k: tensors[k] for k in keys}, str(folder / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in keys})
    index = {"metadata": {"total_size": sum(sizes.values())}, "weight_map": dict(sorted(weight_map.items()))}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    (folder / "config.json").write_text(json.dumps(config_json(config), indent=2) + "\n")
    return folder


# ----- tokenizer -----------------------------------------------------------------------------------


def published_special_tokens() -> dict[int, str]:
    """id → content of the added tokens of LLaDA's ``tokenizer_config.json`` (126080 … 126348)."""
    named = {
        126080: "<|startoftext|>",
        126081: "<|endoftext|>",
        126082: "[CLS]",
        126083: "[gMASK]",
        126336: "<|mdm_mask|>",
        126340: "<role>",
        126341: "</role>",
        126342: "<|arithmetic_start|>",
        126343: "<|arithmetic_end|>",
        126344: "<|number_start|>",
        126345: "<|number_end|>",
        126346: "<|start_header_id|>",
        126347: "<|end_header_id|>",
        126348: "<|eot_id|>",
    }
    out = {}
    for i in range(126080, 126349):
        out[i] = named.get(i, f"<|reserved_token_{i - 126084}|>")
    return out


def write_tiny_tokenizer(folder: str | Path) -> Path:
    """``tokenizer.json`` + ``tokenizer_config.json`` with LLaDA's special tokens at their ids."""
    from tokenizers import AddedToken, Tokenizer, decoders, models
    from tokenizers.pre_tokenizers import ByteLevel

    from dlmbench.families.llada.chat import CHAT_TEMPLATE

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specials = published_special_tokens()
    vocab = {ch: i for i, ch in enumerate(sorted(ByteLevel.alphabet()))}
    vocab.update({content: i for i, content in specials.items()})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(c, special=True, normalized=False) for _, c in sorted(specials.items())])
    tok.save(str(folder / "tokenizer.json"))

    added = {
        str(i): {"content": c, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
        for i, c in sorted(specials.items())
    }
    config = {
        "add_bos_token": False,
        "add_eos_token": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": [
            "<role>", "</role>", "<|arithmetic_start|>", "<|arithmetic_end|>", "<|number_start|>", "<|number_end|>",
        ],
        "bos_token": "<|startoftext|>",
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "cls_token": "[CLS]",
        "eos_token": "<|endoftext|>",
        "fast_tokenizer": True,
        "gmask_token": "[gMASK]",
        "merges_file": None,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 1000000000000000019884624838656,
        "pad_token": "<|endoftext|>",
        "tokenizer_class": "PreTrainedTokenizerFast",
        "vocab_file": None,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    return folder


def write_tiny_llada(
    folder: str | Path,
    config: LLaDAConfig | None = None,
    *,
    seed: int = 0,
    n_shards: int = 2,
    dtype: torch.dtype = torch.bfloat16,
    tokenizer: bool = True,
) -> Path:
    """A complete tiny random LLaDA checkpoint folder (weights, config, optionally tokenizer)."""
    config = config or tiny_llada_config()
    save_llada_checkpoint(random_state_dict(config, seed=seed), config, folder, n_shards=n_shards, dtype=dtype)
    if tokenizer:
        write_tiny_tokenizer(folder)
    return Path(folder)
