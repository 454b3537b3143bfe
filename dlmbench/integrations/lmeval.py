"""lm-evaluation-harness bridge: any dlmbench model as an lm-eval ``LM`` named ``dlmbench``.

Every family answers lm-eval's three request types through the one model interface
(:mod:`dlmbench.interface`), so every lm-eval task runs on AR and diffusion models alike:

===========================  ==================================================================
lm-eval request              dlmbench question
===========================  ==================================================================
``loglikelihood``            ``(−conditional_nll(ctx, cont), greedy_match(ctx, cont))``. For an AR
                             model the log-probability is exact; for a diffusion model it is the
                             negative of a Monte Carlo **upper bound** on the NLL, i.e. a lower
                             bound on ``log p(cont | ctx)`` (MC samples and estimator in
                             :attr:`DlmbenchLM.score_info`).
``loglikelihood_rolling``    ``−conditional_nll`` of the whole document, the first token scored after
                             the prefix token (left-to-right models: lm-eval's rolling windows under
                             rule ``lmeval``, the adapter's own windows under ``card``) or with every
                             token noised (diffusion).
``generate_until``           ``sample(1, max_gen_toks, prefix=ctx)`` with the family's sampler, greedy
                             (temperature 0) unless the task asks for ``do_sample``; the tokens cut at
                             the model's end-of-text token, decoded, cut at the first ``until`` string
                             (:func:`cut_generation`). A card with ``gen_length`` (LLaDA) generates
                             that many tokens instead, as LLaDA's own harness does.
===========================  ==================================================================

**The same numbers as ``lm_eval --model hf`` by default.** For a model that reads left to right (AR),
model_arg ``prefix=lmeval`` (the default) follows lm-eval's ``hf`` model exactly
(:mod:`dlmbench.integrations.lmeval_protocol`): an empty context is scored after ``prefix_token_id`` from
the model_args, else the tokenizer's BOS, else its EOS (``HFLM.prefix_token_id``); text is encoded with
the tokenizer's default special tokens; a pair is split as ``TemplateLM._encode_pair`` (trailing spaces of
the context move to the continuation, the continuation is ``enc(ctx + cont)[len(enc(ctx)):]``); long
documents are cut into lm-eval's rolling windows. ``prefix=card`` takes dlmbench's own conventions instead:
the model card's ``prefix_token_id`` setting (given in model_args it sets the card's), no special tokens,
:func:`encode_request` and the adapter's sliding window. The rule, the token id and its string are in
lm-eval's ``results["config"]`` (``prefix_rule``, ``prefix_token_id``, ``prefix_token``, ``prefix_source``),
under the printed table, in :attr:`DlmbenchLM.score_info` and in the rows of the ``lmeval`` task type.
Diffusion models have no prefix token (rule ``none``) and keep :func:`encode_request`.

``dlmbench lm-eval`` prints lm-eval's table with a diffusion model's bounds marked (``<=``, see
:mod:`dlmbench.integrations.lmeval_table`) and adds dlmbench's packaged lm-eval tasks (:data:`TASKS_DIR`,
e.g. the offline ``dlmbench_kjv_rolling``) as ``--include_path`` when none is given.

Randomness is per request (docs/architecture.md, "Conventions"): the seed of each request is
``request_seed(seed, "lmeval", context, continuation)`` (:func:`loglikelihood_seed`; generations:
:func:`generate_seed`), so a number does
not depend on the order or batching lm-eval chooses, and identical requests get identical numbers.

Use it from Python (``lm_eval.simple_evaluate(model=DlmbenchLM(model), ...)``), through the task type
``lmeval`` (:mod:`dlmbench.tasks.lmeval`), or from lm-eval's command line::

    dlmbench lm-eval --model dlmbench --model_args model=smollm2-135m,seed=0 --tasks hellaswag --limit 20
    python -m dlmbench.integrations.lmeval --model dlmbench --model_args model=smollm2-135m --tasks hellaswag

Both are lm-eval's own CLI (every argument forwarded) with this model registered. A plain
``lm_eval --model dlmbench`` cannot work with lm-eval 0.4.13: it resolves ``--model`` only in its own
registry (built-in models, no entry-point or plugin discovery), so ``dlmbench`` exists once this module is
imported. ``model_args``: ``model`` (a card name or YAML path), ``seed``, ``greedy``
(``auto``/``true``/``false``), ``prefix`` (``lmeval``/``card``), ``prefix_token_id``, ``specs`` (a folder of cards, ``;``-separated for several; or
``dlmbench --specs DIR lm-eval ...``) and any model setting of the card (``mc_samples=128``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from dlmbench.interface import LanguageModel, NLLResult, ScoreRequest, settings_dict, until_eos
from dlmbench.errors import BadSpec
from dlmbench.integrations.lmeval_protocol import (
    Prefix,
    hflm_encode,
    hflm_generation_context,
    hflm_pair,
    lmeval_prefix_id,
    parse_prefix_rule,
    rolling_windows,
    token_string,
    truncate_left,
)
from dlmbench.seeding import request_seed

MODEL_NAME = "dlmbench"
GREEDY_CHOICES = ("auto", "true", "false")


def loglikelihood_seed(seed: int, context: str, continuation: str) -> int:
    """The seed of one ``loglikelihood`` request: a function of the run seed and the request text only."""
    return request_seed(seed, "lmeval", context, continuation)


def rolling_seed(seed: int, text: str) -> int:
    return request_seed(seed, "lmeval_rolling", text)


def generate_seed(seed: int, context: str, gen_kwargs: dict | None) -> int:
    """The seed of one ``generate_until`` request: the run seed, the context and the sampling arguments.
    The stop strings (``until``) are left out: they only cut the text, so the sample does not depend on them."""
    kw = {k: v for k, v in (gen_kwargs or {}).items() if k != "until"}
    return request_seed(seed, "lmeval_generate", context, json.dumps(kw, sort_keys=True, default=str))


def cut_generation(tokenizer, ids: Sequence[int], until: Sequence[str]) -> str:
    """The answer text of a generation, as lm-eval's HF model cuts it: at the model's end-of-text token
    (``tokenizer.eos_id``, always a stop), then the decoded text at the earliest of the ``until`` strings."""
    text = tokenizer.decode(until_eos(ids, getattr(tokenizer, "eos_id", None)))
    cut = min((text.find(s) for s in until if s and s in text), default=len(text))
    return text[:cut]


def split_context(context: str, continuation: str) -> tuple[str, str]:
    """lm-eval's rule: trailing whitespace of the context belongs to the continuation."""
    n = len(context) - len(context.rstrip())
    if n:
        return context[:-n], context[-n:] + continuation
    return context, continuation


