"""Reversal-curse string metrics on hand-made completions."""

import math

import pytest

from dlmbench.metrics.reversal import accuracy, exact_match, score_completions, substring_match


def test_exact_match_is_case_insensitive_prefix():
    assert exact_match(" Daphne Barrington, the acclaimed director.", " Daphne Barrington")
    assert exact_match("daphne barrington", "Daphne Barrington")
    assert exact_match("\n Daphne Barrington\n", "Daphne Barrington ")
    assert not exact_match("The answer is Daphne Barrington", "Daphne Barrington")  # not a prefix
    assert not exact_match("Daphne", "Daphne Barrington")  # truncated
    assert not exact_match("daphne barrington", "Daphne Barrington", case_sensitive=True)


def test_substring_match_smdm_and_llada():
    assert substring_match("The answer is Daphne Barrington.", " daphne barrington ")
    assert not substring_match("Daphne B.", "Daphne Barrington")
    # LLaDA's `answer in output`: case- and space-sensitive
    assert substring_match("君子好逑。", "君子好逑", normalize=False)
    assert not substring_match("the answer", "The answer", normalize=False)


def test_accuracy_and_stderr():
    acc = accuracy([True, False, True, True])
    assert acc.value == 0.75 and acc.n == 4
    assert acc.stderr == pytest.approx(math.sqrt(0.75 * 0.25 / 4))
    with pytest.raises(ValueError):
        accuracy([])


def test_score_completions_both_metrics():
    completions = ["Uriah Hawthorne.", "It was Uriah Hawthorne", "uriah", "URIAH HAWTHORNE is"]
    targets = [" Uriah Hawthorne"] * 4
    s = score_completions(completions, targets)
    assert s.exact_match.value == pytest.approx(2 / 4)  # 1st and 4th
    assert s.substring.value == pytest.approx(3 / 4)  # also the 2nd
    with pytest.raises(ValueError):
        score_completions(["a"], [])
