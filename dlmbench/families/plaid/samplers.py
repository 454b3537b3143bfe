"""Plaid's sampler (``igul222/plaid sample.py: generate_samples``): VDM ancestral sampling (VDM App. A.4 eq. 33)
with self-conditioning, score temperature and optional token guidance, float64 updates.

For ``i = 0 … T−1`` with ``t = linspace(1, 0, T)[i]`` and ``s = t − 1/T`` (the reference's grid, kept as is)::

    (logits, x̂) = network(z, γ_t, x_sc);   x_sc ← x̂                      (self-conditioning on the previous x̂)
    ε̂ = (z − α_t x̂) / σ_t / τ;   x̂ = (z − σ_t ε̂) / α_t                   (score temperature τ, default 0.9)
    x̂ += σ_t² / α_t · ∇_z Σ_g w_g log p(x_g = token_g | z)                (token guidance, if any)
    if t > 0:  c = −expm1(γ_s − γ_t);   z ← (1 − c) (α_s/α_t) z + c α_s x̂ + sqrt(c (1 − α_s²)) ε

and finally ``argmax`` of the logits of one more pass at the last ``γ_t`` (= ``γ_0``). ``z_1 ~ N(0, s_0²)``
with ``initial_noise_scale`` ``s_0 = 1``. Every sample ``j`` draws its noise from its own generator
``request_seed(seed, "plaid-sample", j)``, so a sample does not depend on ``n`` or on batching.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dlmbench.families.plaid.estimator import PlaidNetwork, alpha_sigma
from dlmbench.interface import require_finite
from dlmbench.seeding import generator, request_seed


@dataclass(frozen=True)
class Guidance:
    """Token guidance term ``w · log p(x_position = token | z)`` (``sample.py`` ``guidance_tokens``)."""

    token: int
    weight: float
    position: int


def _randn(gens: Sequence[torch.Generator], shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    return torch.stack([torch.randn(shape, dtype=torch.float64, generator=g) for g in gens]).to(device)


def _guidance_grad(net: PlaidNetwork, z: torch.Tensor, gamma: torch.Tensor, x_sc: torch.Tensor, guidance: Sequence[Guidance]):
    """``(logits, x̂, ∇_z Σ w log p)`` with the network's gradient w.r.t. its float32 input (as the reference)."""
    with torch.enable_grad():
        z32 = z.to(torch.float32).detach().requires_grad_(True)
        logits, x_hat = net.denoise(z32, gamma, x_sc)
        logp = F.log_softmax(logits.float(), dim=-1)
        total = sum(g.weight * logp[:, g.position, g.token].sum() for g in guidance)
        (grad,) = torch.autograd.grad(total, [z32])
    return logits.detach(), x_hat.detach(), grad.double()


