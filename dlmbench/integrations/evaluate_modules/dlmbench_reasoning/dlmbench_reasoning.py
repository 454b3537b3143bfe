"""dlmbench's reasoning verifiers as a Hugging Face ``evaluate`` metric (shipped with dlmbench).

Two verifiers per problem of Ye et al. 2024, "Beyond Autoregression" (:mod:`dlmbench.reasoning`): the
paper-faithful one (``verify_faithful``: the reference's ``compute_acc`` logic) and a strict solution check
(``verify_strict``). The configuration names the problem: ``countdown``, ``sudoku``, ``sat`` or ``planning``.

Inputs: ``predictions`` (the model's answer text), ``references`` (the gold target text: Countdown/SAT/planning
``output``, Sudoku ``solutions``), ``sources`` (the problem text: ``input``, Sudoku ``quizzes``).
Output: ``faithful_acc``, ``strict_acc`` (fractions), their standard errors ``s / sqrt(n)`` (sample std, ddof 1,
as lm-eval and dlmbench's ``reasoning`` task report), ``n``; with ``per_example=True`` also the per-example
verdicts ``faithful`` and ``strict``. Load it with
``evaluate.load(dlmbench.integrations.hf_evaluate.module_path("dlmbench_reasoning"), "countdown")``.
"""

import datasets
import evaluate
import numpy as np

from dlmbench import metrics
from dlmbench.metrics import names
from dlmbench.reasoning import MODULES, SOURCE_FIELD, TARGET_FIELD

_CITATION = """\
@article{ye2024beyond,
  title={Beyond Autoregression: Discrete Diffusion for Complex Reasoning and Planning},
  author={Ye, Jiacheng and Gao, Jiahui and Gong, Shansan and Zheng, Lin and Jiang, Xin and Li, Zhenguo and Kong, Lingpeng},
  journal={arXiv preprint arXiv:2410.14157},
  year={2024}
}
"""


class DlmbenchReasoning(evaluate.Metric):
    def _info(self):
        if self.config_name not in MODULES:
            raise KeyError(f"dlmbench_reasoning: configuration must be one of {sorted(MODULES)}, not {self.config_name!r}")
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description="predictions, references (gold target text) and sources (problem text), all strings",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string"), "sources": datasets.Value("string")}
            ),
            reference_urls=["https://github.com/HKUNLP/diffusion-vs-ar"],
        )

    def _compute(self, predictions, references, sources, per_example=False):
        problem = self.config_name
        mod = MODULES[problem]
        faithful, strict = [], []
        for pred, ref, src in zip(predictions, references, sources):
            example = {SOURCE_FIELD[problem]: src, TARGET_FIELD[problem]: ref}
            faithful.append(bool(mod.verify_faithful(pred, example)))
            strict.append(bool(mod.verify_strict(pred, example)))
        fa, sa = metrics.accuracy(np.array(faithful)), metrics.accuracy(np.array(strict))
        out = {
            names.FAITHFUL_ACC: fa.value, f"{names.FAITHFUL_ACC}_stderr": fa.stderr,
            names.STRICT_ACC: sa.value, f"{names.STRICT_ACC}_stderr": sa.stderr,
            "n": fa.n, "verifiers": dict(names.VERIFIER_OF), "problem": problem,
        }
        if per_example:
            out.update(faithful=faithful, strict=strict)
        return out
