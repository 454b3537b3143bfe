"""The contract every model family keeps: one suite of checks, run over every family in the table.

Tasks are written against :class:`dlmbench.interface.LanguageModel` alone (``dlmbench/interface.py``), so a family
is only as good as its adapter's promises: one float64 value per request, an honest ``exact``/``upper`` label, numbers
that depend on a request's own seed and on nothing else (not the batch size, not the order of the requests, not the
number of rows drawn), samples of the requested shape inside the vocabulary, and a failure, never a number, when the
network produces NaN or infinity. Each promise is one check function here; a family runs the checks its
capabilities (:data:`dlmbench.plugins.CAPABILITIES`) call for.

Modelled on scikit-learn's ``parametrize_with_checks`` / ``check_estimator``
(https://scikit-learn.org/stable/modules/generated/sklearn.utils.estimator_checks.parametrize_with_checks.html):
each (family, check) pair is its own pytest id, and a family declares the checks it is known to fail, with a
reason, instead of skipping them silently (a declared failure that starts passing is reported, so declarations
cannot go stale).

Running it for a third-party family (the package ships in the wheel; no test folder of dlmbench is needed)::

    # the test module (e.g. tests/ of the third-party package) that registers family "myfam"
    from dlmbench.specs import ModelSpec
    from dlmbench.testing.contract import card_factory, parametrize_with_checks

    CARD = ModelSpec.from_dict({"name": "tiny-myfam", "family": "myfam",
                                "checkpoint": {"local": "tests/data/tiny-myfam"},
                                "settings": {"mc_samples": 4}})

    @parametrize_with_checks({"myfam": card_factory(CARD)},
                             expected_failures={"myfam": {"dtype_float64": "computes in float32 only"}},
                             sample_kwargs={"myfam": {"steps": 4}})
    def test_contract(family_check):
        family_check()

or, outside pytest, ``check_family("myfam", card_factory(CARD))`` runs every check and raises one
``AssertionError`` listing the failures. See :func:`check_family` for what a model factory must do.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from dlmbench.errors import DlmbenchError, NonFiniteResult, UnknownName
from dlmbench.interface import (
    GreedyResult,
    LanguageModel,
    NLLResult,
    SampleResult,
    ScoreRequest,
)
from dlmbench.plugins import Family, family

# Text the standard requests are cut from (tokenized by the model's own tokenizer).
TEXT = "the quick brown fox jumps over the lazy dog, and a small world sleeps in the sun while the dog runs fast"
N_IDS = 20  # token ids the requests use (the tiny checkpoints' windows are 32 tokens and more)
RTOL_BATCH = 1e-5  # batch-size / order invariance: equal up to float32 rounding of the forward pass
RTOL_DTYPE = 1e-4  # float32 vs float64 weights: float32 rounding accumulated through a small network


class ModelFactory(Protocol):
    """Returns a freshly loaded tiny adapter of one family.

    ``batch_size``: rows per network call (None: the card's); ``device``: a torch device string; ``dtype``: the
    card's ``dtype`` (``float32``, ``float64``, ...; None: the card's). Every call loads a new model (the
    non-finite check overwrites its weights); the harness caches the ones it only reads.
    """

    def __call__(self, *, batch_size: int | None = None, device: str = "cpu", dtype: str | None = None) -> LanguageModel: ...


def card_factory(spec: Any) -> ModelFactory:
    """A :class:`ModelFactory` for a model card (a :class:`~dlmbench.specs.ModelSpec`): the family's loader from
    the table, called with the card (its ``dtype`` replaced when asked), ``device`` and ``batch_size``."""

    def make_model(*, batch_size: int | None = None, device: str = "cpu", dtype: str | None = None) -> LanguageModel:
        card = dataclasses.replace(spec, dtype=dtype) if dtype else spec
        loader = family(card.family).load("loader")
        return loader(card, device=device, batch_size=batch_size)

    make_model.spec = spec  # type: ignore[attr-defined]
    return make_model


def poison_weights(model: LanguageModel) -> int:
    """Set every floating-point parameter of every ``torch.nn.Module`` the adapter holds to NaN; return how many
    tensors were changed (the default ``poison`` of the non-finite check)."""
    import torch

    changed = 0
    with torch.no_grad():
        for value in vars(model).values():
            if isinstance(value, torch.nn.Module):
                for p in value.parameters():
                    if p.is_floating_point():
                        p.fill_(float("nan"))
                        changed += 1
    return changed


# ---------------------------------------------------------------------------------------------------------------
# What a check sees


@dataclass
class Subject:
    """One family under test: its table record, its factory, and models loaded once for the read-only checks."""

    family: Family
    make_model: ModelFactory
    sample_kwargs: Mapping[str, Any] = field(default_factory=dict)
    poison: Callable[[LanguageModel], int] = poison_weights
    _models: dict[tuple, LanguageModel] = field(default_factory=dict, repr=False)

    def model(self, *, batch_size: int | None = None, dtype: str | None = None, device: str = "cpu") -> LanguageModel:
        """A cached model (never modify it; use :meth:`fresh` for that)."""
        key = (batch_size, dtype, device)
        if key not in self._models:
            self._models[key] = self.fresh(batch_size=batch_size, dtype=dtype, device=device)
        return self._models[key]

    def fresh(self, **kw: Any) -> LanguageModel:
        m = self.make_model(**kw)
        assert isinstance(m, LanguageModel), f"the factory returned {type(m).__name__}, not a dlmbench LanguageModel"
        return m

    def ids(self, model: LanguageModel) -> list[int]:
        """``N_IDS`` token ids of :data:`TEXT` in the model's tokenizer (never its mask id)."""
        mask = getattr(model.tokenizer, "mask_id", None)
        ids = [t for t in model.tokenizer.encode(TEXT) if t != mask]
        assert len(ids) >= N_IDS, f"the tokenizer turns the contract text into {len(ids)} ids; {N_IDS} needed"
        return ids[:N_IDS]

    def requests(self, model: LanguageModel) -> list[ScoreRequest]:
        """Five requests of three lengths: with and without context, two sharing tokens but not their seed."""
        x = self.ids(model)
        return [
            ScoreRequest(x[0:3], x[3:9], seed=101),
            ScoreRequest((), x[2:9], seed=102),
            ScoreRequest(x[5:6], x[6:10], seed=103),
            ScoreRequest(x[0:3], x[3:9], seed=104),  # request 0's tokens, another seed
            ScoreRequest(x[10:12], x[12:18], seed=105),
        ]

    def sample(self, model: LanguageModel, n: int, length: int, **kw: Any) -> SampleResult:
        return model.sample(n, length, **{**dict(self.sample_kwargs), **kw})


