"""Tiny random checkpoints of every built-in family, in each family's published format, as lazy model
factories for the contract suite (:mod:`dlmbench.testing.contract`).

Each factory writes its checkpoint on first use into one temporary folder (removed when the test process exits)
and then loads it through the family's loader from the table, as a card would: the same writers the family
tests use (``tests/tiny_zoo.py``: GPT-2 in the HF folder format; ``tests/tiny_dit.py``: MDLM's and SEDD's hub
folders; ``dlmbench/families/llada/writer.py``: LLaDA's sharded safetensors; ``dlmbench/families/plaid/writer.py``:
Plaid's released ``*.pt`` files; ``tests/tiny_bd3lm.py``: BD3-LM's hub folder; ``tests/tiny_duo.py``: DUO's hub folder;
``dlmbench/families/dream/writer.py``: Dream's sharded safetensors).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlmbench.specs import ModelSpec
from dlmbench.testing.contract import card_factory

_ROOT: Path | None = None
_LOCK = threading.Lock()


def _root() -> Path:
    global _ROOT
    if _ROOT is None:
        _ROOT = Path(tempfile.mkdtemp(prefix="dlmbench-contract-"))
        atexit.register(shutil.rmtree, _ROOT, True)
    return _ROOT


def _ar(root: Path) -> dict[str, Any]:
    from tiny_zoo import write_tiny_gpt2

    folder = write_tiny_gpt2(root)
    return {"checkpoint": {"local": str(folder)}, "settings": {"batch_size": 4}}


def _dit(family: str) -> Callable[[Path], dict[str, Any]]:
    def write(root: Path) -> dict[str, Any]:
        from tiny_dit import make_tiny

        card = make_tiny(root, family, max_length=32)["card"]  # mc_samples 4, batch_size 4
        return {k: card[k] for k in ("checkpoint", "tokenizer", "max_length", "settings")}

    return write


def _bd3lm(root: Path) -> dict[str, Any]:
    from tiny_bd3lm import make_tiny_bd3lm

    card = make_tiny_bd3lm(root, block_size=4, max_length=32)["card"]  # mc_samples 4, batch_size 4
    return {k: card[k] for k in ("checkpoint", "tokenizer", "max_length", "settings")}


def _duo(root: Path) -> dict[str, Any]:
    from tiny_duo import make_tiny_duo

    card = make_tiny_duo(root, max_length=32)["card"]  # mc_samples 4, batch_size 4, steps 8
    return {k: card[k] for k in ("checkpoint", "tokenizer", "max_length", "settings")}


def _llada(root: Path) -> dict[str, Any]:
    from dlmbench.families.llada.writer import write_tiny_llada

    folder = write_tiny_llada(root, seed=3)
    # two MC draws: the output layer spans the published 126,464 ids, the costliest part of the suite
    return {"checkpoint": {"local": str(folder)}, "max_length": 64, "settings": {"mc_samples": 2, "batch_size": 4}}


def _dream(root: Path) -> dict[str, Any]:
    from dlmbench.families.dream.writer import write_tiny_dream

    folder = write_tiny_dream(root, seed=4)
    return {"checkpoint": {"local": str(folder)}, "max_length": 64, "settings": {"mc_samples": 4, "batch_size": 4}}


def _plaid(root: Path) -> dict[str, Any]:
    from dlmbench.families.plaid.writer import write_tiny_plaid

    folder = write_tiny_plaid(root, seed=1)
    # greedy_steps: the deterministic greedy decode takes 256 network calls per request by default
    return {"checkpoint": {"local": str(folder)}, "max_length": 64,
            "settings": {"mc_samples": 4, "batch_size": 4, "greedy_steps": 4}}


WRITERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "ar": _ar,
    "mdlm": _dit("mdlm"),
    "sedd": _dit("sedd"),
    "llada": _llada,
    "plaid": _plaid,
    "bd3lm": _bd3lm,
    "duo": _duo,
    "dream": _dream,
}


class LazyTiny:
    """A model factory that writes the family's tiny checkpoint once, on first call."""

    def __init__(self, family: str):
        self.family = family
        self._factory = None

    def _load_factory(self):
        with _LOCK:
            if self._factory is None:
                card = WRITERS[self.family](_root() / self.family)
                spec = ModelSpec.from_dict({"name": f"contract-{self.family}", "family": self.family, **card})
                self._factory = card_factory(spec)
        return self._factory

    def __call__(self, **kw: Any):
        return self._load_factory()(**kw)


FACTORIES = {name: LazyTiny(name) for name in WRITERS}
