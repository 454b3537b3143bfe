"""Test helpers that ship with dlmbench so third-party families can run the same checks as the built-ins.

:mod:`dlmbench.testing.contract` holds the contract suite every registered model family must pass
(:func:`~dlmbench.testing.contract.check_family`, :func:`~dlmbench.testing.contract.parametrize_with_checks`).
Importing this package imports neither torch nor pytest; the contract module imports torch when it runs.
"""

from __future__ import annotations

__all__ = ["contract"]