# ---------------------------------------------------------------------------------------------------------------
# The checks: each takes a Subject and raises AssertionError (or the adapter's own error) when the contract breaks


def _assert_close(a: np.ndarray, b: np.ndarray, rtol: float, what: str) -> None:
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=rtol, atol=rtol, err_msg=what)


def check_nll_shapes(s: Subject) -> None:
    """``conditional_nll`` returns one finite float64 value >= 0 per request, the right ``n_tokens`` and a stderr
    per request; ``nll(sequences)`` is ``conditional_nll`` with empty contexts."""
    model = s.model()
    reqs = s.requests(model)
    res = model.conditional_nll(reqs)
    assert isinstance(res, NLLResult), f"conditional_nll returned {type(res).__name__}"
    assert isinstance(res.nll, np.ndarray) and res.nll.dtype == np.float64 and res.nll.shape == (len(reqs),), (res.nll.dtype, res.nll.shape)
    assert isinstance(res.stderr, np.ndarray) and res.stderr.dtype == np.float64 and res.stderr.shape == (len(reqs),)
    assert np.issubdtype(np.asarray(res.n_tokens).dtype, np.integer) and np.asarray(res.n_tokens).shape == (len(reqs),)
    assert np.isfinite(res.nll).all() and (res.nll >= 0).all(), f"values must be finite and >= 0: {res.nll}"
    for i, r in enumerate(reqs):
        want = {len(r.continuation)} if r.context else {len(r.continuation), len(r.continuation) - 1}
        assert int(res.n_tokens[i]) in want, f"request {i}: n_tokens {res.n_tokens[i]}, expected {sorted(want)}"
    assert isinstance(res.mc_samples, int) and res.mc_samples >= 1 and isinstance(res.settings, dict)
    empty = [r for r in reqs if not r.context]
    direct = model.nll([r.continuation for r in empty], seeds=[r.seed for r in empty])
    via = model.conditional_nll(empty)
    np.testing.assert_array_equal(direct.nll, via.nll, err_msg="nll(seqs) must equal conditional_nll with empty contexts")
    np.testing.assert_array_equal(direct.n_tokens, via.n_tokens)


