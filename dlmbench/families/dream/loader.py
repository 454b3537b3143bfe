"""Load Dream checkpoints (``Dream-org/Dream-v0-Base-7B`` / ``-Instruct-7B`` layout) lazily, shard by shard.

A checkpoint folder holds ``config.json``, ``model.safetensors.index.json`` (``weight_map``: key → shard) and the
shards ``model-0000k-of-0000N.safetensors`` (or one ``model.safetensors``), plus the tokenizer files. Loading:

1. the module is built on the ``meta`` device and its keys/shapes are compared with the safetensors *headers* (no
   tensor data read): a missing, unexpected or mis-shaped key, a shard the index names but that is absent, or a
   tensor in a shard that the index does not list, is one :class:`~dlmbench.errors.CheckpointError` line;
2. storage is allocated once on the target device in the target dtype (``to_empty``);
3. each shard is opened with ``safetensors.safe_open`` and its tensors copied one at a time.

Strict: every parameter has exactly one tensor in the shards and every tensor has a place. Derived, not stored:
the rotary tables (from ``rope_theta``), and with ``tie_word_embeddings: true`` the LM head (then no
``lm_head.weight`` is expected and one present is refused). The published 7B checkpoints are untied.

The tokenizer: ``tokenizer.json`` (fast) when the folder has one; else the published ``vocab.json`` + ``merges.txt``
read by ``transformers``' own Qwen2 fast tokenizer (Dream's ``tokenization_dream.py`` is a copy of Qwen2's
tokenizer; its ``tokenizer_class: DreamTokenizer`` names remote code, which is never run). Nothing here executes
code from the checkpoint (no ``trust_remote_code``, no pickle).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import torch

from dlmbench.errors import CheckpointError
from dlmbench.families.dream.backbone import DreamBackbone, DreamConfig, expected_shapes
from dlmbench.specs import CheckpointRef

CONFIG_FILE = "config.json"
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


def resolve_folder(ref: str | Path | CheckpointRef) -> Path:
    """A local folder for ``ref``: a :class:`~dlmbench.specs.CheckpointRef`, an existing directory, or a hub id
    ``owner/name`` (resolved through :func:`dlmbench.data.hub.resolve_location`, fast offline failure)."""
    from dlmbench.data.hub import resolve_location

    if isinstance(ref, CheckpointRef):
        resolved = resolve_location(ref)
    else:
        path = Path(ref).expanduser()
        if path.is_dir():
            return path
        text = str(ref)
        if path.exists() or text.startswith((".", "/", "~")) or text.count("/") != 1:
            raise CheckpointError(f"Dream checkpoint {text!r} is neither a folder nor a hub id (owner/name); pass the "
                                  "folder holding config.json and the safetensors shards")
        resolved = resolve_location(CheckpointRef("hub", text))
    if not resolved.is_dir():
        raise CheckpointError(f"Dream checkpoint {str(ref)!r} resolved to {resolved}, which is not a folder")
    return resolved


def read_config(folder: str | Path) -> DreamConfig:
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"no {CONFIG_FILE} in Dream checkpoint folder {folder}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    try:
        return DreamConfig.from_dict(data, source=str(path))
    except TypeError as e:  # a field of the wrong kind
        raise CheckpointError(f"{path}: {e}") from None


def shard_map(folder: str | Path) -> dict[str, str]:
    """``key → shard file`` from the index, or every key of the single ``model.safetensors``."""
    folder = Path(folder)
    index = folder / INDEX_FILE
    if index.is_file():
        try:
            return dict(json.loads(index.read_text())["weight_map"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{index}: not a safetensors index ({e!r})") from None
    single = folder / SINGLE_FILE
    if single.is_file():
        from safetensors import safe_open

        with safe_open(str(single), framework="pt") as f:
            return {k: SINGLE_FILE for k in f.keys()}
    raise CheckpointError(f"no {INDEX_FILE} or {SINGLE_FILE} in Dream checkpoint folder {folder}")


def _by_shard(weight_map: Mapping[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, shard in weight_map.items():
        out.setdefault(shard, []).append(key)
    return out


def _first(keys, n: int = 3) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def read_header_shapes(folder: str | Path, weight_map: Mapping[str, str]) -> dict[str, tuple[int, ...]]:
    """Shapes of every tensor in ``weight_map`` from the shard headers; CheckpointError when a shard is missing,
    lacks a key the index places in it, or holds a key the index does not list."""
    from safetensors import safe_open

    folder = Path(folder)
    shapes: dict[str, tuple[int, ...]] = {}
    for shard, keys in sorted(_by_shard(weight_map).items()):
        path = folder / shard
        if not path.is_file():
            raise CheckpointError(f"Dream checkpoint {folder}: shard {shard} named in {INDEX_FILE} is missing")
        with safe_open(str(path), framework="pt") as f:
            present = set(f.keys())
            absent, unlisted = set(keys) - present, present - set(weight_map)
            if absent or unlisted:
                parts = ([f"missing {_first(absent)} ({INDEX_FILE} places it in {shard})"] if absent else []) + (
                    [f"unexpected {_first(unlisted)} (in {shard}, not listed in {INDEX_FILE})"] if unlisted else [])
                raise CheckpointError(f"Dream checkpoint {folder}: " + "; ".join(parts))
            for key in keys:
                shapes[key] = tuple(f.get_slice(key).get_shape())
    return shapes


def default_dtype(device: torch.device | str) -> torch.dtype:
    """bfloat16 on CUDA (the published weights' and the reference's dtype), float32 elsewhere."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def load_dream_backbone(ref: str | Path | CheckpointRef, *, device: torch.device | str = "cpu",
                        dtype: torch.dtype | None = None) -> DreamBackbone:
    """:class:`DreamBackbone` from a checkpoint folder (or hub id), filled shard by shard, in ``eval()`` mode."""
    from safetensors import safe_open

    from dlmbench.nets.dit_checkpoints import check_shapes

    folder = resolve_folder(ref)
    config = read_config(folder)
    device = torch.device(device)
    dtype = dtype or default_dtype(device)
    weight_map = shard_map(folder)
    check_shapes(expected_shapes(config), read_header_shapes(folder, weight_map), where=f"Dream checkpoint {folder}",
                 architecture="the Dream architecture in its config.json")
    with torch.device("meta"):
        model = DreamBackbone(config, dtype=dtype)
    model = model.to_empty(device=device)
    params = model.state_dict(keep_vars=True)
    filled: set[str] = set()
    with torch.no_grad():
        for shard, keys in sorted(_by_shard(weight_map).items()):
            with safe_open(str(folder / shard), framework="pt", device="cpu") as f:
                for key in keys:
                    params[key].copy_(f.get_tensor(key))
                    filled.add(key)
    if filled != set(params):  # cannot happen after check_shapes; guards uninitialised storage
        raise CheckpointError(f"Dream checkpoint {folder}: parameters never loaded: {_first(set(params) - filled)}")
    return model.eval()


