"""A toy model family with a typed settings type, registered from the tests only (``dlmbench.plugins.register``).

Its loader must never run in the validation tests: it records the call and fails, so a mistake that slipped
past validation shows up as a loader call (exit 1, a failure record) instead of the expected exit 2.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Literal

from pydantic import Field

from dlmbench.plugins import Family, register, unregister
from dlmbench.specs.settings import Settings

NAME = "toyset"
CALLS: list[str] = []


class ToySettings(Settings):
    """Settings of the toy family (the shape of a diffusion family's)."""

    batch_size: int = Field(8, ge=1, description="Requests per forward pass.")
    steps: int = Field(16, ge=1, description="Sampling steps.")
    temperature: float = Field(1.0, ge=0, description="Sampling temperature.")
    max_length: int | None = Field(None, ge=2, description="Context length (None: the card's).")
    sampler: Literal["ancestral", "topk"] = Field("ancestral", description="Sampler.")
    greedy: Literal["iterative_confidence", "one_shot_argmax"] = Field("iterative_confidence", description="Greedy check.")
    mc_samples: int = Field(4, ge=1, description="Monte Carlo samples per bound.")


def load(spec, *, device="cpu", batch_size=None):
    CALLS.append(spec.name)
    raise RuntimeError(f"toy loader called for {spec.name}: the checkpoint {spec.checkpoint.describe()} does not exist")


FAMILY = Family(
    NAME,
    loader=f"{__name__}:load",
    settings=f"{__name__}:ToySettings",
    capabilities=frozenset({"nll", "greedy_match", "sample"}),
    description="toy family of the settings tests",
    origin="tests/toy_settings_family.py",
)


def install(folder: Path) -> Path:
    """Register the family and write a specs folder with a toy model card (a checkpoint that does not exist,
    context 64) and a toy perplexity task card; returns the folder (for ``--specs`` / ``Registry.default``)."""
    register(FAMILY, exist_ok=True)
    (folder / "models").mkdir(parents=True, exist_ok=True)
    (folder / "tasks").mkdir(parents=True, exist_ok=True)
    (folder / "models" / "toy-model.yaml").write_text(
        textwrap.dedent(
            f"""
            name: toy-model
            family: {NAME}
            checkpoint: {{local: ./no-such-weights}}
            max_length: 64
            settings: {{batch_size: 4, steps: 8}}
            """
        )
    )
    (folder / "tasks" / "toy-text.yaml").write_text(
        "name: toy-text\ntype: perplexity\ndataset: {source: local, path: ./no-such-file.txt}\n"
        "packing: {mode: document, add_bos: true, add_eos: false}\n"
    )
    return folder


def uninstall() -> None:
    unregister(NAME)
    CALLS.clear()
