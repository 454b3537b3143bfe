"""Noise schedules of discrete diffusion: total noise ``sigma(t)`` and its rate ``dsigma(t)``.

A schedule maps diffusion time ``t in [0, 1]`` to the *total noise* ``sigma(t)`` (the integral of the rate
of the forward continuous-time Markov chain) and its derivative ``dsigma(t)``. For the absorbing (masking)
process a token is still clean at time ``t`` with probability ``alpha_t = exp(-sigma(t))`` and masked with
probability ``1 - alpha_t``.

Sources: SEDD ``noise_lib.py`` (``LogLinearNoise``, ``GeometricNoise``) and MDLM ``noise_schedule.py``
(``LogLinearNoise``), which agree on the log-linear schedule.

All methods are pure tensor functions and keep the dtype of ``t`` (pass float64 for exact work).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class NoiseSchedule(Protocol):
    """What the estimators need from a schedule."""

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Total noise ``sigma(t)``."""
        ...

    def dsigma(self, t: torch.Tensor) -> torch.Tensor:
        """Rate of noise ``d sigma / dt``."""
        ...

    def mask_prob(self, t: torch.Tensor) -> torch.Tensor:
        """Absorbing diffusion: probability that a token is masked at time ``t``, ``1 - exp(-sigma(t))``."""
        ...

    def masked_weight(self, t: torch.Tensor) -> torch.Tensor:
        """Continuous-time NELBO weight of a masked token, ``dsigma / (exp(sigma) - 1) = -alpha'_t / (1 - alpha_t)``."""
        ...


def _expm1_stable(sigma: torch.Tensor) -> torch.Tensor:
    """``exp(sigma) - 1``; SEDD/MDLM switch between ``expm1`` and ``exp - 1`` at 0.5, ``expm1`` is exact for both."""
    return torch.expm1(sigma)


@dataclass(frozen=True)
class LogLinearNoise:
    """Log-linear schedule: ``sigma(t) = -log(1 - (1 - eps) t)``, ``dsigma(t) = (1 - eps) / (1 - (1 - eps) t)``.

    The masking probability is linear in time, ``1 - exp(-sigma(t)) = (1 - eps) t``, and the masked-token
    NELBO weight is exactly ``dsigma / expm1(sigma) = 1 / t`` (MDLM ``diffusion.py``; arXiv 2406.07524).
    ``eps = 1e-3`` in MDLM, SEDD and RADD, so that ``sigma(1) = -log(eps)`` is finite; ``eps = 0`` gives the
    ideal schedule that masks everything at ``t = 1``.
    """

    eps: float = 1e-3

    def __post_init__(self) -> None:
        if not 0.0 <= self.eps < 1.0:
            raise ValueError(f"LogLinearNoise.eps must lie in [0, 1), not {self.eps}")

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.log1p(-(1.0 - self.eps) * t)

    def dsigma(self, t: torch.Tensor) -> torch.Tensor:
        return (1.0 - self.eps) / (1.0 - (1.0 - self.eps) * t)

    def __call__(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sigma(t), self.dsigma(t)

    def mask_prob(self, t: torch.Tensor) -> torch.Tensor:
        return (1.0 - self.eps) * t

    def masked_weight(self, t: torch.Tensor) -> torch.Tensor:
        # dsigma / expm1(sigma) = [(1-eps)/(1-(1-eps)t)] / [(1-eps)t/(1-(1-eps)t)] = 1/t, exactly.
        return 1.0 / t


@dataclass(frozen=True)
class GeometricNoise:
    """Geometric schedule (SEDD): ``sigma(t) = sigma_min^(1-t) sigma_max^t``, ``dsigma = sigma(t) log(sigma_max/sigma_min)``.

    SEDD's configs use ``sigma_min = 1e-4``, ``sigma_max = 20`` (with the uniform graph). Note that
    ``sigma(0) = sigma_min > 0``: SEDD treats the data as already carrying that much noise.
    """

    sigma_min: float = 1e-4
    sigma_max: float = 20.0

    def __post_init__(self) -> None:
        if not 0.0 < self.sigma_min < self.sigma_max:
            raise ValueError("GeometricNoise needs 0 < sigma_min < sigma_max")

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min ** (1.0 - t) * self.sigma_max**t

    def dsigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma(t) * math.log(self.sigma_max / self.sigma_min)

    def __call__(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sigma(t), self.dsigma(t)

    def mask_prob(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.expm1(-self.sigma(t))

    def masked_weight(self, t: torch.Tensor) -> torch.Tensor:
        sigma = self.sigma(t)
        return self.dsigma(t) / _expm1_stable(sigma)


def get_noise(name: str, **kwargs: float) -> NoiseSchedule:
    """A schedule by its reference name: ``loglinear`` or ``geometric``."""
    if name in ("loglinear", "log_linear", "log-linear"):
        return LogLinearNoise(**kwargs)
    if name == "geometric":
        return GeometricNoise(**kwargs)
    from dlmbench.errors import UnknownName

    raise UnknownName("noise schedule", name, ["loglinear", "geometric"])
