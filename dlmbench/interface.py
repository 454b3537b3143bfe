"""The one model interface every task is written against (docs/architecture.md).

Tasks never know which family they talk to; adapters never know which task is asking. Everything a
task needs from a model is four questions (plus infilling for the families that support it):

=====================  ===========================================  ===============================================
question               autoregressive (any HF causal LM)            diffusion (MDLM, SEDD, LLaDA, Plaid, ...)
=====================  ===========================================  ===============================================
``conditional_nll``    exact ``-log p(cont | ctx)``, one pass,       Monte Carlo **upper bound** on
                       sliding window past the context length       ``-log p(cont | ctx)`` (context kept clean)
                                                                     with its standard error
``nll``                ``conditional_nll`` with an empty context     idem, every token noised
``greedy_match``       every continuation token is the argmax        the family's documented greedy check
``sample``             ancestral with temperature/top-k/top-p        the family's samplers
``infill``             :class:`~dlmbench.errors.NotSupported`        native
=====================  ===========================================  ===============================================

All token inputs are lists of integer ids in the model's own tokenizer; tasks tokenize with
``model.tokenizer``. All returned numbers are float64 numpy arrays, in nats.

What a model can do beyond the four questions is a set of capabilities (``exact_likelihood``, ``infill``,
``left_to_right``, ...; :data:`dlmbench.plugins.CAPABILITIES`), filled from the family table when the
model is loaded; a task asks :meth:`LanguageModel.supports`, never ``model.family``.

Randomness is per request: every request carries its own ``seed`` (derived by the task from the run
seed and the request's identity with :func:`dlmbench.seeding.request_seed`), so a number never depends
on batch size, request order or worker count, and nothing uses global RNG state.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from dlmbench.errors import NonFiniteResult, NotSupported

Bound = Literal["exact", "upper"]
"""``exact``: the number is the model's true value. ``upper``: an upper bound on the NLL (a lower bound
on the log-likelihood), e.g. a diffusion NELBO; shown with ``≤`` everywhere."""


def require_finite(values: Any, what: str) -> Any:
    """Return ``values`` (a numpy array or a torch tensor) if every entry is finite, else raise
    :class:`~dlmbench.errors.NonFiniteResult` naming ``what`` (docs/architecture.md, Conventions: a non-finite number is a failure,
    never a result). A tensor is checked on its own device with one reduction."""
    if hasattr(values, "isfinite") and hasattr(values, "detach"):  # torch.Tensor, without importing torch
        finite = values.detach().isfinite()
        if bool(finite.all()):
            return values
        bad, total = int((~finite).sum()), int(finite.numel())
    else:
        finite = np.isfinite(np.asarray(values, dtype=np.float64))
        if finite.all():
            return values
        bad, total = int((~finite).sum()), int(finite.size)
    raise NonFiniteResult(
        f"{what}: {bad} of {total} values are NaN or infinite (broken weights, or an overflow in low precision: "
        "try dtype float32); a non-finite number is never a result"
    )


@dataclass(frozen=True)
class ScoreRequest:
    """Score ``continuation`` given ``context``: ``-log p(continuation | context)``.

    ``context`` may be empty. For an AR model with an empty context the first continuation token is
    scored against the model's prefix token (BOS) when it has one; otherwise it cannot be scored and is
    excluded from ``n_tokens`` (see :attr:`NLLResult.n_tokens`).
    """

    context: tuple[int, ...]
    continuation: tuple[int, ...]
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "context", tuple(int(t) for t in self.context))
        object.__setattr__(self, "continuation", tuple(int(t) for t in self.continuation))


@dataclass(frozen=True)
class NLLResult:
    """Per-request negative log-likelihoods (nats) with their Monte Carlo error.

    ``nll[i]``      −log p of the scored tokens of request i (exact) or its MC estimate of an upper bound.
    ``n_tokens[i]`` how many tokens that number covers (for token-weighted perplexity).
    ``stderr[i]``   Monte Carlo standard error of ``nll[i]`` (0 for exact values; NaN when a single MC
                    sample was drawn, so the error must come from variation across requests).

    Every ``nll`` value must be finite: a NaN or infinite value raises
    :class:`~dlmbench.errors.NonFiniteResult` here, where results are built, so it can never become a row.
    ``bound``       ``exact`` or ``upper``.
    ``mc_samples``  MC samples per request (1 for exact).
    ``settings``    estimator settings to record in the result row (time sampling, eps, window, ...).
    """

    nll: np.ndarray
    n_tokens: np.ndarray
    stderr: np.ndarray
    bound: Bound
    mc_samples: int = 1
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.nll)
        if not (len(self.n_tokens) == len(self.stderr) == n):
            raise ValueError("nll, n_tokens and stderr must have the same length")
        if self.bound not in ("exact", "upper"):
            raise ValueError(f"bound must be 'exact' or 'upper', not {self.bound!r}")
        require_finite(self.nll, f"negative log-likelihoods ({self.bound})")

    def __len__(self) -> int:
        return len(self.nll)

    @staticmethod
    def concat(parts: Sequence[NLLResult]) -> NLLResult:
        if not parts:
            raise ValueError("nothing to concatenate")
        return NLLResult(
            nll=np.concatenate([p.nll for p in parts]).astype(np.float64),
            n_tokens=np.concatenate([p.n_tokens for p in parts]).astype(np.int64),
            stderr=np.concatenate([p.stderr for p in parts]).astype(np.float64),
            bound=parts[0].bound,
            mc_samples=parts[0].mc_samples,
            settings=dict(parts[0].settings),
        )


@dataclass(frozen=True)
class GreedyResult:
    """Whether each continuation is what the model decodes greedily, and how that was decided.

    ``method`` names the check (``ar_argmax``, ``iterative_confidence``, ``one_shot_argmax``) and is
    recorded in the result row because the diffusion variants are not equally strict.
    """

    matches: np.ndarray
    method: str


@dataclass(frozen=True)
class SampleResult:
    """Generated token ids (without the prefix), their text, and the cost of producing them.

    ``nfe`` counts network forward evaluations for the whole call; ``settings`` records the sampler,
    steps, temperature, top-p/top-k and the precision of the categorical draws.
    """

    tokens: list[list[int]]
    texts: list[str]
    nfe: int
    settings: dict[str, Any] = field(default_factory=dict)


class Tokenizer(Protocol):
    """What tasks need from a model's tokenizer."""

    name: str
    vocab_size: int
    bos_id: int | None
    eos_id: int | None
    mask_id: int | None

    def encode(self, text: str) -> list[int]:  # no special tokens added
        ...

    def decode(self, ids: Sequence[int]) -> str: ...


