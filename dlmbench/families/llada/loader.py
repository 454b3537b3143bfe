"""Load LLaDA checkpoints (``GSAI-ML/LLaDA-8B-Base`` / ``-Instruct`` layout) lazily, shard by shard.

A checkpoint folder holds ``config.json``, ``model.safetensors.index.json`` (``weight_map``: key →
shard file) and the shards ``model-0000k-of-0000N.safetensors`` (or a single ``model.safetensors``),
plus the tokenizer files. Loading:

1. the module is built on the ``meta`` device (no memory) and its expected keys/shapes are compared
   with the safetensors *headers* of every shard (no tensor data read) — any difference is one
   :class:`~dlmbench.errors.CheckpointError` line naming the first offending keys;
2. storage is allocated once on the target device in the target dtype (``to_empty``);
3. each shard is opened with ``safetensors.safe_open`` and its tensors are copied one at a time
   into the parameters, so host memory holds at most one tensor beyond the model itself.

Strict: after step 1 every parameter of the module has exactly one tensor in the shards, and every tensor in the
shards has a place (the index lists every tensor of every shard it names, and nothing else). Derived, not stored:
the rotary cos/sin tables (computed from ``rope_theta`` and the head size at each call; the module has no buffers),
and with ``weight_tying: true`` in ``config.json`` the LM head, which is ``wte`` itself (no
``model.transformer.ff_out.weight`` is expected then, and one present is refused as unexpected). The published
8B checkpoints are untied.

Default dtype: bfloat16 on CUDA (as the reference, ``torch_dtype=torch.bfloat16``), float32 on CPU.
Nothing here executes code from the checkpoint (no ``trust_remote_code``, no pickle).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import torch

from dlmbench.errors import CheckpointError
from dlmbench.specs import CheckpointRef
from dlmbench.families.llada.backbone import LLaDABackbone, LLaDAConfig, expected_shapes

CONFIG_FILE = "config.json"
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


def resolve_folder(ref: str | Path | CheckpointRef) -> Path:
    """A local checkpoint folder for ``ref``: a :class:`~dlmbench.specs.CheckpointRef`, an existing directory,
    or a hub id ``owner/name`` resolved through :func:`dlmbench.data.hub.resolve_location` (fast offline failure)."""
    from dlmbench.data.hub import resolve_location

    if isinstance(ref, CheckpointRef):
        resolved = resolve_location(ref)
    else:
        path = Path(ref).expanduser()
        if path.is_dir():
            return path
        text = str(ref)
        if path.exists() or text.startswith((".", "/", "~")) or text.count("/") != 1:
            raise CheckpointError(
                f"LLaDA checkpoint {text!r} is neither a folder nor a hub id (owner/name); pass the folder "
                f"holding config.json and the safetensors shards"
            )
        resolved = resolve_location(CheckpointRef("hub", text))
    if not resolved.is_dir():
        raise CheckpointError(f"LLaDA checkpoint {str(ref)!r} resolved to {resolved}, which is not a folder")
    return resolved


def read_config(folder: str | Path) -> LLaDAConfig:
    """Parse ``folder/config.json`` into :class:`LLaDAConfig` (CheckpointError when missing or unsupported)."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"no {CONFIG_FILE} in LLaDA checkpoint folder {folder}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    return LLaDAConfig.from_dict(data, source=str(path))


def shard_map(folder: str | Path) -> dict[str, str]:
    """``key → shard file name`` from the index json, or every key of the single ``model.safetensors``."""
    folder = Path(folder)
    index = folder / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as e:
            raise CheckpointError(f"{index}: not a safetensors index ({e!r})") from None
        return dict(weight_map)
    single = folder / SINGLE_FILE
    if single.is_file():
        from safetensors import safe_open

        with safe_open(str(single), framework="pt") as f:
            return {k: SINGLE_FILE for k in f.keys()}
    raise CheckpointError(f"no {INDEX_FILE} or {SINGLE_FILE} in LLaDA checkpoint folder {folder}")


