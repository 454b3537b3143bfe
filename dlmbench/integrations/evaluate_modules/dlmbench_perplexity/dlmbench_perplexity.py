"""dlmbench's bound-aware perplexity as a Hugging Face ``evaluate`` metric (shipped with dlmbench).

From per-sequence negative log-likelihoods (nats, summed over the sequence's scored tokens) and token
counts, the corpus metrics of :mod:`dlmbench.metrics`: token-weighted ``perplexity = exp(sum nll / sum
tokens)``, ``nll_per_token``, and with ``n_bytes`` ``bits_per_byte = sum nll / (ln 2 sum bytes)``, with
``n_words`` ``word_perplexity = exp(sum nll / sum words)``; standard errors by the delta method over
sequences (Cochran, *Sampling Techniques*, 6.4).

Bounds: each input says whether its NLL is ``exact`` (an AR model) or an ``upper`` bound (a diffusion
model's Monte Carlo NELBO). One upper bound in the sum makes every output an upper bound on the model's
exact value: ``bound`` is then ``upper`` and ``display`` shows each value as ``<= 12.3457`` (exact values as
``12.3457``), as dlmbench's tables do. Load it with
``evaluate.load(dlmbench.integrations.hf_evaluate.module_path("dlmbench_perplexity"))``.
"""

import datasets
import evaluate
import numpy as np

from dlmbench import metrics
from dlmbench.metrics import names

BOUNDS = ("exact", "upper")


def _display(value, bound):
    return f"<= {value:.4f}" if bound == "upper" else f"{value:.4f}"


class DlmbenchPerplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description="nll (float, nats per sequence), n_tokens (int), bound ('exact' or 'upper'); "
            "optional keyword lists n_bytes, n_words",
            features=datasets.Features(
                {"nll": datasets.Value("float64"), "n_tokens": datasets.Value("int64"), "bound": datasets.Value("string")}
            ),
        )

    def _compute(self, nll, n_tokens, bound, n_bytes=None, n_words=None):
        unknown = sorted(set(bound) - set(BOUNDS))
        if unknown:
            raise ValueError(f"dlmbench_perplexity: bound must be 'exact' or 'upper', not {unknown}")
        overall = "upper" if "upper" in bound else "exact"
        nll = np.asarray(nll, dtype=np.float64)
        ntok = np.asarray(n_tokens, dtype=np.float64)
        est = {
            names.NLL_PER_TOKEN: metrics.per_token_nll(nll, ntok),
            names.PERPLEXITY: metrics.perplexity(nll, ntok),
        }
        if n_bytes is not None:
            est[names.BITS_PER_BYTE] = metrics.bits_per_byte(nll, np.asarray(n_bytes, dtype=np.float64))
        if n_words is not None:
            est[names.WORD_PERPLEXITY] = metrics.word_perplexity(nll, np.asarray(n_words, dtype=np.float64))
        out = {}
        for name, e in est.items():
            out[name] = e.value
            out[f"{name}_stderr"] = e.stderr
        out.update(n=len(nll), bound=overall, display={k: _display(e.value, overall) for k, e in est.items()})
        return out
