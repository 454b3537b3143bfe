"""What every diffusion sampler shares: denoiser types, the output record, per-row randomness, the
clean-token distribution (mask column removed, temperature, nucleus) and the sampling canvas.

Denoiser conventions (the same as :mod:`dlmbench.diffusion`):

- ``Denoiser``: ``denoiser(x_t [B, L] int64, sigma [B] float64 or None) -> log p_theta(x0 | x_t) [B, L, V]``
  (MDLM, and SEDD/LLaDA seen as masked models). ``sigma`` is the total noise of the schedule at the
  current time. The caller applies SUBS / carry-over; samplers only ever *read* masked positions and never
  write an unmasked one.
- ``TimeFreeDenoiser``: ``denoiser(x_t [B, L]) -> logits or log-probs [B, L, V]`` (LLaDA, the MDMs of
  diffusion-vs-ar: no time input). Only softmax-invariant quantities are used, so logits are fine.
- ``ScoreFn`` (SEDD, :mod:`dlmbench.families.sedd.estimator`): ``score_fn(x_t [B, L], sigma [B]) -> log concrete score [B, L, dim]``, see
  :mod:`dlmbench.families.sedd.estimator`.

Randomness: a sampler takes either one ``torch.Generator`` for the whole batch, or ``seeds`` (one per
row). With per-row seeds every row draws from its own generator, always the same shapes per step, so a row's
sample depends only on its seed and the model (not on batch size or neighbours). Every categorical draw
goes through :mod:`dlmbench.diffusion.categorical` (float64 by default).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Optional

import torch

from dlmbench.diffusion.categorical import Precision, filter_logits, sample_from_probs
from dlmbench.diffusion.masked import Denoiser
from dlmbench.seeding import generator as make_generator

TimeFreeDenoiser = Callable[[torch.Tensor], torch.Tensor]
"""``denoiser(x_t [B, L] int64) -> logits or log-probs [B, L, V]`` (no time input)."""

__all__ = [
    "Denoiser",
    "TimeFreeDenoiser",
    "SamplerOutput",
    "Rng",
    "make_rng",
    "clean_log_probs",
    "clean_probs",
    "masked_canvas",
    "check_precision",
]


@dataclass(frozen=True)
class SamplerOutput:
    """Generated ids and the number of function evaluations.

    ``nfe`` counts denoiser calls (each call is one batched forward pass; a CFG step counts 2).
    ``row_nfe[b]`` counts the calls row ``b`` took part in (samplers that evaluate subsets of rows, such as
    the cached and first-hitting samplers, differ per row). Unpacks as ``tokens, nfe = out``.
    """

    tokens: torch.Tensor
    nfe: int
    row_nfe: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    def __iter__(self) -> Iterator:
        return iter((self.tokens, self.nfe))


def check_precision(precision: str) -> Precision:
    if precision not in ("float64", "float32"):
        raise ValueError(f"precision must be 'float64' or 'float32', not {precision!r}")
    return precision  # type: ignore[return-value]


class Rng:
    """Uniforms and categorical draws for a batch, from one generator or from one generator per row.

    ``rows`` (a LongTensor of row indices, default all) selects which rows of the batch a draw is for: with
    per-row generators only those rows' generators advance; with one shared generator the draw simply has
    ``len(rows)`` rows.
    """

    def __init__(self, batch: int, generator: torch.Generator | None = None, seeds: Sequence[int] | None = None, device: str | torch.device = "cpu"):
        if (generator is None) == (seeds is None):
            raise ValueError("pass exactly one of `generator` (shared) or `seeds` (one per row)")
        self.batch = batch
        self.shared = generator
        self.per_row: list[torch.Generator] | None = None
        if seeds is not None:
            if len(seeds) != batch:
                raise ValueError(f"got {len(seeds)} seeds for a batch of {batch} rows")
            self.per_row = [make_generator(int(s), device) for s in seeds]

    def _rows(self, rows: torch.Tensor | None) -> list[int]:
        return list(range(self.batch)) if rows is None else [int(r) for r in rows.tolist()]

    def uniform(self, shape: Sequence[int], rows: torch.Tensor | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
        """Float64 uniforms in [0, 1) of shape ``[len(rows), *shape]``."""
        idx = self._rows(rows)
        if self.per_row is None:
            g = self.shared
            assert g is not None
            return torch.rand((len(idx), *shape), dtype=torch.float64, generator=g, device=g.device).to(device)
        if not idx:
            return torch.zeros((0, *shape), dtype=torch.float64, device=device)
        return torch.stack([torch.rand(tuple(shape), dtype=torch.float64, generator=self.per_row[r], device=self.per_row[r].device) for r in idx]).to(device)

    def categorical(self, probs: torch.Tensor, precision: Precision, rows: torch.Tensor | None = None) -> torch.Tensor:
        """One index per row of ``probs [len(rows), ..., V]`` via :func:`dlmbench.diffusion.categorical.sample_from_probs`."""
        idx = self._rows(rows)
        if self.per_row is None:
            assert self.shared is not None
            return sample_from_probs(probs, self.shared, precision)
        if not idx:
            return torch.zeros(probs.shape[:-1], dtype=torch.long, device=probs.device)
        return torch.stack([sample_from_probs(probs[k], self.per_row[r], precision) for k, r in enumerate(idx)])


def make_rng(batch: int, generator: torch.Generator | None = None, seeds: Sequence[int] | None = None, seed: int | None = None, device: str | torch.device = "cpu") -> Rng:
    """An :class:`Rng` from a shared generator, per-row seeds, or one integer ``seed`` (shared generator)."""
    if seed is not None:
        if generator is not None or seeds is not None:
            raise ValueError("pass only one of `generator`, `seeds`, `seed`")
        generator = make_generator(int(seed), device)
    return Rng(batch, generator=generator, seeds=seeds, device=device)


def clean_log_probs(
    log_probs: torch.Tensor,
    mask_id: int | None,
    *,
    temperature: float = 1.0,
    top_p: float | None = None,
    top_k: int | None = None,
    precision: Precision = "float64",
) -> torch.Tensor:
    """Normalized log of the *clean-token* distribution used to draw ``x0``.

    ``log_softmax(filter(l / T))`` with the mask column (if ``mask_id`` lies inside the vocabulary) set to
    ``-inf`` (MDLM SUBS: the model never predicts the mask), then temperature ``T``, top-k and nucleus
    (top-p, Holtzman et al. 2020) via :func:`dlmbench.diffusion.categorical.filter_logits`. Computed in float64
    unless ``precision == "float32"``. ``temperature == 0`` is handled by the callers (argmax).
    """
    dtype = torch.float64 if precision == "float64" else torch.float32
    z = log_probs.to(dtype)
    if mask_id is not None and 0 <= mask_id < z.shape[-1]:
        z = z.clone()
        z[..., mask_id] = float("-inf")
    if temperature not in (0, 1.0):
        z = z / temperature
    z = filter_logits(z, top_k=top_k, top_p=top_p)
    return torch.log_softmax(z, dim=-1)


def clean_probs(log_probs: torch.Tensor, mask_id: int | None, **kw) -> torch.Tensor:
    """``exp`` of :func:`clean_log_probs`."""
    return clean_log_probs(log_probs, mask_id, **kw).exp()


def masked_canvas(
    batch: int,
    length: int,
    mask_id: int,
    *,
    prefix: Sequence[int] | torch.Tensor | None = None,
    fixed: dict[int, int] | None = None,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """``[batch, length]`` int64 all ``mask_id``, with ``prefix`` written at the start and ``fixed``
    (position -> token) anywhere (infilling). Samplers fill exactly the positions still holding ``mask_id``."""
    x = torch.full((batch, length), mask_id, dtype=torch.long, device=device)
    if prefix is not None:
        p = torch.as_tensor(prefix, dtype=torch.long, device=device)
        if p.ndim == 1:
            p = p[None].expand(batch, -1)
        if p.shape[1] > length:
            raise ValueError(f"prefix of {p.shape[1]} tokens does not fit in length {length}")
        x[:, : p.shape[1]] = p
    for pos, tok in (fixed or {}).items():
        x[:, pos] = int(tok)
    return x


def optional_sigma(schedule, t: torch.Tensor) -> Optional[torch.Tensor]:
    """Total noise ``sigma(t)`` in float64 (what :data:`Denoiser` receives)."""
    return schedule.sigma(t.to(torch.float64))
