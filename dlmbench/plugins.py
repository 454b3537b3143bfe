"""The family table: one record per model family, registered once.

A family is a name plus import strings (``"module:object"``, imported on first use, as transformers'
``CONFIG_MAPPING_NAMES`` does: ``huggingface/transformers: src/transformers/models/auto/configuration_auto.py``)
for its loader, its settings type and its zoo recipe, and the set of capabilities its adapter offers. Tasks ask
capabilities (:data:`CAPABILITIES`), never a family name; card validation asks this table which families
exist; :func:`load_model` is the one way from a model card to a loaded adapter, so code above this floor
(tasks, the lm-eval bridge, the runner) never imports :mod:`dlmbench.families`. How to ship a family as a
package: ``docs/plugins.md``.

Order and clashes (as pytest documents for its ``pytest11`` plugins, https://docs.pytest.org/en/stable/how-to/writing_plugins.html):
the built-in families below first, then every entry point of the group ``dlmbench.families``, sorted by
name (a third-party package declares ``[project.entry-points."dlmbench.families"] myfam = "mypkg.family:FAMILY"``
where ``FAMILY`` is a :class:`Family` whose ``name`` is the entry point's name). A name that is already taken,
by a built-in or by another plugin, is refused with one line (:class:`~dlmbench.errors.BadSpec`): a family name
in a result row must mean one thing. ``DLMBENCH_NO_PLUGINS=1`` skips the entry points (the off switch).
:func:`register` adds a family at run time (a test, a notebook); :func:`registered` does so for one block.

This module imports nothing heavy (no torch), so specs can be validated cheaply.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dlmbench.errors import BadSpec, NonFiniteResult, UnknownName

ENTRY_POINT_GROUP = "dlmbench.families"

# what a task may ask a model (LanguageModel.supports); the meaning is the contract a family signs
CAPABILITY_MEANING: Mapping[str, str] = {
    "nll": "nll(sequences) and conditional_nll(requests) answer (-log p per sequence, exact or a bound)",
    "exact_likelihood": "those numbers are exact log-likelihoods (else: Monte Carlo upper bounds with a stderr)",
    "greedy_match": "greedy_match(requests) says whether greedy decoding reproduces a continuation",
    "sample": "sample(n, length, prefix=..., steps=...) draws continuations",
    "infill": "infill(tokens with None holes) fills holes anywhere in a sequence",
    "left_to_right": (
        "sample() decodes one token at a time from the left and ends a row at end-of-text: temperature 0 is "
        "greedy search, and an answer is the tokens before the first end-of-text (else: a fixed-length canvas "
        "decoded in any order, every non-special token of it counts)"
    ),
    "topk_decoding": "sample() offers the easy-first top-k decoding of diffusion-vs-ar (sampler 'topk', topk_strategy)",
    "hidden_states": (
        "the adapter's ``model`` is a Hugging Face transformer whose ``base_model`` returns the last layer's "
        "hidden states (the MAUVE featurizer)"
    ),
}
CAPABILITIES = frozenset(CAPABILITY_MEANING)


@dataclass(frozen=True)
class Family:
    """One model family.

    ``loader``: ``"module:function"``, ``function(spec: ModelSpec, *, device, batch_size) -> LanguageModel``.
    ``capabilities``: a subset of :data:`CAPABILITIES` (what every adapter of the family answers).
    ``settings``: ``"module:Class"``, the family's typed settings (a :class:`dlmbench.specs.settings.Settings`), or None.
    ``zoo``: ``"module:object"``, the family's :class:`dlmbench.zoo.recipes.ZooRecipe` (network, training loss and
    published-format writer of the reference zoo), or None if the zoo does not train it.
    ``description``: one line for ``dlmbench list families``. ``origin``: who registered it (set by the table).
    """

    name: str
    loader: str
    capabilities: frozenset[str]
    settings: str | None = None
    zoo: str | None = None
    description: str = ""
    origin: str = "dlmbench"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[a-z][a-z0-9_-]*", self.name):
            raise BadSpec(f"family name must be lower-case letters, digits, '_' or '-', not {self.name!r}")
        object.__setattr__(self, "capabilities", frozenset(self.capabilities))
        unknown = sorted(self.capabilities - CAPABILITIES)
        if unknown:
            raise BadSpec(f"family {self.name}: unknown capabilities {unknown}; known: {', '.join(sorted(CAPABILITIES))}")
        for what, ref in (("loader", self.loader), ("settings", self.settings), ("zoo", self.zoo)):
            if ref is not None and (not isinstance(ref, str) or ref.count(":") != 1 or not all(ref.split(":"))):
                raise BadSpec(f"family {self.name}: {what} must be 'module:object', not {ref!r}")

    def has(self, capability: str) -> bool:
        if capability not in CAPABILITIES:
            raise UnknownName("capability", capability, sorted(CAPABILITIES))
        return capability in self.capabilities

    def load(self, ref_name: str) -> Any:
        """Import and return the object behind one of the import strings (``"loader"``, ``"settings"``, ``"zoo"``)."""
        ref = getattr(self, ref_name)
        if ref is None:
            return None
        module, _, obj = ref.partition(":")
        try:
            return getattr(importlib.import_module(module), obj)
        except (ImportError, AttributeError) as e:
            raise BadSpec(f"family {self.name} ({self.origin}): cannot import its {ref_name} {ref!r}: {e}") from None


_DIFFUSION = frozenset({"nll", "greedy_match", "sample"})

BUILTIN_FAMILIES: tuple[Family, ...] = (
    Family(
        "ar",
        loader="dlmbench.families.ar.adapter:load_ar",
        settings="dlmbench.families.ar.settings:ARSettings",
        capabilities=frozenset({"nll", "exact_likelihood", "greedy_match", "sample", "left_to_right", "hidden_states"}),
        zoo="dlmbench.zoo.recipes:AR",
        description="autoregressive: any Hugging Face causal LM (GPT-2, SmolLM2, ...); exact likelihoods",
    ),
    Family(
        "mdlm",
        loader="dlmbench.families.mdlm.adapter:load_mdlm",
        settings="dlmbench.families.mdlm.settings:MDLMSettings",
        capabilities=_DIFFUSION | {"infill", "topk_decoding"},
        zoo="dlmbench.zoo.recipes:MDLM",
        description="masked diffusion (Sahoo et al. 2024): continuous-time NELBO, ancestral / first-hitting samplers",
    ),
    Family(
        "sedd",
        loader="dlmbench.families.sedd.adapter:load_sedd",
        settings="dlmbench.families.sedd.settings:SEDDSettings",
        capabilities=_DIFFUSION | {"infill"},
        zoo="dlmbench.zoo.recipes:SEDD",
        description="score entropy discrete diffusion (Lou et al. 2024): DWDSE bound, Euler / analytic samplers",
    ),
    Family(
        "llada",
        loader="dlmbench.families.llada.adapter:load_llada",
        settings="dlmbench.families.llada.settings:LLaDASettings",
        capabilities=_DIFFUSION,  # no infill() yet (the adapter samples a prompt + answer canvas only)
        zoo="dlmbench.zoo.recipes:LLADA",
        description="LLaDA (Nie et al. 2025): masked diffusion bound, low-confidence remasking in blocks",
    ),
    Family(
        "bd3lm",
        loader="dlmbench.families.bd3lm.adapter:load_bd3lm",
        settings="dlmbench.families.bd3lm.settings:BD3LMSettings",
        capabilities=_DIFFUSION,  # no infill(): a block never sees the tokens after it
        zoo="dlmbench.zoo.recipes:BD3LM",
        description="BD3-LM (Arriola et al. 2025): block diffusion, block NELBO (exact at block size 1), semi-AR block sampler",
    ),
    Family(
        "duo",
        loader="dlmbench.families.duo.adapter:load_duo",
        settings="dlmbench.families.duo.settings:DUOSettings",
        capabilities=_DIFFUSION,
        zoo="dlmbench.zoo.recipes:DUO",
        description="DUO (Sahoo et al. 2025): uniform-state diffusion, continuous-time NELBO, ancestral / few-step greedy-tail sampler",
    ),
    Family(
        "dream",
        loader="dlmbench.families.dream.adapter:load_dream",
        settings="dlmbench.families.dream.settings:DreamSettings",
        capabilities=_DIFFUSION | {"infill"},
        zoo="dlmbench.zoo.recipes:DREAM",
        description="Dream (Ye et al. 2025): AR-initialised masked diffusion, shifted logits, NELBO, entropy/confidence-ordered decoding",
    ),
    Family(
        "plaid",
        loader="dlmbench.families.plaid.adapter:load_plaid",
        settings="dlmbench.families.plaid.settings:PlaidSettings",
        capabilities=_DIFFUSION | {"infill"},
        zoo="dlmbench.zoo.recipes:PLAID",
        description="Plaid (Gulrajani & Hashimoto 2023): continuous (Gaussian) diffusion VLB, DDPM-style sampling",
    ),
)
BUILTIN_NAMES = frozenset(f.name for f in BUILTIN_FAMILIES)


@dataclass
class FamilyTable:
    """Name -> :class:`Family`; entry points are read on the first lookup."""

    families: dict[str, Family] = field(default_factory=dict)
    _entry_points_loaded: bool = False

    def add(self, fam: Family, *, exist_ok: bool = False) -> None:
        if not isinstance(fam, Family):
            raise BadSpec(f"a family must be a dlmbench.plugins.Family, not {type(fam).__name__}")
        old = self.families.get(fam.name)
        if old is not None and not (exist_ok and old == fam):
            raise BadSpec(
                f"family {fam.name!r} from {fam.origin} clashes with the one from {old.origin}; "
                + ("built-in families cannot be replaced: rename yours" if fam.name in BUILTIN_NAMES else "rename one of them")
            )
        self.families[fam.name] = fam

    def load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        if os.environ.get("DLMBENCH_NO_PLUGINS", "").strip() not in ("", "0"):
            return
        from importlib.metadata import entry_points

        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
            where = f"entry point {ep.name} = {ep.value}" + (f" (package {ep.dist.name})" if getattr(ep, "dist", None) else "")
            try:
                fam = ep.load()
            except Exception as e:  # noqa: BLE001 — a broken plugin is named in one line, never a bare traceback
                raise BadSpec(f"family plugin {where} failed to load: {type(e).__name__}: {e}") from None
            if not isinstance(fam, Family):
                raise BadSpec(f"family plugin {where} is a {type(fam).__name__}, not a dlmbench.plugins.Family")
            if fam.name != ep.name:
                raise BadSpec(f"family plugin {where} defines family {fam.name!r}; the entry point must be named after it")
            self.add(dataclasses.replace(fam, origin=where))

    def get(self, name: str) -> Family:
        self.load_entry_points()
        if name not in self.families:
            raise UnknownName("model family", name, sorted(self.families), "see `dlmbench list families`")
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


def families() -> list[Family]:
    """Every registered family, sorted by name."""
    return [_TABLE.get(n) for n in _TABLE.names()]


def register(fam: Family, *, exist_ok: bool = False) -> Family:
    """Add a family at run time (tests, notebooks). A taken name is refused (built-ins can never be replaced);
    ``exist_ok`` allows registering the very same record again."""
    _TABLE.load_entry_points()  # so that a clash with an installed plugin is found now, not on the next lookup
    if fam.origin == "dlmbench" and fam.name not in BUILTIN_NAMES:
        fam = dataclasses.replace(fam, origin="dlmbench.plugins.register()")
    _TABLE.add(fam, exist_ok=exist_ok)
    return fam


def unregister(name: str) -> None:
    """Remove a family added with :func:`register` (built-ins stay)."""
    if name in BUILTIN_NAMES:
        raise BadSpec(f"family {name!r} is built in and cannot be removed")
    _TABLE.families.pop(name, None)


@contextlib.contextmanager
def registered(fam: Family) -> Iterator[Family]:
    """``fam`` registered for the duration of a ``with`` block (tests), removed afterwards."""
    fam = register(fam)
    try:
        yield fam
    finally:
        unregister(fam.name)


def families_with(capability: str) -> list[Family]:
    """The registered families that offer ``capability``."""
    return [f for f in families() if f.has(capability)]


def require(family_name: str, capabilities: Iterable[str], what: str) -> None:
    """Refuse (one line) a model card of ``family_name`` for a role (``what``) that needs ``capabilities``.

    Called when a job is resolved, before any model loads (the gen-PPL evaluator needs exact likelihoods, ...)."""
    fam = family(family_name)
    missing = [c for c in capabilities if not fam.has(c)]
    if missing:
        fit = [f.name for f in families() if all(f.has(c) for c in capabilities)]
        raise BadSpec(
            f"{what} is a {fam.name} model, which lacks {', '.join(missing)} "
            f"(needs a family with {', '.join(capabilities)}: {', '.join(fit) or 'none registered'})"
        )


def load_model(spec: Any, *, device: str = "cpu", batch_size: int | None = None) -> Any:
    """Load the adapter of ``spec.family`` (a :class:`~dlmbench.specs.ModelSpec`) with the card's checkpoint and
    settings, through the family's loader (imported by its string), and stamp the family's capabilities and
    the seconds the load took (``load_seconds``) on it.

    The result is checked by what it answers, not by importing :mod:`dlmbench.interface` (which imports this
    module: the table sits on the lowest floor, with :mod:`dlmbench.errors` only)."""
    import time

    fam = family(spec.family)
    t0 = time.monotonic()
    model = fam.load("loader")(spec, device=device, batch_size=batch_size)
    load_seconds = time.monotonic() - t0
    if not all(callable(getattr(model, m, None)) for m in ("conditional_nll", "greedy_match", "sample", "supports")):
        raise BadSpec(f"family {fam.name} ({fam.origin}): its loader returned a {type(model).__name__}, not a LanguageModel")
    # one isfinite pass over the weights (LanguageModel.first_non_finite_weight; duck-typed: this floor has no torch)
    check = getattr(model, "first_non_finite_weight", None)
    bad = check() if callable(check) else None
    if bad is not None:
        raise NonFiniteResult(f"{spec.name}: checkpoint tensor {bad!r} holds NaN or infinite values (found when loading, "
                              "before any forward pass); the checkpoint is broken or was saved after a diverged step")
    model.capabilities = fam.capabilities
    model.load_seconds = load_seconds  # the job log reports the real load time, also when the model is reused
    return model
