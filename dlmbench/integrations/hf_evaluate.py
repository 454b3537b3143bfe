"""dlmbench's metrics as Hugging Face ``evaluate`` modules, loaded from the installed package, offline.

Each module is a script ``evaluate_modules/NAME/NAME.py`` beside this file (``evaluate``'s layout for a
local module), shipped as package data; ``evaluate.load`` copies the script into its modules cache and
imports it, and the script calls dlmbench's own functions, so a number is the one dlmbench computes::

    import evaluate
    from dlmbench.integrations.hf_evaluate import module_path

    verifiers = evaluate.load(module_path("dlmbench_reasoning"), "countdown")   # or sudoku, sat, planning
    verifiers.compute(predictions=[...], references=[...], sources=[...])
    # {'faithful_acc': ..., 'faithful_acc_stderr': ..., 'strict_acc': ..., 'strict_acc_stderr': ..., 'n': ...}

    ppl = evaluate.load(module_path("dlmbench_perplexity"))
    ppl.compute(nll=[...], n_tokens=[...], bound=["upper", ...], n_bytes=[...])
    # {'perplexity': ..., 'bound': 'upper', 'display': {'perplexity': '<= 12.3457', ...}, ...}

    genppl = evaluate.load(module_path("dlmbench_genppl"))
    genppl.compute(predictions=texts, eval_model="smollm2-135m", tokens=generator_ids, reference_entropy=5.6)

=========================  =====================================================================================
module                     what it computes (and the dlmbench path it equals, tests/integrations/test_hf_evaluate.py)
=========================  =====================================================================================
``dlmbench_reasoning``     the paper-faithful and strict verifiers of :mod:`dlmbench.reasoning` (config: the
                           problem), accuracies with ``s / sqrt(n)`` standard errors (task type ``reasoning``)
``dlmbench_perplexity``    token-weighted perplexity, NLL per token, bits per byte, word perplexity with
                           delta-method standard errors (:mod:`dlmbench.metrics`) from per-sequence NLLs, and
                           whether the result is exact or an upper bound (any ``upper`` input makes it one;
                           task type ``perplexity``)
``dlmbench_genppl``        generative perplexity under an evaluation model card (conventions ``mdlm``, ``sedd``,
                           ``bos``) with the per-sample unigram entropy and the low-entropy flag (task type
                           ``genppl``)
=========================  =====================================================================================
"""

from __future__ import annotations

from pathlib import Path

from dlmbench.errors import UnknownName

MODULES_DIR = Path(__file__).resolve().parent / "evaluate_modules"
MODULES = ("dlmbench_reasoning", "dlmbench_perplexity", "dlmbench_genppl")


def module_path(name: str) -> str:
    """The folder to pass to ``evaluate.load`` for dlmbench module ``name``."""
    if name not in MODULES:
        raise UnknownName("evaluate module", name, list(MODULES))
    return str(MODULES_DIR / name)


__all__ = ["MODULES", "MODULES_DIR", "module_path"]
