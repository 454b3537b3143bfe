"""dlmbench's generative perplexity with its entropy check as a Hugging Face ``evaluate`` metric.

Generated texts scored by an autoregressive evaluation model, a dlmbench model card (``eval_model``: a card
name such as ``gpt2-large`` or ``smollm2-135m``, or a card YAML path), with the conventions of dlmbench's
``genppl`` task (:func:`dlmbench.tasks.genppl.score_samples`):

- ``mdlm`` (default; MDLM/ReMDM/DUO): each text tokenized by the evaluator, split into evaluator-context
  chunks whose first token is unscored; ``gen_ppl = exp(sum nll / sum tokens)`` over all samples.
- ``sedd`` (SEDD): the generator's token ids (``tokens``) fed to the evaluator directly (same tokenizer).
- ``bos``: the evaluator's BOS prepended, so the first token is scored; mean of per-sample perplexities.

Always reported beside it (Zheng et al. 2024, https://arxiv.org/abs/2409.02908): the mean per-sample unigram
entropy in nats (:mod:`dlmbench.metrics.generation`) of the generator's own token ids ``tokens`` (dlmbench's
convention; without them, of the evaluator's tokens of each text, and ``entropy_tokens`` says so), and, given
``reference_entropy`` (real text of the same length), ``low_entropy_flag``: mean entropy below it by more than
``entropy_margin`` nats (default 0.2): a low gen-PPL with low entropy is repetition, not quality.
Load it with ``evaluate.load(dlmbench.integrations.hf_evaluate.module_path("dlmbench_genppl"))``.
"""

import datasets
import evaluate
import numpy as np

from dlmbench import metrics
from dlmbench.metrics import names
from dlmbench.metrics.generation import unigram_entropies

_CITATION = """\
@article{zheng2024masked,
  title={Masked Diffusion Models are Secretly Time-Agnostic Masked Models and Exploit Inaccurate Categorical Sampling},
  author={Zheng, Kaiwen and Chen, Yongxin and Mao, Hanzi and Liu, Ming-Yu and Zhu, Jun and Zhang, Qinsheng},
  journal={arXiv preprint arXiv:2409.02908},
  year={2024}
}
"""


class _Texts:
    """The generator's tokenizer as seen by the scorer: sample ``i`` is ``[i]`` and decodes to its text."""

    def __init__(self, texts, vocab_size):
        self.texts = list(texts)
        self.vocab_size = vocab_size

    def decode(self, ids):
        return self.texts[int(ids[0])]


class DlmbenchGenppl(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description="predictions: generated texts; keywords eval_model, convention, tokens, reference_entropy, "
            "entropy_margin, device, specs",
            features=datasets.Features({"predictions": datasets.Value("string")}),
        )

    def _compute(self, predictions, eval_model="gpt2-large", convention="mdlm", tokens=None, reference_entropy=None,
                 entropy_margin=0.2, device="cpu", specs=None):
        from dlmbench.plugins import load_model
        from dlmbench.registry import Registry
        from dlmbench.tasks.genppl import score_samples

        folders = [specs] if isinstance(specs, str) else list(specs or [])
        evaluator = load_model(Registry.default(folders).model(eval_model), device=device)
        texts = list(predictions)
        if tokens is not None and len(tokens) != len(texts):
            raise ValueError(f"dlmbench_genppl: {len(tokens)} token lists for {len(texts)} texts")
        if convention == "sedd":
            if tokens is None:
                raise ValueError("dlmbench_genppl: convention 'sedd' scores the generator's token ids: give tokens")
            samples, gen_tok = [list(t) for t in tokens], evaluator.tokenizer
        else:
            samples, gen_tok = [[i] for i in range(len(texts))], _Texts(texts, evaluator.tokenizer.vocab_size)
        gen_ppl, nll, ntok = score_samples(evaluator, gen_tok, samples, convention)
        ok = np.array(ntok) > 0
        nll_ok, ntok_ok = np.array(nll)[ok], np.array(ntok)[ok]
        if convention == "mdlm":
            se = metrics.perplexity(nll_ok, ntok_ok).stderr
        else:
            se = metrics.mean_estimate(np.exp(nll_ok / ntok_ok)).stderr
        ids = [list(t) for t in tokens] if tokens is not None else [evaluator.tokenizer.encode(t) for t in texts]
        ent = metrics.mean_estimate(unigram_entropies(ids))
        out = {
            names.GEN_PPL: gen_ppl, f"{names.GEN_PPL}_stderr": se,
            names.ENTROPY: ent.value, f"{names.ENTROPY}_stderr": ent.stderr,
            "entropy_tokens": "generator" if tokens is not None else "evaluator",
            "n": len(texts), "eval_model": eval_model, "convention": convention,
        }
        if reference_entropy is not None:
            out[names.REFERENCE_ENTROPY] = float(reference_entropy)
            out[names.LOW_ENTROPY_FLAG] = float(ent.value < float(reference_entropy) - float(entropy_margin))
            out["entropy_margin"] = float(entropy_margin)
        return out