def check_bound_label(s: Subject) -> None:
    """``exact`` iff the family declares ``exact_likelihood`` (stderr 0, one sample); otherwise ``upper`` with a
    finite, non-negative standard error from several Monte Carlo samples per request."""
    model = s.model()
    res = model.conditional_nll(s.requests(model))
    exact = s.family.has("exact_likelihood")
    want = "exact" if exact else "upper"
    assert res.bound == want, f"family {s.family.name} labels its numbers {res.bound!r}; its capabilities say {want!r}"
    assert model.bound == want, f"the adapter's bound attribute is {model.bound!r}, not {want!r}"
    assert model.describe().get("bound", want) == want
    if exact:
        assert res.mc_samples == 1 and (res.stderr == 0).all(), f"exact values carry no MC error: {res.stderr}"
        return
    assert res.mc_samples > 1, (f"the contract needs a factory with more than one MC sample per request (got "
                                f"{res.mc_samples}); a single draw has no per-request error (NaN stderr)")
    assert np.isfinite(res.stderr).all() and (res.stderr >= 0).all(), f"stderr must be finite and >= 0: {res.stderr}"
    assert (res.stderr > 0).any(), "every stderr is 0: the Monte Carlo draws do not vary"


def check_nll_seeding(s: Subject) -> None:
    """The same request seed gives the same number; another seed gives other Monte Carlo draws for a bound, and
    the same number for an exact value."""
    model = s.model()
    reqs = s.requests(model)
    a, b = model.conditional_nll(reqs), model.conditional_nll(reqs)
    np.testing.assert_array_equal(a.nll, b.nll, err_msg="the same requests and seeds gave different numbers")
    np.testing.assert_array_equal(a.stderr, b.stderr)
    other = model.conditional_nll([dataclasses.replace(r, seed=r.seed + 1000) for r in reqs])
    if s.family.has("exact_likelihood"):
        _assert_close(other.nll, a.nll, RTOL_BATCH, "an exact value must not depend on the request seed")
    else:
        changed = other.nll != a.nll
        assert changed.all(), f"new seeds left requests {np.flatnonzero(~changed).tolist()} unchanged: the MC draws ignore the seed"
        assert a.nll[0] != a.nll[3], "requests 0 and 3 share tokens but not their seed, yet got the same bound"


def check_nll_batch_invariance(s: Subject) -> None:
    """Values do not depend on the batch size (1 vs 3 rows per call) or on the order of the requests."""
    reqs = s.requests(s.model())
    one = s.model(batch_size=1).conditional_nll(reqs)
    three = s.model(batch_size=3).conditional_nll(reqs)
    _assert_close(one.nll, three.nll, RTOL_BATCH, "batch_size 1 vs 3")
    order = [4, 2, 0, 3, 1]
    shuffled = s.model(batch_size=3).conditional_nll([reqs[i] for i in order])
    _assert_close(shuffled.nll, three.nll[order], RTOL_BATCH, "reordered requests")
    np.testing.assert_array_equal(shuffled.n_tokens, np.asarray(three.n_tokens)[order])