def read_header_shapes(folder: str | Path, weight_map: Mapping[str, str]) -> dict[str, tuple[int, ...]]:
    """Shapes of every tensor listed in ``weight_map``, read from the shard headers only.

    Raises CheckpointError when a shard is missing, does not hold a key the index assigns to it, or holds a key the
    index does not list (transformers' own sharded loader reads only what the index lists: an unlisted tensor would
    be dropped without a word).
    """
    from safetensors import safe_open

    folder = Path(folder)
    shapes: dict[str, tuple[int, ...]] = {}
    by_shard: dict[str, list[str]] = {}
    for key, shard in weight_map.items():
        by_shard.setdefault(shard, []).append(key)
    for shard, keys in sorted(by_shard.items()):
        path = folder / shard
        if not path.is_file():
            raise CheckpointError(f"LLaDA checkpoint {folder}: shard {shard} named in {INDEX_FILE} is missing")
        with safe_open(str(path), framework="pt") as f:
            present = set(f.keys())
            absent = set(keys) - present
            unlisted = present - set(weight_map)  # a tensor no index entry points at would be silently skipped
            if absent or unlisted:
                parts = ([f"missing {_first(absent)} ({INDEX_FILE} places it in {shard})"] if absent else []) + (
                    [f"unexpected {_first(unlisted)} (in {shard}, not listed in {INDEX_FILE})"] if unlisted else [])
                raise CheckpointError(f"LLaDA checkpoint {folder}: " + "; ".join(parts))
            for key in keys:
                shapes[key] = tuple(f.get_slice(key).get_shape())
    return shapes


def _first(keys, n: int = 3) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def check_state_shapes(
    expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]], *, where: str = "checkpoint"
) -> None:
    """One-line CheckpointError naming the first missing, unexpected and mis-shaped keys, if any."""
    from dlmbench.nets.dit_checkpoints import check_shapes

    check_shapes(expected, found, where=where, architecture="the LLaDA architecture in its config.json")


