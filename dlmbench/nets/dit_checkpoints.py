"""Read the published MDLM and SEDD checkpoints into :class:`~.dit.DiT`, key for key.

Formats (https://huggingface.co/kuleshov-group/mdlm-owt and https://huggingface.co/louaaron/sedd-small file
listings; kuleshov-group/mdlm ``diffusion.py``, ``models/ema.py``; louaaron/Score-Entropy-Discrete-Diffusion
``model/transformer.py``, ``load_model.py``):

* **MDLM on the hub** (``kuleshov-group/mdlm-owt``): ``config.json`` of the HF ``MDLM`` model
  (``model_type: mdlm``, ``vocab_size``, ``model_length``, ``hidden_dim``, ``cond_dim``, ``n_blocks``,
  ``n_heads``, ``dropout``, ``time_conditioning``) and ``model.safetensors`` with keys ``backbone.*``.
* **MDLM-repo Lightning checkpoints** (``mdlm.ckpt``, ``sedd.ckpt`` from the README's Drive folder): one
  torch zip file with ``state_dict`` (keys ``backbone.*``), ``ema`` (``shadow_params``: a list in the
  backbone's ``parameters()`` order) and ``hyper_parameters`` (the Hydra config, pickled as OmegaConf
  objects, and the tokenizer). **The reference evaluation uses the EMA weights**
  (``Diffusion.on_load_checkpoint`` loads ``ckpt['ema']`` and ``on_validation_epoch_start`` /
  ``restore_model_and_sample`` call ``ema.copy_to`` unless ``eval.disable_ema``), so we load
  ``shadow_params`` by default (``use_ema=True``) and record the choice in the provenance.
* **SEDD on the hub** (``louaaron/sedd-small``, ``-medium``, pushed with ``PyTorchModelHubMixin``):
  ``config.json`` = the whole Hydra training config (``tokens``, ``graph.type``, ``noise.type``,
  ``model.{hidden_size, cond_dim, n_blocks, n_heads, scale_by_sigma, dropout, length}``) and
  ``pytorch_model.bin`` (a plain fp32 state dict, keys without prefix). ``SEDD.from_pretrained`` loads
  these weights as they are (no EMA step), so do we. SEDD's local runs
  (``checkpoints-meta/checkpoint.pth`` with ``model`` and ``ema``; config in ``.hydra/config.yaml``) load
  their EMA weights as ``load_model_local`` does.

Safety: safetensors are preferred; ``.bin`` / ``.pt`` / ``.pth`` / ``.ckpt`` files are read with
``torch.load(weights_only=True)``. A Lightning checkpoint also pickles non-tensor objects (OmegaConf
configs, a tokenizer); for those we stay inside torch's weights-only unpickler and allowlist each such
name as an *inert stand-in* (:class:`Opaque`) that only records its arguments — no code from the file
runs, and names in modules torch blocks (``os``, ``sys``, ...) are still refused.
Nothing uses ``trust_remote_code``.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from dlmbench.errors import CheckpointError
from dlmbench.nets.dit import BERT_MASK_ID, BERT_VOCAB, DiT, DiTConfig, expected_shapes, parameter_shapes

CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # preference order
TORCH_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
MDLM_PREFIX = "backbone."


# ----------------------------------------------------------------------------------------------------
# Reading torch files without running code from them
# ----------------------------------------------------------------------------------------------------


class Opaque:
    """Inert stand-in for a pickled global that is not a tensor type (OmegaConf node, tokenizer, ...).

    Construction, ``__setstate__`` and item assignment only record what the file stored, so the values
    can be read back (e.g. ``n_heads`` from a pickled Hydra config) without importing the real class.
    """

    qualname = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.__dict__["_args"] = args
        obj.__dict__["_state"] = None
        obj.__dict__["_items"] = {}
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.__dict__["_state"] = state

    def __setitem__(self, key, value):
        self._items[key] = value

    def __repr__(self) -> str:
        return f"<opaque {self.qualname}>"


def _opaque_class(name: str) -> type:
    return type(name.rsplit(".", 1)[-1], (Opaque,), {"qualname": name})


def _first(names: Iterable[str], n: int = 3) -> str:
    names = sorted(names)
    return ", ".join(names[:n]) + (f" (+{len(names) - n} more)" if len(names) > n else "")


def read_torch_file(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; non-tensor globals become :class:`Opaque` stand-ins."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass
    except (RuntimeError, OSError, EOFError) as e:
        raise CheckpointError(f"cannot read {path} as a torch checkpoint: {str(e).splitlines()[0]}") from None
    names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    stand_ins = [(_opaque_class(name), name) for name in names]
    try:
        with torch.serialization.safe_globals(stand_ins):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"refusing to load {path}: {str(e).splitlines()[0]}") from None


def plain(obj: Any, _depth: int = 0) -> Any:
    """Turn a pickled OmegaConf tree (as :class:`Opaque` stand-ins) or plain containers into dicts/lists.

    OmegaConf containers pickle their ``__dict__`` (``_content`` holds the children) and value nodes
    hold ``_val``; anything else opaque becomes ``None``.
    """
    if _depth > 64:
        return None
    if isinstance(obj, Opaque):
        state = obj._state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], Mapping):
            state = state[0]
        if isinstance(state, Mapping):
            if "_content" in state:
                return plain(state["_content"], _depth + 1)
            if "_val" in state:
                return plain(state["_val"], _depth + 1)
        return None
    if isinstance(obj, Mapping):
        return {k: plain(v, _depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v, _depth + 1) for v in obj]
    return obj


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or of a plain torch state-dict file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as e:  # safetensors raises its own error types
            raise CheckpointError(f"cannot read {path} as safetensors: {e}") from None
    obj = read_torch_file(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} does not hold a state dict (found {type(obj).__name__})")
    return dict(obj)


def file_sha256(path: str | Path, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------------
# Configs of the published formats
# ----------------------------------------------------------------------------------------------------


def mask_id_for(vocab_size: int) -> int | None:
    """GPT-2 models append the mask at the last row (None = vocab_size - 1); BERT models use [MASK] = 103."""
    return BERT_MASK_ID if vocab_size == BERT_VOCAB else None


def dit_fields_from_hf(data: Mapping[str, Any], *, cond_dim_default: int, mask_id: int | None) -> DiTConfig:
    """``DiTConfig`` from the DiT fields shared by the HF configs of MDLM and BD3-LM (``hidden_dim``,
    ``cond_dim``, ``n_blocks``, ``n_heads``, ``model_length``, ``dropout``, ``time_conditioning``, ``vocab_size``),
    with each config class's defaults; raises ``TypeError``/``ValueError`` on a malformed value."""
    return DiTConfig(
        vocab_size=int(data.get("vocab_size", 50258)),
        hidden_size=int(data.get("hidden_dim", 768)),
        cond_dim=int(data.get("cond_dim", cond_dim_default)),
        n_blocks=int(data.get("n_blocks", 12)),
        n_heads=int(data.get("n_heads", 12)),
        length=int(data.get("model_length", 1024)),
        dropout=float(data.get("dropout", 0.1)),
        time_conditioning=bool(data.get("time_conditioning", False)),
        scale_by_sigma=False,
        mask_id=mask_id,
    )