def encode_request(tokenizer, context: str, continuation: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Token ids ``(context, continuation)`` of one ``loglikelihood`` request, as lm-eval splits them."""
    from dlmbench.data.tokenization import encode_pair

    context, continuation = split_context(context, continuation)
    if not context:
        return (), tuple(tokenizer.encode(continuation))
    ctx, cont = encode_pair(tokenizer, context, continuation)
    return tuple(ctx), tuple(cont)


def _parse_greedy(value: Any) -> str:
    v = str(value).strip().lower()
    if v in ("1", "yes", "on"):
        v = "true"
    if v in ("0", "no", "off", "none"):
        v = "false"
    if v not in GREEDY_CHOICES:
        raise BadSpec(f"lm-eval bridge: greedy must be one of {', '.join(GREEDY_CHOICES)}, not {value!r}")
    return v


class DlmbenchLM(LM):
    """A dlmbench :class:`~dlmbench.interface.LanguageModel` as an lm-eval ``LM``.

    ``model`` is a loaded adapter, or a card name / YAML path that is loaded here (then ``settings``
    are the card's model settings to override, e.g. ``mc_samples=64``). ``greedy``: ``auto`` checks
    greedy decoding for every ``loglikelihood`` request except those of tasks in
    :attr:`skip_greedy_tasks` (the ``lmeval`` task puts multiple-choice tasks there, whose metrics
    never read ``is_greedy``; for a diffusion model the check costs one forward per continuation
    token); ``true`` always checks; ``false`` never checks and answers ``is_greedy = False``.
    ``prefix``: ``lmeval`` (default: lm-eval's ``hf`` conventions, so AR numbers equal ``lm_eval --model
    hf``) or ``card`` (the card's prefix token and dlmbench's tokenization); ``prefix_token_id``: under
    ``lmeval`` lm-eval's custom prefix token, under ``card`` the card's setting (module docstring).
    """

    def __init__(
        self,
        model: LanguageModel | str | None = None,
        seed: int = 0,
        greedy: str | bool = "auto",
        device: str | None = None,
        batch_size: int | str | None = None,
        max_batch_size: int | None = None,
        specs: str | None = None,
        prefix: str = "lmeval",
        prefix_token_id: int | str | None = None,
        **settings: Any,
    ) -> None:
        super().__init__()
        if model is None:
            raise BadSpec("lm-eval bridge: give model=NAME (a dlmbench model card) in --model_args")
        rule = parse_prefix_rule(prefix)
        custom = None
        if prefix_token_id is not None:
            if rule == "card":  # the card's own setting (auto / none / an id), applied by the adapter
                settings = {**settings, "prefix_token_id": prefix_token_id}
            else:  # lm-eval's hf model_arg of the same name
                custom = _token_id(prefix_token_id)
        if isinstance(model, str):
            model = _load_named(model, device=device, batch_size=batch_size, specs=specs, settings=settings)
        elif settings:
            raise BadSpec(
                f"lm-eval bridge: settings {sorted(settings)} only apply when the model is loaded by name; "
                "set them on the model card or the loaded adapter"
            )
        if not isinstance(model, LanguageModel):
            raise BadSpec(f"lm-eval bridge: expected a dlmbench LanguageModel, got {type(model).__name__}")
        self.lm: LanguageModel = model
        self.seed = int(seed)
        self.greedy = _parse_greedy(greedy if not isinstance(greedy, bool) else str(greedy))
        self.prefix: Prefix = choose_prefix(model, rule, custom)
        self.skip_greedy_tasks: set[str] = set()
        self._device = str(getattr(model, "device", device or "cpu"))
        # what the last scoring calls reported (bound, MC samples, estimator settings, greedy method)
        self.score_info: dict[str, Any] = {}
        self.counts = {"loglikelihood": 0, "loglikelihood_rolling": 0, "generate_until": 0, "greedy_checks": 0}

    # -- provenance ----------------------------------------------------------------------------
    @property
    def bound(self) -> str:
        return self.lm.bound

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.lm.tokenizer, "name", "?"))

    @property
    def lmeval_rule(self) -> bool:
        """Whether requests are tokenized, prefixed and windowed as lm-eval's ``hf`` model does
        (:mod:`dlmbench.integrations.lmeval_protocol`): rule ``lmeval`` on a left-to-right model."""
        return self.prefix.rule == "lmeval"

    def provenance(self) -> dict[str, Any]:
        """The prefix rule, token id and string, and how long documents are windowed."""
        out = self.prefix.record()
        if self.lmeval_rule:
            out["rolling_windows"] = f"lm-eval (get_rolling_token_windows, disjoint, context_len 1, max_length {self.lm.max_length})"
            out["tokenization"] = "lm-eval hf (tokenizer's default special tokens; context = enc(context))"
        else:
            out["rolling_windows"] = "dlmbench (the adapter's own windows)"
            out["tokenization"] = "dlmbench (no special tokens added)"
        return out

    def get_model_info(self) -> dict[str, Any]:
        """Merged into lm-eval's ``results["config"]``."""
        info = {k: v for k, v in self.lm.describe().items()}
        info["dlmbench_bound"] = self.lm.bound
        info["loglikelihood_kind"] = _ll_kind(self.lm.bound)
        info.update(self.provenance())
        info["dlmbench_prefix"] = self.prefix.line()
        return json.loads(json.dumps(info, default=str))

    def _note(self, res: NLLResult) -> None:
        self.score_info.update(
            {"nll_bound": res.bound, "mc_samples": int(res.mc_samples), "loglikelihood_kind": _ll_kind(res.bound)}
        )
        for k, v in res.settings.items():
            if k == "prefix_token_id" and self.prefix.rule != "card":
                continue  # the card's setting: not the token fed under lm-eval's rule (see prefix_token_id)
            self.score_info[f"estimator.{k}"] = v
        if self.prefix.rule == "card" and "prefix_token_id" in res.settings:  # what the adapter says it applied
            tid = res.settings["prefix_token_id"]
            if tid != self.prefix.token_id:
                self.prefix = card_prefix(self.lm, None if tid is None else int(tid))
        self.score_info.update(self.provenance())

    # -- requests ------------------------------------------------------------------------------
    def _want_greedy(self, task_name: str | None) -> bool:
        if self.greedy == "true":
            return True
        if self.greedy == "false":
            return False
        return task_name not in self.skip_greedy_tasks

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        args = [r.args for r in requests]
        self.counts["loglikelihood"] += len(args)
        out: list[tuple[float, bool]] = [(0.0, True)] * len(args)
        reqs: list[ScoreRequest] = []
        where: list[int] = []
        want: list[bool] = []
        for i, (context, continuation) in enumerate(args):
            ctx, cont = self._encode(context, continuation)
            if not cont:  # nothing to score: log 1 = 0, and the empty string is trivially greedy
                continue
            reqs.append(ScoreRequest(ctx, cont, loglikelihood_seed(self.seed, context, continuation)))
            where.append(i)
            want.append(self._want_greedy(getattr(requests[i], "task_name", None)))
        if not reqs:
            return out
        res = self.lm.conditional_nll(reqs)
        self._note(res)
        greedy = [False] * len(reqs)
        check = [k for k, w in enumerate(want) if w]
        if check:
            g = self.lm.greedy_match([reqs[k] for k in check])
            self.score_info["greedy_method"] = g.method
            self.counts["greedy_checks"] += len(check)
            for k, m in zip(check, g.matches):
                greedy[k] = bool(m)
        for k, i in enumerate(where):
            out[i] = (-float(res.nll[k]), greedy[k])
            self.cache_hook.add_partial("loglikelihood", args[i], out[i])
        return out

    def _encode(self, context: str, continuation: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Token ids ``(context, continuation)`` of one ``loglikelihood`` request: lm-eval's ``hf`` model's
        (prefix token for an empty context, left truncation) under rule ``lmeval``, else :func:`encode_request`."""
        if not self.lmeval_rule:
            return encode_request(self.lm.tokenizer, context, continuation)
        pid = int(self.prefix.token_id)  # type: ignore[arg-type]
        ctx, cont = hflm_pair(self.lm.tokenizer, context, continuation, pid)
        ctx, cont = truncate_left(ctx, cont, self.lm.max_length)
        return tuple(ctx), tuple(cont)

    def _rolling_requests(self, text: str) -> list[ScoreRequest]:
        """One document as score requests whose NLLs sum to its ``-loglikelihood_rolling``: lm-eval's
        windows after the prefix token (rule ``lmeval``), else the whole document with an empty context
        (the adapter applies its own prefix and windows)."""
        seed = rolling_seed(self.seed, text)
        if not self.lmeval_rule:
            ids = tuple(self.lm.tokenizer.encode(text))
            return [ScoreRequest((), ids, seed)] if ids else []
        pid = int(self.prefix.token_id)  # type: ignore[arg-type]
        ids = hflm_encode(self.lm.tokenizer, text, pid)
        if not ids:
            return []
        if self.lm.max_length is None:
            return [ScoreRequest((pid,), tuple(ids), seed)]
        return [ScoreRequest(tuple(c), tuple(p), seed) for c, p in rolling_windows(ids, pid, int(self.lm.max_length))]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        texts = [r.args[0] for r in requests]
        self.counts["loglikelihood_rolling"] += len(texts)
        out = [0.0] * len(texts)
        reqs, owner = [], []
        for i, text in enumerate(texts):
            parts = self._rolling_requests(text)
            reqs.extend(parts)
            owner.extend([i] * len(parts))
        if reqs:
            res = self.lm.conditional_nll(reqs)
            self._note(res)
            for k, i in enumerate(owner):
                out[i] -= float(res.nll[k])
        for i, text in enumerate(texts):
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), out[i])
        return out

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        out: list[str] = []
        self.counts["generate_until"] += len(requests)
        fixed = settings_dict(self.lm).get("gen_length")
        for req in requests:
            context, gen_kwargs = req.args
            kwargs = dict(gen_kwargs or {})
            until = kwargs.pop("until", None) or []
            if isinstance(until, str):
                until = [until]
            max_new = int(kwargs.pop("max_gen_toks", 256))
            # a card with gen_length (LLaDA) generates that many tokens for every request, as LLaDA's own
            # lm-eval harness does (it ignores max_gen_toks); otherwise lm-eval's max_gen_toks
            length = int(fixed) if fixed else max_new
            settings = self._sampler_settings(kwargs)
            if not context:
                prefix = []
            elif self.lmeval_rule:  # as lm-eval's hf model encodes a prompt (a Llama-style tokenizer adds its BOS)
                prefix = hflm_generation_context(self.lm.tokenizer, context)
            else:
                prefix = list(self.lm.tokenizer.encode(context))
            limit = self.lm.max_length
            if limit is not None and prefix:
                keep = max(1, int(limit) - length)  # keep the end of a long prompt (as lm-eval's HF model)
                prefix = prefix[-keep:]
            seed = generate_seed(self.seed, context, gen_kwargs)
            res = self.lm.sample(1, length, prefix=prefix or None, seed=seed, **settings)
            self.score_info.update({f"sampler.{k}": v for k, v in res.settings.items()})
            self.score_info.update({"generate.length": length, "generate.length_from": "gen_length" if fixed else "max_gen_toks"})
            text = cut_generation(self.lm.tokenizer, res.tokens[0], until)
            out.append(text)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
        return out

    def _sampler_settings(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """lm-eval ``gen_kwargs`` → the family's sampler settings (only the ones the adapter has)."""
        known = settings_dict(self.lm)
        do_sample = bool(kwargs.get("do_sample", False))
        temperature = float(kwargs.get("temperature", 0.0) or 0.0)
        wanted: dict[str, Any] = {"temperature": temperature if do_sample and temperature > 0 else 0.0}
        if do_sample:
            for key in ("top_p", "top_k"):
                if kwargs.get(key) is not None:
                    wanted[key] = kwargs[key]
        return {k: v for k, v in wanted.items() if k in known}


def _token_id(value: Any) -> int:
    try:
        tid = int(value)
    except (TypeError, ValueError):
        tid = -1
    if tid < 0 or isinstance(value, bool):
        raise BadSpec(f"lm-eval bridge: prefix_token_id must be a token id >= 0 under prefix=lmeval, not {value!r} "
                      "(the card's auto/none take prefix=card)")
    return tid


def card_prefix(lm: LanguageModel, token_id: int | None) -> Prefix:
    if token_id is None:
        return Prefix("card", None, None, "the model card scores no prefix token: a document's first token is not scored")
    return Prefix("card", int(token_id), token_string(lm.tokenizer, token_id), "the model card's prefix_token_id")


def choose_prefix(lm: LanguageModel, rule: str, custom: int | None) -> Prefix:
    """The prefix token of an empty context under ``rule`` for ``lm``.

    Only a model that reads left to right scores its first token after a prefix token; for the others
    (diffusion: every token noised) the rule is ``none`` whatever was asked."""
    if not lm.supports("left_to_right"):
        if custom is not None:
            raise BadSpec(f"lm-eval bridge: prefix_token_id={custom} has no effect on a {lm.family} model: it does not "
                          "read left to right and scores an empty context with every token noised")
        return Prefix("none", None, None, "no prefix token: the model does not read left to right (an empty context "
                      "is scored with every token noised)")
    if rule == "card":
        return card_prefix(lm, getattr(lm, "prefix_id", None))
    tok = lm.tokenizer
    tid, why = lmeval_prefix_id(custom, getattr(tok, "bos_id", None), getattr(tok, "eos_id", None))
    return Prefix("lmeval", tid, token_string(tok, tid), why)


def _ll_kind(bound: str) -> str:
    return "exact" if bound == "exact" else "lower bound (negative of an MC upper bound on the NLL)"


def _load_named(name: str, *, device: str | None, batch_size: Any, specs: str | None, settings: dict[str, Any]) -> LanguageModel:
    from dlmbench.plugins import load_model
    from dlmbench.registry import Registry

    folders = [s for s in (specs or "").split(";") if s.strip()]
    spec = Registry.default(folders).model(name)
    if settings:
        spec = spec.with_settings(settings)
    bs = int(batch_size) if isinstance(batch_size, int) or (isinstance(batch_size, str) and batch_size.isdigit()) else None
    return load_model(spec, device=_usable_device(device), batch_size=bs)


def _usable_device(device: str | None) -> str:
    """lm-eval's CLI defaults to ``cuda``: fall back to the CPU (with a warning) where there is none."""
    import logging

    import torch

    if not device:
        return "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        logging.getLogger(__name__).warning("lm-eval bridge: device %s not available, using cpu", device)
        return "cpu"
    return str(device)


TASKS_DIR = Path(__file__).resolve().parent / "lmeval_tasks"
"""lm-eval task YAMLs shipped with dlmbench (``dlmbench_kjv_rolling``: offline, data beside it)."""


def with_packaged_tasks(argv: Sequence[str]) -> list[str]:
    """lm-eval arguments with ``--include_path TASKS_DIR`` added when they give none (lm-eval 0.4.13 takes
    one folder; a user's own ``--include_path`` is kept as given)."""
    args = list(argv)
    if any(a == "--include_path" or a.startswith("--include_path=") for a in args):
        return args
    if args and args[0] in ("run", "ls", "validate"):  # lm-eval's subcommands; `ls` and `validate` take it too
        return [args[0], "--include_path", str(TASKS_DIR), *args[1:]]
    if not args or args[0] in ("-h", "--help"):
        return args
    return [*args, "--include_path", str(TASKS_DIR)]


def main(argv: Sequence[str] | None = None) -> None:
    """lm-eval's command line (``lm_eval.__main__.cli_evaluate``) with the ``dlmbench`` model registered,
    dlmbench's packaged tasks on the include path (:func:`with_packaged_tasks`) and the results table
    marking bounds (:func:`dlmbench.integrations.lmeval_table.make_table`).

    ``argv``: lm-eval's arguments (default: this process's). lm-eval reads ``sys.argv`` itself, so it is
    set for the call and restored afterwards; so is ``lm_eval.utils.make_table``, which lm-eval's ``run``
    command imports when it prints."""
    import sys

    import lm_eval.utils
    from lm_eval.__main__ import cli_evaluate

    from dlmbench.integrations.lmeval_table import make_table

    register()
    saved, saved_table = sys.argv, lm_eval.utils.make_table
    sys.argv = [saved[0] if saved else "lm-eval", *with_packaged_tasks(saved[1:] if argv is None else argv)]
    def printed(results, column="results", sort_results=False):
        return make_table(results, column, sort_results)

    printed.lm_eval_original = saved_table  # type: ignore[attr-defined]
    lm_eval.utils.make_table = printed
    try:
        cli_evaluate()
    finally:
        sys.argv = saved
        lm_eval.utils.make_table = saved_table


def register() -> None:
    """Register :class:`DlmbenchLM` as lm-eval model ``dlmbench`` (idempotent).

    lm-eval fills its registry with its own models (``hf``, ``vllm``, ...) lazily, only while it is empty;
    they are imported first so that registering ``dlmbench`` does not hide them."""
    import lm_eval.models  # noqa: F401

    try:
        register_model(MODEL_NAME)(DlmbenchLM)
    except ValueError:  # already registered (e.g. the module was reloaded): keep the first registration
        pass


if __name__ == "__main__":
    # run as a script: register the class under its importable name, not ``__main__.DlmbenchLM``
    from dlmbench.integrations.lmeval import main as _main

    _main()
else:
    register()
