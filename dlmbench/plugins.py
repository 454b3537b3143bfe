"""The family table: one record per model family, registered once.

A family is a name plus import strings (``"module:object"``, imported on first use, as transformers'
``CONFIG_MAPPING_NAMES`` does) for its loader, its settings type and its zoo trainer, and the set of
capabilities its adapter offers. Tasks ask capabilities (``"exact_likelihood"``, ``"infill"``, ...), never a
family name; card validation asks the table which families exist.

Order (as pytest documents for its plugins): the built-in families below first, then every entry point of
the group ``dlmbench.families`` (a third-party package declares
``[project.entry-points."dlmbench.families"] myfam = "mypkg.family:FAMILY"`` where ``FAMILY`` is a
:class:`Family`). A name clash is an error; built-ins always win (lm-eval PR #4014). ``DLMBENCH_NO_PLUGINS=1``
skips the entry points. :func:`register` adds a family at run time (a test, a notebook).

This module imports nothing heavy (no torch), so specs can be validated cheaply.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dlmbench.errors import BadSpec, UnknownName

ENTRY_POINT_GROUP = "dlmbench.families"

CAPABILITIES = frozenset(
    {
        "nll",  # nll(sequences) and conditional_nll(requests)
        "exact_likelihood",  # those numbers are exact (else: Monte Carlo upper bounds with a stderr)
        "greedy_match",  # greedy_match(requests)
        "sample",  # sample(n, length, prefix=..., steps=...)
        "infill",  # infill(tokens with holes)
        "stops_at_eos",  # sample() ends a row at the tokenizer's end-of-text (else: fixed-length canvases)
        "topk_decoding",  # offers diffusion-vs-ar's easy-first top-k decoding (sampler "topk")
    }
)


@dataclass(frozen=True)
class Family:
    """One model family.

    ``loader``: ``"module:function"``, ``function(spec: ModelSpec, *, device, batch_size) -> LanguageModel``.
    ``settings``: ``"module:Class"``, the family's typed settings (a pydantic model), or None.
    ``capabilities``: a subset of :data:`CAPABILITIES`.
    ``zoo_loss``: ``"module:function"`` the zoo's training loss for this family (``loss(net, x, generator, ctx)``), or None.
    """

    name: str
    loader: str
    capabilities: frozenset[str]
    settings: str | None = None
    zoo_loss: str | None = None
    description: str = ""
    origin: str = "dlmbench"

    def __post_init__(self) -> None:
        object.__setattr__(self, "capabilities", frozenset(self.capabilities))
        unknown = sorted(self.capabilities - CAPABILITIES)
        if unknown:
            raise BadSpec(f"family {self.name}: unknown capabilities {unknown}; known: {', '.join(sorted(CAPABILITIES))}")
        for what, ref in (("loader", self.loader), ("settings", self.settings), ("zoo_loss", self.zoo_loss)):
            if ref is not None and ":" not in ref:
                raise BadSpec(f"family {self.name}: {what} must be 'module:object', not {ref!r}")

    def has(self, capability: str) -> bool:
        if capability not in CAPABILITIES:
            raise UnknownName("capability", capability, sorted(CAPABILITIES))
        return capability in self.capabilities

    def load(self, ref_name: str) -> Any:
        """Import and return the object behind one of the import strings (``"loader"``, ``"settings"``, ...)."""
        ref = getattr(self, ref_name)
        if ref is None:
            return None
        module, _, obj = ref.partition(":")
        return getattr(importlib.import_module(module), obj)


_DIFFUSION = frozenset({"nll", "greedy_match", "sample"})

BUILTIN_FAMILIES: tuple[Family, ...] = (
    Family(
        "ar",
        loader="dlmbench.families.ar.adapter:load_ar",
        settings="dlmbench.families.ar.settings:ARSettings",
        capabilities=frozenset({"nll", "exact_likelihood", "greedy_match", "sample", "stops_at_eos"}),
        zoo_loss="dlmbench.zoo.train:ar_loss",
        description="autoregressive: any Hugging Face causal LM (GPT-2, SmolLM2, ...); exact likelihoods",
    ),
    Family(
        "mdlm",
        loader="dlmbench.families.mdlm.adapter:load_mdlm",
        settings="dlmbench.families.mdlm.settings:MDLMSettings",
        capabilities=_DIFFUSION | {"infill", "topk_decoding"},
        zoo_loss="dlmbench.zoo.train:mdlm_loss",
        description="masked diffusion (Sahoo et al. 2024): continuous-time NELBO, ancestral / first-hitting samplers",
    ),
    Family(
        "sedd",
        loader="dlmbench.families.sedd.adapter:load_sedd",
        settings="dlmbench.families.sedd.settings:SEDDSettings",
        capabilities=_DIFFUSION | {"infill"},
        zoo_loss="dlmbench.zoo.train:sedd_loss",
        description="score entropy discrete diffusion (Lou et al. 2024): DWDSE bound, Euler / analytic samplers",
    ),
    Family(
        "llada",
        loader="dlmbench.families.llada.adapter:load_llada",
        settings="dlmbench.families.llada.settings:LLaDASettings",
        capabilities=_DIFFUSION | {"infill"},
        zoo_loss="dlmbench.zoo.train:llada_loss",
        description="LLaDA (Nie et al. 2025): masked diffusion bound, low-confidence remasking in blocks",
    ),
    Family(
        "plaid",
        loader="dlmbench.families.plaid.adapter:load_plaid",
        settings="dlmbench.families.plaid.settings:PlaidSettings",
        capabilities=_DIFFUSION,
        zoo_loss="dlmbench.zoo.train:plaid_loss",
        description="Plaid (Gulrajani & Hashimoto 2023): continuous (Gaussian) diffusion VLB, DDPM-style sampling",
    ),
)


@dataclass
class FamilyTable:
    families: dict[str, Family] = field(default_factory=dict)
    _entry_points_loaded: bool = False

    def add(self, family: Family, *, exist_ok: bool = False) -> None:
        if not isinstance(family, Family):
            raise BadSpec(f"a family must be a dlmbench.plugins.Family, not {type(family).__name__}")
        old = self.families.get(family.name)
        if old is not None and old != family and not exist_ok:
            raise BadSpec(
                f"family {family.name!r} from {family.origin} clashes with the one from {old.origin}; "
                "rename it (built-in families cannot be replaced)"
            )
        self.families[family.name] = family

    def load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        if os.environ.get("DLMBENCH_NO_PLUGINS"):
            return
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                fam = ep.load()
            except Exception as e:  # noqa: BLE001 — a broken plugin is named, never a bare traceback
                raise BadSpec(f"family plugin {ep.name!r} ({ep.value}) failed to load: {type(e).__name__}: {e}") from None
            if isinstance(fam, Family) and fam.origin == "dlmbench":
                import dataclasses

                fam = dataclasses.replace(fam, origin=f"entry point {ep.value}")
            if fam.name in {f.name for f in BUILTIN_FAMILIES}:
                continue  # built-ins win a clash (documented order)
            self.add(fam)

    def get(self, name: str) -> Family:
        self.load_entry_points()
        if name not in self.families:
            raise UnknownName("model family", name, sorted(self.families))
        return self.families[name]

    def names(self) -> list[str]:
        self.load_entry_points()
        return sorted(self.families)


_TABLE = FamilyTable()
for _f in BUILTIN_FAMILIES:
    _TABLE.add(_f)


def family(name: str) -> Family:
    """The registered family called ``name`` (an unknown name gets "did you mean")."""
    return _TABLE.get(name)


def family_names() -> list[str]:
    return _TABLE.names()


def register(fam: Family, *, exist_ok: bool = False) -> Family:
    """Add a family at run time (tests, notebooks). Built-in names cannot be replaced."""
    if fam.name in {f.name for f in BUILTIN_FAMILIES} and _TABLE.families.get(fam.name) != fam:
        raise BadSpec(f"family {fam.name!r} is built in and cannot be replaced; choose another name")
    _TABLE.add(fam, exist_ok=exist_ok)
    return fam


def unregister(name: str) -> None:
    """Remove a family added with :func:`register` (built-ins stay)."""
    if name in {f.name for f in BUILTIN_FAMILIES}:
        raise BadSpec(f"family {name!r} is built in and cannot be removed")
    _TABLE.families.pop(name, None)


def families_with(capability: str) -> Iterable[Family]:
    return [family(n) for n in family_names() if family(n).has(capability)]