def check_greedy_match(s: Subject) -> None:
    """``greedy_match`` returns one boolean per request and names its method; independent of the batch size and
    of the order of the requests."""
    model = s.model()
    reqs = s.requests(model)
    res = model.greedy_match(reqs)
    assert isinstance(res, GreedyResult), f"greedy_match returned {type(res).__name__}"
    assert isinstance(res.matches, np.ndarray) and res.matches.dtype == np.bool_ and res.matches.shape == (len(reqs),), (
        res.matches.dtype, res.matches.shape)
    assert isinstance(res.method, str) and res.method, "greedy_match must name its method (recorded in result rows)"
    np.testing.assert_array_equal(s.model(batch_size=1).greedy_match(reqs).matches, res.matches)
    order = [4, 2, 0, 3, 1]
    np.testing.assert_array_equal(model.greedy_match([reqs[i] for i in order]).matches, res.matches[order])


def _rows(res: SampleResult) -> list[list[int]]:
    return [[int(t) for t in row] for row in res.tokens]


def check_sample_shapes(s: Subject) -> None:
    """``sample(n, length)`` returns ``n`` rows of ``length`` integer ids (fewer only for families that stop at
    end-of-text), their texts, the number of network calls and the sampler's settings; likewise after a prefix."""
    model = s.model()
    stops = s.family.has("left_to_right")
    for n, length, prefix in ((3, 5, None), (2, 4, s.ids(model)[:3])):
        res = s.sample(model, n, length, prefix=prefix, seed=11)
        assert isinstance(res, SampleResult), f"sample returned {type(res).__name__}"
        assert len(res.tokens) == n and len(res.texts) == n, (len(res.tokens), len(res.texts))
        for row in res.tokens:
            assert all(isinstance(t, (int, np.integer)) for t in row), f"token ids must be integers: {row}"
            assert len(row) == length or (stops and len(row) < length), f"asked for {length} tokens, got {len(row)}"
        assert all(isinstance(t, str) for t in res.texts)
        assert isinstance(res.nfe, int) and res.nfe >= 1, f"nfe must count the network calls: {res.nfe!r}"
        assert isinstance(res.settings, dict)


def check_sample_vocabulary(s: Subject) -> None:
    """Sampled ids lie in ``[0, tokenizer.vocab_size)`` and are never the mask id."""
    model = s.model()
    vocab = int(model.tokenizer.vocab_size)
    mask = getattr(model.tokenizer, "mask_id", None)
    rows = _rows(s.sample(model, 3, 5, seed=12))
    bad = sorted({t for row in rows for t in row if not 0 <= t < vocab or t == mask})
    assert not bad, f"ids outside the tokenizer's {vocab} tokens (or the mask id {mask}): {bad}"


def check_sample_seeding(s: Subject) -> None:
    """A seed reproduces a sample; a row does not depend on the batch size or on how many rows are drawn."""
    model = s.model()
    first = _rows(s.sample(model, 3, 5, seed=21))
    assert _rows(s.sample(model, 3, 5, seed=21)) == first, "the same seed gave another sample"
    assert _rows(s.sample(s.model(batch_size=1), 3, 5, seed=21)) == first, "batch_size 1 changed the sample"
    assert _rows(s.sample(model, 2, 5, seed=21)) == first[:2], "drawing 2 rows instead of 3 changed rows 0 and 1"


def check_infill(s: Subject) -> None:
    """``infill`` fills the holes of one row and keeps the known tokens where they are; a seed reproduces it."""
    model = s.model()
    x = s.ids(model)
    tokens = [x[0], None, None, x[3], None, x[5]]
    kw = dict(s.sample_kwargs)
    res = model.infill(tokens, seed=5, **kw)
    assert isinstance(res, SampleResult) and len(res.tokens) == 1 and len(res.tokens[0]) == len(tokens)
    row = [int(t) for t in res.tokens[0]]
    assert all(row[i] == t for i, t in enumerate(tokens) if t is not None), f"known tokens moved: {row} vs {tokens}"
    mask = getattr(model.tokenizer, "mask_id", None)
    assert mask is None or mask not in row, f"a hole was left as the mask id: {row}"
    assert [int(t) for t in model.infill(tokens, seed=5, **kw).tokens[0]] == row


