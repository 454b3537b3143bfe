"""The names of the metrics that task types write and the report reads: one set of constants, so a chart
cannot look for a name no task writes (``tests/report/test_charts.py`` fails when a chart matches no rows).

Task types import these constants instead of spelling the strings; the leaderboard (``dlmbench/report/``)
selects rows by them.
"""

from __future__ import annotations

# perplexity task type (and lambada's perplexity)
NLL_PER_TOKEN = "nll_per_token"
PERPLEXITY = "perplexity"
BITS_PER_BYTE = "bits_per_byte"
WORD_PERPLEXITY = "word_perplexity"
ACC = "acc"

# genppl / mauve task types: quality, the entropy check, and cost
GEN_PPL = "gen_ppl"
ENTROPY = "entropy"
REFERENCE_ENTROPY = "reference_entropy"
LOW_ENTROPY_FLAG = "low_entropy_flag"
NFE = "nfe"
SECONDS_PER_SAMPLE = "seconds_per_sample"
#: generated tokens per second of wall time (n_samples · length / generation seconds; higher is faster)
TOKENS_PER_SECOND = "tokens_per_second"
MAUVE = "mauve"
MAUVE_STAR = "mauve_star"
FRONTIER_INTEGRAL = "frontier_integral"
FEW_SAMPLES_FLAG = "few_samples_flag"

# reasoning task type: one accuracy per verifier
FAITHFUL_ACC = "faithful_acc"
STRICT_ACC = "strict_acc"
NFE_PER_EXAMPLE = "nfe_per_example"
#: reasoning accuracy metric -> the verifier that produced it (also recorded in the row's ``settings.verifier``)
VERIFIER_OF = {FAITHFUL_ACC: "paper-faithful", STRICT_ACC: "strict"}

# reversal task type: ``<direction>.<measure>``
REVERSAL_SAME = "same"
REVERSAL_REVERSE = "reverse"
REVERSAL_DIRECTIONS = (REVERSAL_SAME, REVERSAL_REVERSE)
EXACT_MATCH = "exact_match"
SUBSTRING = "substring"
LOGPROB = "logprob"


def reversal_metric(direction: str, measure: str) -> str:
    """The reversal task's metric name for one direction and measure, e.g. ``same.exact_match``."""
    return f"{direction}.{measure}"