def mdlm_config_from_hf(data: Mapping[str, Any]) -> DiTConfig:
    """``DiTConfig`` from the HF ``MDLMConfig`` fields (defaults as in ``configuration_mdlm.py``, except
    ``cond_dim`` whose class default 129 is overridden to 128 by every published ``config.json``)."""
    try:
        return dit_fields_from_hf(data, cond_dim_default=128, mask_id=mask_id_for(int(data.get("vocab_size", 50258))))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"MDLM config.json does not describe a DiT: {e}") from None


def hydra_config_from(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The Hydra dict inside a SEDD ``config.json`` (the dict itself, or wrapped under ``config``)."""
    if "model" not in data and isinstance(data.get("config"), Mapping):
        data = data["config"]
    return data


def dit_config_from_hydra(cfg: Mapping[str, Any], *, vocab_size: int | None = None,
                          time_conditioning: bool | None = None) -> DiTConfig:
    """``DiTConfig`` from a Hydra training config of SEDD (``tokens`` + ``graph.type``) or MDLM.

    SEDD: ``V = tokens + 1`` for the absorbing graph, always time-conditioned. MDLM's Hydra config has
    no vocabulary (it comes from the tokenizer): pass ``vocab_size``; ``time_conditioning`` is read from
    the top level (MDLM default False).
    """
    model = cfg.get("model")
    if not isinstance(model, Mapping) or "hidden_size" not in model:
        raise CheckpointError("config has no model.hidden_size: not a SEDD/MDLM Hydra config")
    if vocab_size is None:
        if "tokens" not in cfg:
            raise CheckpointError("SEDD config has no `tokens` field (GPT-2: 50257)")
        graph = (cfg.get("graph") or {}).get("type", "absorb")
        vocab_size = int(cfg["tokens"]) + (1 if graph == "absorb" else 0)
    if time_conditioning is None:
        time_conditioning = bool(cfg.get("time_conditioning", True))
    try:
        return DiTConfig(
            vocab_size=int(vocab_size),
            hidden_size=int(model["hidden_size"]),
            cond_dim=int(model.get("cond_dim", 128)),
            n_blocks=int(model["n_blocks"]),
            n_heads=int(model["n_heads"]),
            length=int(model.get("length", 1024)),
            dropout=float(model.get("dropout", 0.1)),
            time_conditioning=bool(time_conditioning),
            scale_by_sigma=bool(model.get("scale_by_sigma", False)),
            mask_id=mask_id_for(int(vocab_size)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"Hydra model config does not describe a DiT: missing or bad {e}") from None


def infer_config(shapes: Mapping[str, tuple[int, ...]], prefix: str = "", **fields: Any) -> DiTConfig:
    """Sizes read off the tensor shapes; ``n_heads = H / (2 len(inv_freq))`` from the rotary buffer (head
    dim 64, as in every published config, if the buffer is absent). Used when a checkpoint's config
    cannot be read; ``fields`` override."""
    try:
        V, H = shapes[prefix + "vocab_embed.embedding"]
        C = shapes[prefix + "sigma_map.mlp.2.weight"][0]
        F_ = shapes[prefix + "sigma_map.mlp.0.weight"][1]
        M = shapes[prefix + "blocks.0.mlp.0.weight"][0]
    except (KeyError, ValueError):
        raise CheckpointError(
            f"cannot infer the DiT sizes: {prefix}vocab_embed.embedding / sigma_map / blocks.0 missing"
        ) from None
    n_blocks = 1 + max(int(k[len(prefix):].split(".")[1]) for k in shapes if k.startswith(prefix + "blocks."))
    rot = shapes.get(prefix + "rotary_emb.inv_freq")  # [head_dim / 2]: reveals the number of heads
    n_heads = H // (2 * rot[0]) if rot and rot[0] and H % (2 * rot[0]) == 0 else max(1, H // 64)
    base = dict(vocab_size=V, hidden_size=H, cond_dim=C, n_blocks=n_blocks, n_heads=n_heads,
                mlp_ratio=M // H, frequency_embedding_size=F_, mask_id=mask_id_for(V))
    base.update({k: v for k, v in fields.items() if v is not None})
    return DiTConfig(**base)


# ----------------------------------------------------------------------------------------------------
# Matching a state dict to the architecture
# ----------------------------------------------------------------------------------------------------


def check_shapes(expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]], *,
                 where: str, architecture: str = "the DiT of its config") -> None:
    """One-line :class:`CheckpointError` naming the first missing, unexpected and mis-shaped keys
    (shared by every backbone loader: DiT, LLaDA)."""
    missing = set(expected) - set(found)
    unexpected = set(found) - set(expected)
    misshaped = sorted(k for k in set(expected) & set(found) if tuple(expected[k]) != tuple(found[k]))
    if not (missing or unexpected or misshaped):
        return
    parts = []
    if missing:
        parts.append(f"missing {_first(missing)}")
    if unexpected:
        parts.append(f"unexpected {_first(unexpected)}")
    if misshaped:
        shown = ", ".join(f"{k} {list(found[k])} (expected {list(expected[k])})" for k in misshaped[:3])
        more = f" (+{len(misshaped) - 3} more)" if len(misshaped) > 3 else ""
        parts.append(f"mis-shaped {shown}{more}")
    raise CheckpointError(f"{where} does not match {architecture}: " + "; ".join(parts))


def ema_state_dict(shadow_params: list[torch.Tensor], config: DiTConfig, prefix: str, *,
                   where: str) -> dict[str, torch.Tensor]:
    """Name the positional EMA ``shadow_params`` with the reference's ``parameters()`` order."""
    names = list(parameter_shapes(config))
    if len(shadow_params) != len(names):
        raise CheckpointError(
            f"{where}: EMA has {len(shadow_params)} tensors but the DiT has {len(names)} parameters "
            f"(pass use_ema=False to load the raw weights)"
        )
    out = {}
    for name, t in zip(names, shadow_params):
        if tuple(t.shape) != parameter_shapes(config)[name]:
            raise CheckpointError(
                f"{where}: EMA tensor for {prefix}{name} has shape {list(t.shape)}, expected "
                f"{list(parameter_shapes(config)[name])} (pass use_ema=False to load the raw weights)"
            )
        out[prefix + name] = t
    return out


def build_model(config: DiTConfig, state: Mapping[str, torch.Tensor], prefix: str, *, where: str,
                device: torch.device | str = "cpu", dtype: torch.dtype | None = None) -> DiT:
    """Check ``state`` against ``config`` (one-line error) and load it strictly into a fresh :class:`DiT`.

    Strict for every format: :func:`check_shapes` compares the keys and shapes with :func:`~.dit.expected_shapes`
    (every parameter and the persistent ``rotary_emb.inv_freq`` buffer, which the published files store and which is
    read, not recomputed) and names the first missing, unexpected and mis-shaped keys in one line;
    ``load_state_dict(strict=True)`` then fills every tensor. Nothing is tied (``vocab_embed.embedding`` and
    ``output_layer.linear`` are separate tensors in MDLM and SEDD) and nothing else is derived but the cos/sin
    rotary tables (from ``inv_freq`` at each call) and the time embedding's frequencies ``10000^(-j/128)`` (a
    formula, no tensor). What the formats drop before this point, on purpose: tensors of a Lightning file outside the
    backbone prefix (the LightningModule's other modules, e.g. a noise schedule) and non-tensor entries; with EMA,
    the raw parameters, which ``shadow_params`` replace position by position (:func:`ema_state_dict`: their number
    and shapes are checked), so the buffers come from ``state_dict`` and every parameter from the EMA.
    """
    check_shapes(expected_shapes(config, prefix), {k: tuple(v.shape) for k, v in state.items()}, where=where)
    model = DiT(config)
    model.load_state_dict({k[len(prefix):]: v for k, v in state.items()}, strict=True)
    model = model.to(device=device)
    if dtype is not None:
        model = model.to(dtype=dtype)
    return model.eval()


# ----------------------------------------------------------------------------------------------------
# Locating files
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Located:
    folder: Path | None
    file: Path | None  # a single checkpoint file (Lightning .ckpt, or a weight file given directly)
    checkpoint: str
    revision: str | None


def locate(source: Any, revision: str | None = None) -> Located:
    """A local folder / file, or a hub id fetched through :mod:`dlmbench.data.hub` (fast offline failure)."""
    from dlmbench.data.hub import resolve_location
    from dlmbench.specs import CheckpointRef

    if isinstance(source, CheckpointRef):
        ref = source
    else:
        path = Path(str(source)).expanduser()
        if path.exists():
            ref = CheckpointRef("local", str(path))
        elif isinstance(source, Path) or str(source).startswith((".", "/", "~")) or str(source).count("/") != 1:
            raise CheckpointError(f"checkpoint {str(source)!r} is neither an existing path nor a hub id (owner/name)")
        else:
            ref = CheckpointRef("hub", str(source), revision=revision)
    if ref.source == "local":
        path = Path(ref.location).expanduser()
        if path.is_file():
            return Located(None, path, str(path), None)
    folder = resolve_location(ref)
    rev = ref.revision
    if ref.source == "hub" and folder.parent.name == "snapshots":
        rev = folder.name  # the commit hash of the HF-cache snapshot
    return Located(folder, None, ref.describe() if ref.source != "local" else str(folder), rev)


def weight_file(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    if (folder / "model.safetensors.index.json").is_file():
        raise CheckpointError(f"{folder}: sharded safetensors are not supported for DiT checkpoints")
    ckpts = sorted(folder.glob("*.ckpt"))
    if len(ckpts) == 1:
        return ckpts[0]
    raise CheckpointError(
        f"no {' or '.join(WEIGHT_FILES)} in {folder}" + (" (several .ckpt files: pass one of them)" if ckpts else "")
    )


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def _prefix_of(keys: Iterable[str]) -> str:
    """The common module prefix before ``vocab_embed.embedding`` (``''``, ``backbone.``, ``backbone.backbone.``)."""
    for k in keys:
        if k.endswith("vocab_embed.embedding"):
            return k[: -len("vocab_embed.embedding")]
    return ""


# ----------------------------------------------------------------------------------------------------
# Lightning / SEDD-run checkpoints
# ----------------------------------------------------------------------------------------------------


def load_training_checkpoint(path: Path, *, family: str, use_ema: bool = True,
                             time_conditioning: bool | None = None, n_heads: int | None = None
                             ) -> tuple[DiTConfig, dict[str, torch.Tensor], str, dict[str, Any]]:
    """``(config, state dict, prefix, info)`` from an MDLM Lightning ``.ckpt`` or a SEDD ``checkpoint.pth``."""
    ckpt = read_torch_file(path)
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(f"{path}: not a training checkpoint (found {type(ckpt).__name__})")
    if "state_dict" in ckpt:  # MDLM Lightning
        state = dict(ckpt["state_dict"])
        hydra = plain((ckpt.get("hyper_parameters") or {}).get("config"))
    elif "model" in ckpt and isinstance(ckpt["model"], Mapping):  # SEDD run: checkpoints-meta/checkpoint.pth
        state = dict(ckpt["model"])
        hydra = _sedd_run_config(path)
    else:
        raise CheckpointError(f"{path}: no `state_dict` (MDLM Lightning) or `model` (SEDD run) entry; "
                              f"top-level keys: {_first(map(str, ckpt))}")
    state = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    prefix = _prefix_of(state)
    if prefix:  # the LightningModule holds more than the backbone (e.g. a noise module); keep the backbone
        state = {k: v for k, v in state.items() if k.startswith(prefix)}
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    vocab = shapes.get(prefix + "vocab_embed.embedding", (None,))[0]
    info: dict[str, Any] = {"config_source": "checkpoint"}
    if isinstance(hydra, Mapping) and isinstance(hydra.get("model"), Mapping) and "hidden_size" in hydra["model"]:
        tc = time_conditioning
        if tc is None and family == "mdlm":
            tc = bool(hydra.get("time_conditioning", False))
        # MDLM's Hydra config has no vocabulary (it comes from the tokenizer): take it from the embedding
        config = dit_config_from_hydra(hydra, vocab_size=vocab if "state_dict" in ckpt else None, time_conditioning=tc)
        if n_heads is not None:
            config = replace(config, n_heads=n_heads)
        info["parameterization"] = hydra.get("parameterization")
        if "state_dict" in ckpt:  # MDLM repo: the score shift is part of `parameterization=sedd`, not the yaml flag
            config = replace(config, scale_by_sigma=info["parameterization"] == "sedd")
    else:
        info["config_source"] = "inferred from tensor shapes"
        tc = time_conditioning if time_conditioning is not None else (family == "sedd")
        config = infer_config(shapes, prefix, n_heads=n_heads, time_conditioning=tc,
                              scale_by_sigma=family == "sedd")
    ema = ckpt.get("ema")
    if use_ema and isinstance(ema, Mapping) and ema.get("shadow_params") is not None:
        ema_state = ema_state_dict(list(ema["shadow_params"]), config, prefix, where=str(path))
        buffers = {k: v for k, v in state.items() if k not in ema_state}
        state = {**buffers, **ema_state}
        info.update(ema=True, ema_decay=ema.get("decay"), ema_num_updates=ema.get("num_updates"))
    else:
        info["ema"] = False
    for key in ("global_step", "epoch", "step"):
        if isinstance(ckpt.get(key), int):
            info[key] = ckpt[key]
    return config, state, prefix, info


def _sedd_run_config(path: Path) -> Any:
    """SEDD runs keep their Hydra config in ``<run>/.hydra/config.yaml`` next to ``checkpoints-meta/``."""
    for run in (path.parent, path.parent.parent):
        cfg = run / ".hydra" / "config.yaml"
        if cfg.is_file():
            import yaml

            return yaml.safe_load(cfg.read_text())
    return None


# ----------------------------------------------------------------------------------------------------
# Public loaders
# ----------------------------------------------------------------------------------------------------


def _finish(config: DiTConfig, state: Mapping[str, torch.Tensor], prefix: str, weights: Path,
            located: Located, family: str, fmt: str, info: Mapping[str, Any], device, dtype
            ) -> tuple[DiT, DiTConfig, dict[str, Any]]:
    model = build_model(config, state, prefix, where=f"{family.upper()} checkpoint {weights}",
                        device=device, dtype=dtype)
    provenance = {
        "family": family,
        "format": fmt,
        "checkpoint": located.checkpoint,
        "path": str(weights),
        "revision": located.revision,
        "sha256": file_sha256(weights),
        **info,
    }
    return model, config, provenance


def load_mdlm_backbone(source: Any, device: torch.device | str = "cpu", dtype: torch.dtype | None = None, *,
                       revision: str | None = None, use_ema: bool = True, time_conditioning: bool | None = None,
                       n_heads: int | None = None) -> tuple[DiT, DiTConfig, dict[str, Any]]:
    """MDLM's DiT from a hub id (``kuleshov-group/mdlm-owt``), a local folder (``config.json`` +
    ``model.safetensors``) or an MDLM-repo Lightning ``.ckpt`` (EMA weights unless ``use_ema=False``).

    Returns ``(model in eval mode, config, provenance)``; provenance names the checkpoint, the weight
    file, the hub revision (snapshot commit) and the file's sha256. ``time_conditioning`` / ``n_heads``
    override what the checkpoint says (needed only for Lightning files whose config cannot be read).
    """
    located = locate(source, revision)
    if located.file is not None and located.file.suffix in (".ckpt", ".pth", ".pt"):
        config, state, prefix, info = load_training_checkpoint(
            located.file, family="mdlm", use_ema=use_ema, time_conditioning=time_conditioning, n_heads=n_heads)
        return _finish(config, state, prefix, located.file, located, "mdlm", "lightning-ckpt", info, device, dtype)
    folder = located.folder if located.folder is not None else located.file.parent
    weights = located.file if located.file is not None else weight_file(folder)
    if weights.suffix == ".ckpt":
        return load_mdlm_backbone(weights, device, dtype, use_ema=use_ema, time_conditioning=time_conditioning,
                                  n_heads=n_heads)
    if not (folder / CONFIG_FILE).is_file():
        raise CheckpointError(f"no {CONFIG_FILE} next to {weights} (MDLM hub format: config.json + model.safetensors)")
    data = _read_json(folder / CONFIG_FILE)
    if "hidden_dim" in data or data.get("model_type") == "mdlm":
        config = mdlm_config_from_hf(data)
        fmt = "hf-mdlm"
    else:
        config = dit_config_from_hydra(hydra_config_from(data), time_conditioning=time_conditioning)
        fmt = "hydra-config"
    if time_conditioning is not None:
        config = replace(config, time_conditioning=time_conditioning)
    if n_heads is not None:
        config = replace(config, n_heads=n_heads)
    state = read_state_dict(weights)
    return _finish(config, state, _prefix_of(state), weights, located, "mdlm", fmt, {"ema": None}, device, dtype)


def load_sedd_backbone(source: Any, device: torch.device | str = "cpu", dtype: torch.dtype | None = None, *,
                       revision: str | None = None, use_ema: bool = True, n_heads: int | None = None
                       ) -> tuple[DiT, DiTConfig, dict[str, Any]]:
    """SEDD's DiT from a hub id (``louaaron/sedd-small`` / ``-medium``), a local folder (``config.json``
    = Hydra config, + ``pytorch_model.bin`` or ``model.safetensors``), a SEDD run's ``checkpoint.pth``
    or an MDLM-repo ``sedd.ckpt`` (EMA weights of training checkpoints unless ``use_ema=False``).

    The returned model gives raw logits; apply :func:`~.dit.sedd_log_score` with
    ``config.scale_by_sigma`` for SEDD's log score. Returns ``(model, config, provenance)``.
    """
    located = locate(source, revision)
    if located.file is not None and located.file.suffix in (".ckpt", ".pth", ".pt"):
        config, state, prefix, info = load_training_checkpoint(
            located.file, family="sedd", use_ema=use_ema, time_conditioning=True, n_heads=n_heads)
        if info.get("parameterization") not in (None, "sedd"):
            raise CheckpointError(f"{located.file} was trained with parameterization "
                                  f"{info['parameterization']!r}, not sedd; load it with the matching family")
        return _finish(config, state, prefix, located.file, located, "sedd", "training-ckpt", info, device, dtype)
    folder = located.folder if located.folder is not None else located.file.parent
    weights = located.file if located.file is not None else weight_file(folder)
    if weights.suffix in (".ckpt", ".pth"):
        return load_sedd_backbone(weights, device, dtype, use_ema=use_ema, n_heads=n_heads)
    if not (folder / CONFIG_FILE).is_file():
        raise CheckpointError(f"no {CONFIG_FILE} next to {weights} (SEDD hub format: config.json + pytorch_model.bin)")
    config = dit_config_from_hydra(hydra_config_from(_read_json(folder / CONFIG_FILE)))
    if n_heads is not None:
        config = replace(config, n_heads=n_heads)
    state = read_state_dict(weights)
    return _finish(config, state, _prefix_of(state), weights, located, "sedd", "hf-sedd", {"ema": None},
                   device, dtype)
