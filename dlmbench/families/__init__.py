"""Model families, one folder each (``ar/``, ``mdlm/``, ``sedd/``, ``llada/``, ``plaid/``), registered in
:mod:`dlmbench.plugins`. :func:`load_model` (= :func:`dlmbench.plugins.load_model`) turns a model card into an
adapter; code above this floor calls the plugins one and never imports this package."""

from __future__ import annotations

from dlmbench.plugins import load_model

__all__ = ["load_model"]
