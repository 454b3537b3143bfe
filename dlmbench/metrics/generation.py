"""Statistics of generated token sequences: per-sample unigram entropy.

Reference: ReMDM ``main.py``, DUO ``metrics.py::record_entropy``, BD3-LM ``_compute_entropy``.
For one sample ``x`` (the generator's own token ids, before any
decode/retokenize) with token counts ``c_v``::

    p_v = c_v / sum_v c_v,        H(x) = -sum_v p_v ln p_v        (nats)

The reported number is the plain mean of ``H`` over samples (not a pooled-count entropy).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def unigram_entropy(tokens: Sequence[int] | np.ndarray) -> float:
    """Entropy (nats) of the empirical unigram distribution of one sample.

    Raises ``ValueError`` for an empty sample (its entropy is undefined).
    """
    arr = np.asarray(tokens).reshape(-1)
    if arr.size == 0:
        raise ValueError("unigram entropy of an empty sample is undefined")
    _, counts = np.unique(arr, return_counts=True)
    p = counts.astype(np.float64) / counts.sum()
    return float(-(p * np.log(p)).sum())


def unigram_entropies(samples: Iterable[Sequence[int]]) -> np.ndarray:
    """Per-sample unigram entropies (nats), float64 array."""
    return np.array([unigram_entropy(s) for s in samples], dtype=np.float64)


def mean_unigram_entropy(samples: Iterable[Sequence[int]]) -> float:
    """Mean over samples of the per-sample unigram entropy (nats), as in the module docstring."""
    h = unigram_entropies(samples)
    if h.size == 0:
        raise ValueError("no samples")
    return float(h.mean())
