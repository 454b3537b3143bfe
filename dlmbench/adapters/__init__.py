"""Model adapters: one module per family behind :class:`~dlmbench.adapters.base.LanguageModel`."""

from __future__ import annotations

from ..errors import NotSupported
from ..specs import ModelSpec

# family -> (module, loader function); families land one adapter at a time
_LOADERS = {
    "ar": ("dlmbench.adapters.ar", "load_ar"),
    "llada": ("dlmbench.adapters.llada", "load_llada"),
    "mdlm": ("dlmbench.adapters.mdlm", "load_mdlm"),
    "sedd": ("dlmbench.adapters.sedd", "load_sedd"),
    "plaid": ("dlmbench.adapters.plaid", "load_plaid"),
}


def load_model(spec: ModelSpec, *, device: str = "cpu", batch_size: int | None = None):
    """Load the adapter for ``spec.family`` with the card's checkpoint and settings."""
    import importlib

    if spec.family not in _LOADERS:
        raise NotSupported(
            f"model {spec.name}: the {spec.family} adapter is not available in this version of dlmbench "
            f"(available: {', '.join(sorted(_LOADERS))})"
        )
    module, fn = _LOADERS[spec.family]
    return getattr(importlib.import_module(module), fn)(spec, device=device, batch_size=batch_size)