def _modules(model: LanguageModel):
    import torch

    return [v for v in vars(model).values() if isinstance(v, torch.nn.Module)]


def check_device_cpu(s: Subject) -> None:
    """``device="cpu"`` puts every weight on the CPU, and the numbers equal the default model's."""
    model = s.model(device="cpu")
    mods = _modules(model)
    assert mods, "the adapter holds no torch module to inspect"
    where = {t.device.type for m in mods for t in itertools.chain(m.parameters(), m.buffers())}
    assert where == {"cpu"}, f"weights on {sorted(where)} after device='cpu'"
    reqs = s.requests(model)
    np.testing.assert_array_equal(model.conditional_nll(reqs).nll, s.model().conditional_nll(reqs).nll)


def check_dtype_float64(s: Subject) -> None:
    """Card ``dtype: float64`` loads float64 weights, and the numbers agree with float32 to float32 rounding."""
    import torch

    model = s.model(dtype="float64")
    dtypes = {p.dtype for m in _modules(model) for p in m.parameters() if p.is_floating_point()}
    assert dtypes == {torch.float64}, f"dtype float64 was asked for; the weights are {sorted(map(str, dtypes))}"
    reqs = s.requests(model)
    _assert_close(model.conditional_nll(reqs).nll, s.model().conditional_nll(reqs).nll, RTOL_DTYPE, "float64 vs float32")


def check_device_cuda(s: Subject) -> None:
    """``device="cuda"`` moves the weights to the GPU and gives the CPU's numbers (float32 rounding)."""
    model = s.model(device="cuda")
    where = {t.device.type for m in _modules(model) for t in m.parameters()}
    assert where == {"cuda"}, f"weights on {sorted(where)} after device='cuda'"
    reqs = s.requests(model)
    _assert_close(model.conditional_nll(reqs).nll, s.model().conditional_nll(reqs).nll, RTOL_DTYPE, "cuda vs cpu")


def _raises_one_line(call: Callable[[], Any], what: str) -> None:
    try:
        out = call()
    except NonFiniteResult as e:
        msg = str(e)
        assert msg and "\n" not in msg, f"{what}: the error must be one line, got {msg!r}"
        return
    except DlmbenchError as e:
        raise AssertionError(f"{what} raised {type(e).__name__} ({e}), not NonFiniteResult") from None
    raise AssertionError(f"{what} returned {out!r} from a model whose weights are NaN; it must raise NonFiniteResult")


def check_non_finite(s: Subject) -> None:
    """With every weight set to NaN, ``nll``, ``conditional_nll``, ``greedy_match`` and ``sample`` raise
    :class:`~dlmbench.errors.NonFiniteResult` (one line), never return a number."""
    model = s.fresh()
    reqs = s.requests(model)
    ids = s.ids(model)
    assert s.poison(model) > 0, "poison changed nothing: pass poison= to check_family for this family"
    if s.family.has("nll"):
        _raises_one_line(lambda: model.conditional_nll(reqs), "conditional_nll")
        _raises_one_line(lambda: model.nll([ids[:6]], seeds=[1]), "nll")
    if s.family.has("greedy_match"):
        _raises_one_line(lambda: model.greedy_match(reqs), "greedy_match")
    if s.family.has("sample"):
        _raises_one_line(lambda: s.sample(model, 2, 4, seed=3), "sample")


@dataclass(frozen=True)
class Check:
    """One check: its function and the capabilities a family needs for it to apply."""

    name: str
    func: Callable[[Subject], None]
    needs: frozenset[str] = frozenset()
    needs_cuda: bool = False

    @property
    def doc(self) -> str:
        return (self.func.__doc__ or "").strip().split("\n")[0]


