"""Per-request randomness (docs/architecture.md, "Conventions").

Every Monte Carlo draw and every sample is seeded from (run seed, request identity), so a number does
not change with batch size, request order or worker count. Nothing here touches global RNG state.
"""

from __future__ import annotations

import hashlib

import torch


def request_seed(run_seed: int, *identity: object) -> int:
    """A 63-bit seed from the run seed and a request's identity (e.g. task name, document index).

    ``sha256(repr((run_seed, *identity)))`` truncated to 63 bits: stable across processes and Python
    versions (unlike ``hash``), distinct for distinct identities with overwhelming probability.
    """
    digest = hashlib.sha256(repr((int(run_seed),) + tuple(identity)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` seeded with ``seed`` on ``device``."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed) & ((1 << 63) - 1))
    return g