def until_eos(ids: Sequence[int], eos_id: int | None) -> list[int]:
    """``ids`` up to (without) the first end-of-text token; all of them when there is none (or no ``eos_id``).
    A generated answer ends there: what a sampler writes after it is not part of the answer."""
    ids = [int(t) for t in ids]
    if eos_id is not None and int(eos_id) in ids:
        return ids[: ids.index(int(eos_id))]
    return ids


def tokenizer_prefix(tokenizer: Any, mode: str) -> int | None:
    """The prefix token a tokenizer implies for a packed sequence: its BOS; in ``wrap`` mode without a BOS, its EOS
    (MDLM's block framing; GPT-2 has one token for both). Families that declare no prefix token of their own (the
    diffusion families) use this; the AR family uses its card's ``prefix_token_id``."""
    bos = getattr(tokenizer, "bos_id", None)
    if bos is None and mode == "wrap":
        return getattr(tokenizer, "eos_id", None)
    return bos


class LanguageModel(abc.ABC):
    """Base class of every model adapter.

    Subclasses set ``family`` and ``bound`` and implement the abstract methods. ``batch_size`` and
    ``device`` are settings of the adapter; requests are passed all at once and batched inside.
    """

    family: str = "?"
    bound: Bound = "exact"
    # what this adapter answers (dlmbench.plugins.CAPABILITIES); load_model stamps its family's set here,
    # an adapter built directly falls back to the family table (see supports)
    capabilities: frozenset[str] | None = None
    tokenizer: Tokenizer
    max_length: int | None = None
    settings: dict[str, Any]

    @abc.abstractmethod
    def conditional_nll(self, requests: Sequence[ScoreRequest]) -> NLLResult:
        """``-log p(continuation | context)`` per request (exact, or an MC upper bound)."""

    def nll(self, sequences: Sequence[Sequence[int]], seeds: Sequence[int] | None = None) -> NLLResult:
        """``-log p(x)`` per sequence: :meth:`conditional_nll` with empty contexts."""
        seeds = list(seeds) if seeds is not None else [0] * len(sequences)
        return self.conditional_nll([ScoreRequest((), tuple(s), seed) for s, seed in zip(sequences, seeds)])

    @abc.abstractmethod
    def greedy_match(self, requests: Sequence[ScoreRequest]) -> GreedyResult:
        """Whether greedy decoding from ``context`` reproduces ``continuation`` exactly."""

    @abc.abstractmethod
    def sample(
        self,
        n: int,
        length: int,
        *,
        prefix: Sequence[int] | None = None,
        steps: int | None = None,
        seed: int = 0,
        **settings: Any,
    ) -> SampleResult:
        """Draw ``n`` continuations of ``length`` tokens after ``prefix`` with the family's sampler."""

    def infill(self, tokens: Sequence[int | None], *, steps: int | None = None, seed: int = 0, **settings: Any) -> SampleResult:
        """Fill the ``None`` holes of ``tokens``. Only diffusion families support this."""
        raise NotSupported(
            f"{self.family} models cannot infill (they only generate left to right); use a diffusion model"
        )

    def sequence_prefix(self, mode: str) -> int | None:
        """The token a packed sequence (a document, a wrap block, a sliding stream; ``mode`` is the packing mode)
        starts with when its first token is scored ``prefixed``, or None for none. Default: the tokenizer's rule
        (:func:`tokenizer_prefix`); an adapter that scores an empty context against a token of its own (AR:
        ``prefix_token_id``) returns that token, so both are scored after the same one."""
        return tokenizer_prefix(self.tokenizer, mode)

    def first_non_finite_weight(self) -> str | None:
        """The name of the first floating-point parameter or buffer holding NaN/inf among this adapter's
        ``torch.nn.Module`` attributes (``backbone.layers.0.w``), or ``None``. One ``isfinite`` pass over the
        weights, memory-bound: :func:`dlmbench.plugins.load_model` runs it on every load, so a broken checkpoint
        is named before any forward pass."""
        import torch

        seen: set[int] = set()
        for attr, value in vars(self).items():
            if not isinstance(value, torch.nn.Module) or id(value) in seen:
                continue
            seen.add(id(value))
            for name, t in [*value.named_parameters(), *value.named_buffers()]:
                if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
                    return f"{attr}.{name}"
        return None

    def supports(self, capability: str) -> bool:
        """Whether this model offers ``capability`` (one of :data:`dlmbench.plugins.CAPABILITIES`; an unknown
        name is an error). Tasks ask this, never the family name."""
        from dlmbench.plugins import CAPABILITIES, family_names, family

        if capability not in CAPABILITIES:
            from dlmbench.errors import UnknownName

            raise UnknownName("capability", capability, sorted(CAPABILITIES))
        caps = self.capabilities
        if caps is None:
            caps = family(self.family).capabilities if self.family in family_names() else frozenset()
        return capability in caps

    def describe(self) -> dict[str, Any]:
        """Provenance of this adapter for result rows (family, checkpoint, dtype, settings)."""
        return {"family": self.family, "bound": self.bound, **settings_dict(self)}


def settings_dict(lm: Any) -> dict[str, Any]:
    """``lm.settings`` as a plain dict: a family's typed settings (:mod:`dlmbench.specs.settings`) dumped with
    every default filled in, a plain mapping (a toy family's) copied, nothing as ``{}``."""
    st = getattr(lm, "settings", None)
    if st is None:
        return {}
    return st.model_dump() if hasattr(st, "model_dump") else dict(st)


def load_settings(cls: type[Any], spec: Any, batch_size: int | None = None) -> Any:
    """A loader's settings: the card's ``settings:`` (``spec.settings``, ``--set`` overrides merged in) and the
    command line's ``batch_size`` validated by the family's typed settings ``cls``; a bad or unknown one is a
    :class:`~dlmbench.errors.BadSetting` line naming the model, raised before any weights load."""
    from dlmbench.specs.settings import validate_settings

    given = dict(spec.settings)
    if batch_size:
        given["batch_size"] = batch_size
    return validate_settings(cls, given, f"model {spec.name}")