CHECKS: tuple[Check, ...] = (
    Check("nll_shapes", check_nll_shapes, frozenset({"nll"})),
    Check("bound_label", check_bound_label, frozenset({"nll"})),
    Check("nll_seeding", check_nll_seeding, frozenset({"nll"})),
    Check("nll_batch_invariance", check_nll_batch_invariance, frozenset({"nll"})),
    Check("greedy_match", check_greedy_match, frozenset({"greedy_match"})),
    Check("sample_shapes", check_sample_shapes, frozenset({"sample"})),
    Check("sample_vocabulary", check_sample_vocabulary, frozenset({"sample"})),
    Check("sample_seeding", check_sample_seeding, frozenset({"sample"})),
    Check("infill", check_infill, frozenset({"infill"})),
    Check("device_cpu", check_device_cpu, frozenset({"nll"})),
    Check("dtype_float64", check_dtype_float64, frozenset({"nll"})),
    Check("device_cuda", check_device_cuda, frozenset({"nll"}), needs_cuda=True),
    Check("non_finite", check_non_finite),
)
CHECK_NAMES = tuple(c.name for c in CHECKS)


@functools.cache
def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@dataclass
class FamilyCheck:
    """One (family, check) pair; calling it runs the check. ``expected_failure`` is the declared reason the family
    fails it (None: it must pass); ``not_run`` says why it cannot run on this machine (None: it runs)."""

    subject: Subject
    check: Check
    expected_failure: str | None = None
    not_run: str | None = None

    @property
    def id(self) -> str:
        return f"{self.subject.family.name}-{self.check.name}"

    def __call__(self) -> None:
        self.check.func(self.subject)

    def __repr__(self) -> str:
        return self.id


def check_family(
    name: str,
    make_model: ModelFactory,
    *,
    expected_failures: Mapping[str, str] | None = None,
    sample_kwargs: Mapping[str, Any] | None = None,
    poison: Callable[[LanguageModel], int] | None = None,
    generate_only: bool = False,
) -> dict[str, str] | list[FamilyCheck]:
    """Run the contract suite on the registered family ``name``.

    ``make_model``: a :class:`ModelFactory` returning a freshly loaded *tiny* adapter of the family, e.g.
    :func:`card_factory` of a card whose checkpoint is a small random model in the family's own published format.
    Its default settings must draw more than one Monte Carlo sample per request for a bound (``mc_samples``), and
    its context must hold 10 tokens. The suite loads a handful of models (default, ``batch_size`` 1 and 3,
    ``dtype="float64"``, a fresh one to poison), so it should load in well under a second.

    The checks that apply follow the family's capabilities in the table (:func:`dlmbench.plugins.family`):
    ``nll`` (shapes, bound label, seeding, batch-size and order invariance, CPU and float64 moves),
    ``greedy_match``, ``sample`` (shapes, vocabulary, seeding, batch-size and row-count invariance), ``infill``; the
    non-finite check runs for every family; ``device_cuda`` runs where a CUDA device exists.

    ``expected_failures``: ``{check name: reason}``, the checks this family is known to fail; a declared check that
    passes is an error (remove the declaration). Unknown check names fail with "did you mean".
    ``sample_kwargs``: keyword arguments of every ``sample``/``infill`` call (e.g. ``{"steps": 4}`` so a tiny
    diffusion sampler runs a few steps; use a non-zero temperature so the seeding checks see randomness).
    ``poison``: ``poison(model) -> number of tensors changed``, making the model's forward pass non-finite
    (default :func:`poison_weights`: every floating parameter of the adapter's torch modules set to NaN).

    Returns ``{check id: "passed" | "expected failure: ..." | "not run: ..."}``, or raises one ``AssertionError``
    listing every unexpected failure. With ``generate_only=True`` returns the :class:`FamilyCheck` list instead
    (what :func:`parametrize_with_checks` turns into pytest ids ``<family>-<check>``).
    """
    fam = family(name)
    declared = dict(expected_failures or {})
    for key in declared:
        if key not in CHECK_NAMES:
            raise UnknownName("contract check", key, CHECK_NAMES, f"in the expected failures of family {name}")
    subject = Subject(fam, make_model, dict(sample_kwargs or {}), poison or poison_weights)
    checks = []
    for c in CHECKS:
        if not c.needs <= fam.capabilities:
            if c.name in declared:
                raise UnknownName("contract check", c.name, [k.name for k in CHECKS if k.needs <= fam.capabilities],
                                  f"family {name} lacks {sorted(c.needs - fam.capabilities)}, so it does not run this check")
            continue
        not_run = "needs a CUDA device; this machine has none" if c.needs_cuda and not _cuda_available() else None
        checks.append(FamilyCheck(subject, c, declared.get(c.name), not_run))
    if generate_only:
        return checks
    report: dict[str, str] = {}
    failures: list[str] = []
    for fc in checks:
        if fc.not_run:
            report[fc.id] = f"not run: {fc.not_run}"
            continue
        try:
            fc()
        except Exception as e:  # noqa: BLE001 — every check's failure is collected and reported together
            if fc.expected_failure:
                report[fc.id] = f"expected failure: {fc.expected_failure}"
            else:
                line = str(e).strip().splitlines()[0] if str(e).strip() else ""
                failures.append(f"{fc.id}: {type(e).__name__}: {line}")
            continue
        if fc.expected_failure:
            failures.append(f"{fc.id}: passed, but is declared an expected failure ({fc.expected_failure}); remove the declaration")
        else:
            report[fc.id] = "passed"
    if failures:
        raise AssertionError(f"family {name} breaks the model contract:\n" + "\n".join(failures))
    return report


