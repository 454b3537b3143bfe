"""Model families, one folder each (``ar/``, ``mdlm/``, ``sedd/``, ``llada/``, ``plaid/``), registered in
:mod:`dlmbench.plugins`. :func:`load_model` is the one way to turn a model card into an adapter."""

from __future__ import annotations

from dlmbench.plugins import family as _family
from dlmbench.specs import ModelSpec


def load_model(spec: ModelSpec, *, device: str = "cpu", batch_size: int | None = None):
    """Load the adapter of ``spec.family`` (looked up in the family table) with the card's checkpoint and settings."""
    loader = _family(spec.family).load("loader")
    return loader(spec, device=device, batch_size=batch_size)
