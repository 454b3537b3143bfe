"""The reference zoo: tiny models of every family trained by dlmbench itself, on CPU, in minutes.

``corpus``  training text and its held-out part, the small BPE, length-bucketed batches
``configs`` typed sizes and optimiser settings (``tiny``: a few million parameters, equal across families)
``train``   one readable training loop; each family's loss is its own bound from :mod:`dlmbench.diffusion`
``writers`` checkpoints in each family's *published* format (so they load through the normal adapters)
``build``   trains the whole zoo and writes model cards next to the weights

CLI: ``dlmbench zoo list | train FAMILY --corpus kjv --config tiny | build``.
"""

from __future__ import annotations

FAMILIES = ("ar", "mdlm", "sedd", "llada", "plaid")
