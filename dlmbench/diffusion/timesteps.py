"""Diffusion-time sampling for Monte Carlo likelihood bounds (pure functions, explicit generators).

``t`` is drawn in ``[eps, 1]`` as ``t = (1 - eps) v + eps`` with ``v`` uniform on ``[0, 1)`` (MDLM
``diffusion.py:_sample_t``, SEDD ``losses.py:get_loss_fn``; ``sampling_eps = 1e-3`` in both). The schemes
differ in how the ``n`` values ``v_k`` of one batch (or of the ``K`` draws of one request) are coupled:

``iid``         ``v_k = u_k`` (SEDD's loss).
``antithetic``  ``v_k = (u_k + k) / n`` with one independent ``u_k`` per stratum ``[k/n, (k+1)/n)``:
                MDLM's ``antithetic_sampling`` (``(u/n + arange(n)/n) % 1``). It is really stratified
                sampling; the name is MDLM's. ``stratified`` is an alias.
``systematic``  ``v_k = (u_0 + k / n) mod 1`` with a single shared offset ``u_0`` (the VDM / RADD ``t_DCE``
                sampler): the same grid with spacing ``1/n`` shifted at random.

Every scheme makes the *average over the n draws* an unbiased estimate of ``E_{t ~ U[eps, 1]}``: under
``iid`` and ``systematic`` each ``v_k`` is marginally uniform on ``[0, 1)``; under ``antithetic`` draw ``k``
is uniform on its stratum only, so a single draw is biased and only the mean over all ``n`` is unbiased.
(MDLM applies it across the sequences of a batch, which is fine for a corpus average; the per-request
estimators here stratify across the ``K`` draws of one request instead.) The standard error that goes with each
scheme is :func:`dlmbench.diffusion.montecarlo.mc_stderr`.
"""

from __future__ import annotations

from typing import Literal

import torch

TimeScheme = Literal["iid", "antithetic", "stratified", "systematic"]
TIME_SCHEMES: tuple[str, ...] = ("iid", "antithetic", "stratified", "systematic")


def _check_scheme(scheme: str) -> None:
    if scheme not in TIME_SCHEMES:
        from dlmbench.errors import UnknownName

        raise UnknownName("time-sampling scheme", scheme, TIME_SCHEMES)


def times_from_uniforms(u: torch.Tensor, scheme: TimeScheme = "antithetic", eps: float = 1e-3) -> torch.Tensor:
    """Map uniforms ``u[..., n]`` on ``[0, 1)`` to times in ``[eps, 1]``, coupling the last axis by ``scheme``.

    Draw ``k`` along the last axis uses ``u[..., k]`` (``systematic`` uses only ``u[..., 0]``), so a draw's
    time depends only on its own uniform, its index ``k`` and ``n``.
    """
    _check_scheme(scheme)
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"sampling eps must lie in [0, 1), not {eps}")
    n = u.shape[-1]
    k = torch.arange(n, dtype=u.dtype, device=u.device)
    if scheme == "iid":
        v = u
    elif scheme in ("antithetic", "stratified"):
        v = (u + k) / n
    else:  # systematic
        v = u[..., :1] + k / n
    v = torch.remainder(v, 1.0)
    return (1.0 - eps) * v + eps


def sample_times(
    n: int,
    generator: torch.Generator,
    scheme: TimeScheme = "antithetic",
    eps: float = 1e-3,
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """``n`` diffusion times in ``[eps, 1]`` for one batch, coupled by ``scheme`` (see module docstring).

    ``sample_times(B, g, "antithetic", 1e-3)`` reproduces MDLM's ``_sample_t`` for a batch of ``B``.
    """
    _check_scheme(scheme)
    u = torch.rand(n, generator=generator, dtype=dtype, device=device)
    return times_from_uniforms(u, scheme, eps)


def stratified_mask_counts(
    total: int, n: int, offset: int
) -> torch.Tensor:
    """Systematic numbers of masked tokens ``l_k in {1..total}`` for ``n`` draws sharing one integer offset.

    ``l_k = ((offset + floor(k * total / n)) mod total) + 1`` with ``offset`` uniform on ``{0..total-1}``
    (drawn by the caller): each ``l_k`` is exactly uniform on ``{1..total}`` (an integer shift of a uniform
    offset), so ``(total / l) * sum_{masked} -log p`` stays unbiased for the any-order bound. This is
    :func:`mask_counts_from_uniforms`'s ``systematic`` scheme with an integer offset.

    How it differs from the LLaDA reference (``ML-GSAI/LLaDA`` ``get_log_likelihood.py:forward_process``, the
    same in ``eval_llada.py:_forward_process``): there ``k ~ randint(1, total + 1)`` and
    ``l = round(linspace(k, k + (B - 1) total / B, B))``, then ``((l - 1) mod total) + 1``, with one offset per
    mini-batch of ``B = batch_size`` rows (``mc_num / B`` offsets per request). ``torch.round`` rounds halves to
    even, so where ``j total / B`` ends in ``.5`` the row-``j`` count is ``k + j total / B`` rounded to the even
    neighbour whatever ``k`` is: that row only ever masks an even number of tokens (e.g. ``total = 16``,
    ``B = 32``: every odd row), and over the batch even counts get up to three times the weight of odd ones.
    The reference estimate is then *not* an unbiased estimate of the any-order bound; the floor here has no ties.
    (SMDM's ``evaluate_diff.py``, which LLaDA's evaluation is derived from, draws a continuous ``t`` per row instead
    and masks each target token with probability ``t``: no rounding.)
    """
    if total < 1:
        raise ValueError("need at least one scored token")
    k = torch.arange(n, dtype=torch.int64)
    return ((int(offset) + (k * total) // n) % total) + 1


def mask_counts_from_uniforms(total: int, u: torch.Tensor, scheme: TimeScheme = "stratified") -> torch.Tensor:
    """Numbers of masked tokens ``l_k = floor(v_k * total) + 1 in {1..total}`` (int64, the shape of ``u``) with
    ``v_k`` the coupled uniforms of :func:`times_from_uniforms` (``eps = 0``) along the last axis of ``u``.

    ``iid``: each ``l_k`` uniform on ``{1..total}``. ``antithetic``/``stratified``: ``v_k`` uniform on
    ``[k/n, (k+1)/n)``, so ``l_k`` is uniform over the counts covered by stratum ``k`` (a count shared by two strata
    is split between them in proportion to the overlap); averaged over the ``n`` draws every count has weight
    exactly ``1/total``, so the mean of ``(total / l_k) sum_{masked} -log p`` is unbiased. ``systematic``: one
    shared continuous offset (each ``l_k`` uniform on ``{1..total}``).
    """
    if total < 1:
        raise ValueError("need at least one scored token")
    v = (times_from_uniforms(u, scheme, 0.0) * total).floor().to(torch.int64)
    return v.clamp(0, total - 1) + 1