def default_dtype(device: torch.device | str) -> torch.dtype:
    """bfloat16 on CUDA (the reference's inference dtype), float32 elsewhere."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def load_llada_backbone(
    ref: str | Path, *, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
) -> LLaDABackbone:
    """Build :class:`LLaDABackbone` from a checkpoint folder (or hub id) and fill it shard by shard.

    The returned module is in ``eval()`` mode on ``device`` in ``dtype`` (default :func:`default_dtype`).
    """
    from safetensors import safe_open

    folder = resolve_folder(ref)
    config = read_config(folder)
    device = torch.device(device)
    dtype = dtype or default_dtype(device)

    weight_map = shard_map(folder)
    expected = expected_shapes(config)
    check_state_shapes(expected, read_header_shapes(folder, weight_map), where=f"LLaDA checkpoint {folder}")

    with torch.device("meta"):
        model = LLaDABackbone(config, dtype=dtype)
    model = model.to_empty(device=device)
    params = model.state_dict(keep_vars=True)

    by_shard: dict[str, list[str]] = {}
    for key, shard in weight_map.items():
        by_shard.setdefault(shard, []).append(key)
    filled: set[str] = set()
    with torch.no_grad():
        for shard, keys in sorted(by_shard.items()):
            with safe_open(str(folder / shard), framework="pt", device="cpu") as f:
                for key in keys:
                    params[key].copy_(f.get_tensor(key))  # one tensor in host memory at a time
                    filled.add(key)
    if filled != set(params):  # cannot happen after check_state_shapes; guards uninitialised storage
        raise CheckpointError(f"LLaDA checkpoint {folder}: parameters never loaded: {', '.join(sorted(set(params) - filled)[:3])}")
    return model.eval()


def load_llada_tokenizer(ref: str | Path, *, mask_id: int | None = None, eos_id: int | None = None):
    """The checkpoint's tokenizer (``PreTrainedTokenizerFast`` from ``tokenizer.json`` + ``tokenizer_config.json``).

    Loaded with the fast-tokenizer class named in the published ``tokenizer_config.json`` directly
    (never ``trust_remote_code``). Special ids are checked so a wrong tokenizer fails here, not in a task:
    against the published ones (mask 126336, EOS 126081, BOS 126080, EoT 126348) for the published
    checkpoints, or, for a checkpoint whose ``config.json`` names other ids (``mask_id`` / ``eos_id``, e.g.
    the tiny zoo), ``<|mdm_mask|>`` and ``<|endoftext|>`` against those. ``tokenizer.json`` may also sit in
    a ``tokenizer/`` subfolder.
    """
    from transformers import PreTrainedTokenizerFast

    from dlmbench.families.llada.backbone import BOS_ID, EOS_ID, EOT_ID, MASK_ID

    folder = resolve_folder(ref)
    if not (folder / "tokenizer.json").is_file() and (folder / "tokenizer" / "tokenizer.json").is_file():
        folder = folder / "tokenizer"
    if not (folder / "tokenizer.json").is_file():
        raise CheckpointError(f"no tokenizer.json in LLaDA checkpoint folder {folder}")
    tok = PreTrainedTokenizerFast.from_pretrained(str(folder), trust_remote_code=False)
    mask_id = MASK_ID if mask_id is None else int(mask_id)
    eos_id = EOS_ID if eos_id is None else int(eos_id)
    if (mask_id, eos_id) == (MASK_ID, EOS_ID):
        want = {"<|mdm_mask|>": MASK_ID, "<|endoftext|>": EOS_ID, "<|startoftext|>": BOS_ID, "<|eot_id|>": EOT_ID}
    else:
        want = {"<|mdm_mask|>": mask_id, "<|endoftext|>": eos_id}
    got = {t: tok.convert_tokens_to_ids(t) for t in want}
    if got != want:
        bad = next(t for t in want if got[t] != want[t])
        if got[bad] is None or bad not in tok.get_vocab():
            raise CheckpointError(f"LLaDA tokenizer in {folder}: it has no {bad} token (config.json's id for it is "
                                  f"{want[bad]}); the tokenizer does not belong to these weights")
        raise CheckpointError(f"LLaDA tokenizer in {folder}: {bad} has id {got[bad]}, expected {want[bad]} (config.json)")
    return tok


def check_llada_tokenizer(tok, config: LLaDAConfig, *, where: str) -> None:
    """The tokenizer belongs to the weights (:mod:`dlmbench.data.vocab`), beyond the special tokens
    :func:`load_llada_tokenizer` found by name.

    Size: ``padded``. LLaDA pads its vocabulary: the 8B tokenizer's ids end at 126348 (``<|eot_id|>``), the
    embedding has ``embedding_size = vocab_size = 126464`` rows (``config.json``; paper Table 5), 115 unused rows;
    the zoo model's BPE fills its 2049 rows exactly. So the tokenizer's ids (``max id + 1``: the 8B tokenizer's
    special ids follow a gap) may leave at most ``max(128, rows // 32)`` rows unused and never exceed the rows.
    Special ids: ``mask_token_id`` / ``eos_token_id`` / ``pad_token_id`` of ``config.json`` are tokens of the
    tokenizer, and where the tokenizer's own config names a mask / EOS token, it is the same id.
    """
    from dlmbench.data.vocab import check_rows, check_special_ids, id_span

    n_ids = id_span(tok)
    check_rows(n_ids, config.padded_vocab_size, "padded", where=where)
    check_special_ids({"mask": config.mask_token_id, "eos": config.eos_token_id, "pad": config.pad_token_id},
                      {"mask": getattr(tok, "mask_token_id", None), "eos": tok.eos_token_id}, n_ids, where=where,
                      agree=("mask", "eos"))


def parameter_count(config: LLaDAConfig) -> int:
    """Number of parameters implied by ``config`` (from shapes only, no memory)."""
    return sum(math.prod(s) for s in expected_shapes(config).values())
