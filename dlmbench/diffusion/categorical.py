"""Categorical draws and logit filters shared by every sampler (AR and diffusion).

Precision matters: Zheng et al. (2024, arXiv 2409.02908) show that Gumbel-max sampling with float32
noise truncates the tail (float32 uniforms never fall below ~2^-24, so ``-log u`` is capped and rare
tokens are never drawn), which lowers the effective temperature and the token entropy. Draws here are
float64 by default; ``precision="float32"`` reproduces the reference codes' float32 Gumbel sampler
(``gumbel_norm = 1e-10 - log(u + 1e-10)``; ``argmax p / gumbel_norm``, SEDD/MDLM ``_sample_categorical``)
for studying that artefact.
"""

from __future__ import annotations

from typing import Literal

import torch

Precision = Literal["float64", "float32"]


def sample_from_probs(probs: torch.Tensor, generator: torch.Generator, precision: Precision = "float64") -> torch.Tensor:
    """Draw one index per row of ``probs`` (``[..., V]``, rows sum to 1; zeros never drawn).

    Gumbel-max in exponential form: ``argmax_v p_v / E_v`` with ``E_v ~ Exp(1)`` i.i.d. is distributed
    as Categorical(p). In float64 ``E = -log(U)`` with ``U`` a float64 uniform, so the tail is exact to
    ~2^-53; in float32 the reference truncation is reproduced.
    """
    if precision == "float64":
        p = probs.to(torch.float64)
        u = torch.rand(p.shape, dtype=torch.float64, generator=generator, device=p.device)
        # U in [0, 1); -log(1 - U) is Exp(1) and finite because 1 - U > 0.
        e = -torch.log1p(-u)
        return (p / e).argmax(dim=-1)
    if precision == "float32":
        p = probs.to(torch.float32)
        u = torch.rand(p.shape, dtype=torch.float32, generator=generator, device=p.device)
        gumbel_norm = 1e-10 - (u + 1e-10).log()
        return (p / gumbel_norm).argmax(dim=-1)
    raise ValueError(f"precision must be 'float64' or 'float32', not {precision!r}")


def sample_from_logits(
    logits: torch.Tensor,
    generator: torch.Generator,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    precision: Precision = "float64",
) -> torch.Tensor:
    """Temperature, then top-k, then top-p filtering, then one categorical draw per row.

    ``temperature == 0`` means greedy (argmax). Softmax is taken in float64 when ``precision`` is
    float64, so probabilities of rare tokens are not flushed to zero before the draw.
    """
    if temperature < 0:
        raise ValueError("temperature must be >= 0")
    if temperature == 0:
        return logits.argmax(dim=-1)
    work_dtype = torch.float64 if precision == "float64" else torch.float32
    z = logits.to(work_dtype) / temperature
    z = filter_logits(z, top_k=top_k, top_p=top_p)
    probs = torch.softmax(z, dim=-1)
    return sample_from_probs(probs, generator, precision)


def filter_logits(logits: torch.Tensor, *, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set to ``-inf`` every logit outside the top-k set and outside the nucleus (top-p) set.

    Top-k keeps the ``k`` largest logits (ties at the k-th value are kept). Top-p keeps the smallest
    set of most probable tokens whose cumulative probability reaches ``p`` (Holtzman et al., 2020):
    a token is kept iff the probability mass strictly before it in descending order is ``< p``, so the
    most probable token is always kept.
    """
    out = logits
    if top_k is not None and top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(out, top_k, dim=-1).values[..., -1:]
        out = out.masked_fill(out < kth, float("-inf"))
    if top_p is not None and 0 < top_p < 1:
        sorted_logits, order = torch.sort(out, dim=-1, descending=True)
        sorted_probs = torch.softmax(sorted_logits.to(torch.float64), dim=-1)
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        drop_sorted = mass_before >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        out = out.masked_fill(drop, float("-inf"))
    return out