def parametrize_with_checks(
    families: Mapping[str, ModelFactory],
    *,
    expected_failures: Mapping[str, Mapping[str, str]] | None = None,
    sample_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    poison: Mapping[str, Callable[[LanguageModel], int]] | None = None,
):
    """A ``pytest.mark.parametrize`` over every (family, check) pair of ``families`` (``{name: factory}``), argument
    name ``family_check``, ids ``<family>-<check>``. Declared expected failures are strict ``xfail`` marks (a pass
    is reported as a failure); checks that cannot run here (CUDA on a CPU machine) are ``xfail(run=False)`` with
    their reason, so they show in the summary instead of vanishing. The test body is ``family_check()``.

    Factories are only called when a check runs, so a lazy factory (one that writes its tiny checkpoint on first
    use) keeps collection fast."""
    import pytest

    params = []
    for name, factory in families.items():
        generated = check_family(
            name, factory,
            expected_failures=(expected_failures or {}).get(name),
            sample_kwargs=(sample_kwargs or {}).get(name),
            poison=(poison or {}).get(name),
            generate_only=True,
        )
        for fc in generated:  # type: ignore[union-attr]
            marks = []
            if fc.not_run:
                marks.append(pytest.mark.xfail(run=False, reason=fc.not_run))
            elif fc.expected_failure:
                marks.append(pytest.mark.xfail(strict=True, reason=fc.expected_failure))
            params.append(pytest.param(fc, id=fc.id, marks=marks))
    return pytest.mark.parametrize("family_check", params)


def applicable_checks(name: str) -> list[str]:
    """Names of the checks the capabilities of family ``name`` call for (CUDA-only ones included)."""
    caps = family(name).capabilities
    return [c.name for c in CHECKS if c.needs <= caps]


__all__ = [
    "CHECKS",
    "CHECK_NAMES",
    "Check",
    "FamilyCheck",
    "ModelFactory",
    "Subject",
    "applicable_checks",
    "card_factory",
    "check_family",
    "parametrize_with_checks",
    "poison_weights",
]