def vdm_ancestral_sample(
    net: PlaidNetwork,
    n: int,
    length: int,
    *,
    steps: int,
    seed: int,
    score_temp: float = 0.9,
    initial_noise_scale: float = 1.0,
    guidance: Sequence[Guidance] = (),
    ddim: bool = False,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, int]:
    """Draw ``n`` token sequences of ``length``; returns ``(tokens [n, length], number of network passes)``.

    ``ddim=True`` is the reference's deterministic variant (``z ← α_s x̂ + σ_s ε̂``).
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if score_temp <= 0:
        raise ValueError("score_temp must be > 0")
    dev = torch.device(device)
    gens = [generator(request_seed(int(seed), "plaid-sample", j)) for j in range(n)]
    embed_dim = int(net.embeddings().shape[1])
    z = _randn(gens, (length, embed_dim), dev) * initial_noise_scale
    x_sc = torch.zeros((n, length, embed_dim), dtype=torch.float32, device=dev)
    nfe = 0
    gamma_t = None
    for t in torch.linspace(1.0, 0.0, steps, dtype=torch.float64):
        t = t[None].to(dev)
        s = t - 1.0 / steps
        gamma_t, gamma_s = net.gamma(t), net.gamma(s)
        a_t, s_t = alpha_sigma(gamma_t)
        a_s, _ = alpha_sigma(gamma_s)
        g32 = gamma_t.float().double().expand(n)  # the reference passes gamma_t.float()
        if guidance:
            _, x_hat, grad = _guidance_grad(net, z, g32, x_sc, guidance)
        else:
            _, x_hat = net.denoise(z.to(torch.float32), g32, x_sc)
        nfe += 1
        x_sc = x_hat.detach().float()
        x_hat = x_hat.double()
        eps_hat = (z - a_t * x_hat) / s_t / score_temp
        x_hat = (z - s_t * eps_hat) / a_t
        if guidance:
            x_hat = x_hat + grad * s_t**2 / a_t
            eps_hat = (z - a_t * x_hat) / s_t
        if float(t) > 0:
            if ddim:
                _, s_s = alpha_sigma(gamma_s)
                z = a_s * x_hat + s_s * eps_hat
            else:
                c = -torch.expm1(gamma_s - gamma_t)
                z = (1 - c) * (a_s / a_t) * z + c * a_s * x_hat + (c * (1 - a_s**2)).sqrt() * _randn(gens, (length, embed_dim), dev)
    logits, _ = net.denoise(z.to(torch.float32), gamma_t.float().double().expand(n), x_sc)
    nfe += 1
    return require_finite(logits, "plaid: network output").argmax(dim=-1), nfe


def replacement_ddim_decode(net: PlaidNetwork, x0: torch.Tensor, known: torch.Tensor, *, steps: int) -> torch.Tensor:
    """Deterministic decode used as Plaid's greedy check (``[B, L]`` argmax tokens).

    The reference's DDIM update (``ddim_sampler``: ``z ← α_s x̂ + σ_s ε̂``, score temperature 1, self-conditioning,
    same time grid) from ``z_1 = 0`` at the unknown positions; at every step the latents of the ``known``
    positions are replaced by their noise-free mean ``α_t E[x0]`` (replacement conditioning); the final pass at
    the last ``γ_t`` (= ``γ_0``) gives the argmax. No randomness.
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    b, length = x0.shape
    x_embed = net.embeddings()[x0].double()
    z = torch.zeros_like(x_embed)
    x_sc = torch.zeros(x_embed.shape, dtype=torch.float32, device=x0.device)
    kn = known[..., None]
    gamma_t = None
    for t in torch.linspace(1.0, 0.0, steps, dtype=torch.float64):
        t = t[None].to(x0.device)
        gamma_t, gamma_s = net.gamma(t), net.gamma(t - 1.0 / steps)
        a_t, s_t = alpha_sigma(gamma_t)
        z = torch.where(kn, a_t * x_embed, z)
        _, x_hat = net.denoise(z.to(torch.float32), gamma_t.float().double().expand(b), x_sc)
        x_sc = x_hat.float()
        x_hat = x_hat.double()
        eps_hat = (z - a_t * x_hat) / s_t
        if float(t) > 0:
            a_s, s_s = alpha_sigma(gamma_s)
            z = a_s * x_hat + s_s * eps_hat
    a_t, _ = alpha_sigma(gamma_t)
    z = torch.where(kn, a_t * x_embed, z)
    logits, _ = net.denoise(z.to(torch.float32), gamma_t.float().double().expand(b), x_sc)
    return require_finite(logits, "plaid: network output").argmax(dim=-1)


def prefix_guidance(prefix: Sequence[int], weight: float = 2.0) -> list[Guidance]:
    """Prefix completion as in ``sample.py``: guide every prefix position towards its token (weight 2.0)."""
    return [Guidance(int(tok), float(weight), pos) for pos, tok in enumerate(prefix)]


__all__ = ["Guidance", "prefix_guidance", "replacement_ddim_decode", "vdm_ancestral_sample"]
