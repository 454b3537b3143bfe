"""Per-sample unigram entropy (nats), mean over samples (as documented in dlmbench/metrics/generation.py)."""

import math

import numpy as np
import pytest
import torch

from dlmbench.metrics.generation import mean_unigram_entropy, unigram_entropies, unigram_entropy


def test_hand_computed_values():
    assert unigram_entropy([7, 7, 9, 9]) == pytest.approx(math.log(2), abs=1e-15)
    assert unigram_entropy([5, 5, 5, 5]) == 0.0
    assert unigram_entropy(list(range(10))) == pytest.approx(math.log(10), abs=1e-14)
    assert unigram_entropy([0, 0, 0, 1]) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)), abs=1e-15)


def test_mean_is_over_samples_not_pooled():
    samples = [[1, 1, 2, 2], [3, 3, 3, 3]]
    assert mean_unigram_entropy(samples) == pytest.approx(math.log(2) / 2, abs=1e-15)
    # the pooled distribution {1:2, 2:2, 3:4} would give 1.5 ln 2 -- not what is reported
    assert mean_unigram_entropy(samples) != pytest.approx(1.5 * math.log(2))
    np.testing.assert_allclose(unigram_entropies(samples), [math.log(2), 0.0], atol=1e-15)


def test_matches_the_reference_torch_formula():
    # ReMDM / DUO: torch.unique counts -> torch.special.entr(p).sum(), mean over samples
    rng = np.random.default_rng(0)
    samples = [rng.integers(0, 50, size=200) for _ in range(8)]
    ref = []
    for s in samples:
        _, counts = torch.unique(torch.as_tensor(s), return_counts=True)
        ref.append(torch.special.entr(counts.double() / counts.sum()).sum().item())
    assert mean_unigram_entropy(samples) == pytest.approx(float(np.mean(ref)), rel=1e-12)


def test_invariant_to_relabelling_and_order():
    s = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]
    relabelled = [100 + 7 * t for t in reversed(s)]
    assert unigram_entropy(s) == pytest.approx(unigram_entropy(relabelled), abs=1e-15)


def test_empty_inputs_raise():
    with pytest.raises(ValueError):
        unigram_entropy([])
    with pytest.raises(ValueError):
        mean_unigram_entropy([])