def load_dream_tokenizer(ref: str | Path | CheckpointRef):
    """The checkpoint's tokenizer without remote code: ``tokenizer.json`` (also in a ``tokenizer/`` subfolder) with
    ``PreTrainedTokenizerFast``, else ``vocab.json`` + ``merges.txt`` with ``transformers``' Qwen2 tokenizer."""
    folder = resolve_folder(ref)
    if not (folder / "tokenizer.json").is_file() and (folder / "tokenizer" / "tokenizer.json").is_file():
        folder = folder / "tokenizer"
    if (folder / "tokenizer.json").is_file():
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast.from_pretrained(str(folder), trust_remote_code=False)
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        import transformers

        cls = getattr(transformers, "Qwen2TokenizerFast", None) or transformers.Qwen2Tokenizer
        return cls.from_pretrained(str(folder), trust_remote_code=False)
    raise CheckpointError(f"no tokenizer.json (or vocab.json + merges.txt) in Dream checkpoint folder {folder}")


def check_dream_tokenizer(tok, config: DreamConfig, *, where: str) -> None:
    """The tokenizer belongs to the weights (:mod:`dlmbench.data.vocab`).

    Size: ``padded``: Dream keeps Qwen2.5's padded embedding (152,064 rows; the tokenizer's ids end at 151,664 +
    Dream's added ``<|beginoftext|>`` 151,665 and ``<|mask|>`` 151,666), the zoo model's BPE fills its rows exactly.
    Special ids: ``mask_token_id`` / ``eos_token_id`` / ``pad_token_id`` / ``bos_token_id`` of ``config.json`` are
    tokens of the tokenizer; where the tokenizer names a mask or EOS token it is the config's id."""
    from dlmbench.data.vocab import check_rows, check_special_ids, id_span

    n_ids = id_span(tok)
    check_rows(n_ids, config.vocab_size, "padded", where=where)
    check_special_ids({"mask": config.mask_token_id, "eos": config.eos_token_id, "pad": config.pad_token_id,
                       "bos": config.bos_token_id},
                      {"mask": getattr(tok, "mask_token_id", None), "eos": tok.eos_token_id}, n_ids, where=where,
                      agree=("mask",))
    if tok.convert_ids_to_tokens(int(config.mask_token_id)) is None:
        raise CheckpointError(f"{where}: the config's mask id {config.mask_token_id} is not a token of its tokenizer")


def parameter_count(config: DreamConfig) -> int:
    """Parameters implied by ``config`` (shapes only)."""
    return sum(math.prod(s) for s in expected_shapes(config).values())


__all__ = ["check_dream_tokenizer", "default_dtype", "load_dream_backbone", "load_dream_tokenizer", "parameter_count",
           "read_config", "resolve_folder", "shard_map"]
