"""Finds model and task cards: the packaged ones, user folders, and single YAML files.

Search order (later folders override earlier ones by name): the cards shipped in the package
(``dlmbench/cards/{models,tasks}``; ``models/`` and ``tasks/`` in a clone point there), then every folder
in ``$DLMBENCH_SPECS`` (``os.pathsep``-separated), then folders given with ``--specs DIR``. A user folder
may hold ``models/`` and ``tasks/`` subfolders or YAML files directly (a file with ``family:`` is a
model card, one with ``type:`` a task card). A name may also be a path to a YAML file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dlmbench.errors import BadSpec, UnknownModel, UnknownTask
from dlmbench.specs import ModelSpec, TaskSpec, load_yaml

PACKAGE_CARDS = Path(__file__).resolve().parent / "cards"
ENV_VAR = "DLMBENCH_SPECS"


@dataclass
class Registry:
    models: dict[str, ModelSpec] = field(default_factory=dict)
    tasks: dict[str, TaskSpec] = field(default_factory=dict)
    model_aliases: dict[str, str] = field(default_factory=dict)
    task_aliases: dict[str, str] = field(default_factory=dict)

    # -- building -----------------------------------------------------------------------------
    @classmethod
    def default(cls, extra_dirs: Sequence[str | Path] = ()) -> Registry:
        reg = cls()
        reg.add_folder(PACKAGE_CARDS)
        for d in os.environ.get(ENV_VAR, "").split(os.pathsep):
            if d.strip():
                reg.add_folder(Path(d.strip()), must_exist=True, origin=f"${ENV_VAR}")
        for d in extra_dirs:
            reg.add_folder(Path(d), must_exist=True, origin="--specs")
        return reg

    def add_folder(self, folder: Path, must_exist: bool = False, origin: str = "") -> None:
        folder = folder.expanduser()
        if not folder.is_dir():
            if must_exist:
                raise BadSpec(f"specs folder {folder} (from {origin}) does not exist; give a folder holding models/ and tasks/ YAML cards")
            return
        files: list[Path] = []
        for sub in ("models", "tasks"):
            if (folder / sub).is_dir():
                files += sorted((folder / sub).glob("*.yaml")) + sorted((folder / sub).glob("*.yml"))
        files += sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
        for path in files:
            self.add_file(path)

    def add_file(self, path: Path) -> ModelSpec | TaskSpec:
        data = load_yaml(path)
        if not isinstance(data, dict):
            raise BadSpec(f"{path}: a card must be a YAML mapping")
        if "family" in data:
            spec = ModelSpec.from_dict(data, str(path))
            self.models[spec.name] = spec
            for a in spec.aliases:
                self.model_aliases[a] = spec.name
            return spec
        if "type" in data:
            tspec = TaskSpec.from_dict(data, str(path))
            self.tasks[tspec.name] = tspec
            for a in tspec.aliases:
                self.task_aliases[a] = tspec.name
            return tspec
        raise BadSpec(f"{path}: not a model card (needs 'family:') nor a task card (needs 'type:')")

    # -- lookup -------------------------------------------------------------------------------
    def model(self, name: str) -> ModelSpec:
        if name in self.models:
            return self.models[name]
        if name in self.model_aliases:
            return self.models[self.model_aliases[name]]
        if name.endswith((".yaml", ".yml")) and Path(name).is_file():
            spec = self.add_file(Path(name))
            if isinstance(spec, ModelSpec):
                return spec
            raise BadSpec(f"{name} is a task card, not a model card")
        raise UnknownModel(name, list(self.models) + list(self.model_aliases))

    def task(self, name: str) -> TaskSpec:
        if name in self.tasks:
            return self.tasks[name]
        if name in self.task_aliases:
            return self.tasks[self.task_aliases[name]]
        if name.endswith((".yaml", ".yml")) and Path(name).is_file():
            spec = self.add_file(Path(name))
            if isinstance(spec, TaskSpec):
                return spec
            raise BadSpec(f"{name} is a model card, not a task card")
        raise UnknownTask(name, list(self.tasks) + list(self.task_aliases))

    def model_names(self) -> list[str]:
        return sorted(self.models)

    def task_names(self) -> list[str]:
        return sorted(self.tasks)


def default_registry(extra_dirs: Iterable[str | Path] = ()) -> Registry:
    return Registry.default(list(extra_dirs))
