"""SEDD (Lou, Meng & Ermon, 2024; ``louaaron/Score-Entropy-Discrete-Diffusion``): score-entropy discrete
diffusion on the absorbing graph, through the shared interface.

- Score: the DiT's raw logits at total noise ``sigma(t)`` (SEDD is time-conditioned) through SEDD's
  ``scale_by_sigma`` head, ``log s = logits - log(e^sigma - 1) - log(V - 1)`` with 0 at the input token
  (:func:`~.backbones.dit.sedd_log_score`); ``exp(log s[i, y])`` estimates ``p_t(x^i = y) / p_t(x)``.
- ``conditional_nll`` / ``nll``: the DWDSE bound (:func:`dlmbench.diffusion.sedd_bound_mc`: absorbing graph,
  ``dsigma(t) * sum_masked [sum_{y != M} s_y - a log s_{x0} + a (log a - 1)]``, ``a = 1/(e^sigma - 1)``),
  ``t ~ U[sampling_eps, 1]`` stratified over the ``mc_samples`` draws of a request (``time_sampling:
  antithetic``, the default; ``iid`` is SEDD's own loss), context clean, prior term excluded as in every
  reference number; stderr by collapsed strata (:func:`dlmbench.diffusion.montecarlo.mc_stderr`). Labelled ``upper``.
- ``greedy_match``: SEDD read as a masked model, ``p(x0_i = y | x_t) ∝ s_y`` over the real tokens (the mask
  column dropped, as SEDD's final denoiser does), with iterative most-confident unmasking or one-shot argmax.
  The network needs a noise level; a greedy query uses the one whose masking probability equals the row's
  fraction of masked positions (SEDD defines no greedy check; recorded as ``greedy_sigma``).
- ``sample`` / ``infill``: SEDD's ``analytic`` (Tweedie tau-leaping, ``run_sample.py``) or ``euler``
  predictor, times ``linspace(1, sampler_eps, steps + 1)``, final denoising step (``denoise``) that *samples*
  the remaining masks; nucleus ``top_p`` / temperature reshape the clean-token proportions without
  changing the unmasking probability (``temperature: 0``: all of it on the argmax token); categorical draws in ``precision`` (float64 by default).
  ``confidence``: SEDD read as a masked model (as the greedy check), LLaDA's low-confidence remasking with Fast-dLLM's
  parallel decoding when ``threshold`` / ``factor`` is set. No key/value cache: SEDD's DiT is time-conditioned
  (adaLN on the noise level), so cached keys/values would also be stale in time.

The noise schedule and graph come from the checkpoint's Hydra config when it has one (``noise.type``:
``loglinear`` or ``geometric``; ``graph.type`` must be ``absorb``, the only graph of the published models).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from dlmbench.errors import CheckpointError, NotSupported
from dlmbench.diffusion.schedules import GeometricNoise, LogLinearNoise, NoiseSchedule
from dlmbench.families.sedd.settings import SAMPLERS, SEDDSettings
from dlmbench.specs import ModelSpec
from dlmbench.nets.dit_lm import DiTLM, load_dit_lm



class SEDDModel(DiTLM):
    family = "sedd"
    samplers = SAMPLERS
    settings_type = SEDDSettings
    settings: SEDDSettings

    @property
    def graph(self):
        from dlmbench.families.sedd.estimator import AbsorbingGraph

        return AbsorbingGraph(self.mask_id)

    # -- score and its masked-model reading -----------------------------------------------------------
    def _score(self, x_t: torch.Tensor, sigma: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """SEDD's log concrete score ``[B, L, V]`` at total noise ``sigma [B]``; with ``positions`` (bool
        ``[B, L]``) only the rows ``[N, V]`` there (each with its sequence's ``sigma``)."""
        from dlmbench.nets.dit import sedd_log_score

        logits = self._logits(x_t, sigma, positions)
        sig = sigma.to(device=logits.device, dtype=torch.float64)
        if positions is None:
            return sedd_log_score(logits, x_t, sig, bool(self.config.scale_by_sigma))
        row_sigma = sig[positions.nonzero(as_tuple=True)[0]]
        return sedd_log_score(logits[:, None], x_t[positions][:, None], row_sigma, bool(self.config.scale_by_sigma))[:, 0]

    def _argmax_score(self, x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Temperature 0: the total score over real tokens (hence the unmasking probability of a step) kept,
        all of it on the argmax token."""
        ls = self._score(x_t, sigma)
        real = ls[..., : self.mask_id]
        total = torch.logsumexp(real, dim=-1, keepdim=True)
        ls[..., : self.mask_id] = torch.full_like(real, float("-inf")).scatter_(-1, real.argmax(dim=-1, keepdim=True), total)
        return ls

    def _masked_log_probs(self, x_t: torch.Tensor, sigma: torch.Tensor | None) -> torch.Tensor:
        """``log p(x0_i = y | x_t) = log_softmax_{y < M}(log s_y)``; the mask column is ``-inf``."""
        ls = self._score(x_t, self._sigma(x_t, sigma))
        ls[..., self.mask_id] = float("-inf")
        return torch.log_softmax(ls, dim=-1)

    def _clean_denoiser(self):
        return self._masked_log_probs

    # -- likelihood ---------------------------------------------------------------------------------
    def _bound_rows(self, x0, score_mask, seeds):
        from dlmbench.diffusion.masked import PositionalDenoiser
        from dlmbench.families.sedd.estimator import sedd_bound_mc

        st = self.settings
        with torch.inference_mode():
            est = sedd_bound_mc(PositionalDenoiser(self._score, self._score), x0, score_mask, seeds, graph=self.graph, schedule=self.schedule,
                                num_samples=st.mc_samples, time_sampling=st.time_sampling,
                                sampling_eps=st.sampling_eps, batch_size=st.batch_size)
        return est.mean, est.stderr, dict(est.settings)

    # -- sampling -----------------------------------------------------------------------------------
    def _sample_canvas(self, canvas, seeds, st):
        from dlmbench.families.sedd.samplers import sedd_sample

        if st.sampler == "confidence":
            return self._confidence_canvas(canvas, seeds, st)
        top_p, temp = st.top_p, st.temperature
        return sedd_sample(self._score if temp > 0 else self._argmax_score, canvas, graph=self.graph, schedule=self.schedule, steps=st.steps,
                           predictor=st.sampler, seeds=seeds, eps=st.sampler_eps,
                           denoise=st.denoise, temperature=temp if temp > 0 else 1.0,
                           top_p=None if top_p is None or top_p >= 1 else top_p,
                           precision=st.precision)

    def _sampler_record(self, st: SEDDSettings) -> dict[str, Any]:
        if st.sampler == "confidence":
            return self._confidence_record(st)
        return {k: getattr(st, k) for k in ("sampler", "steps", "sampler_eps", "denoise", "temperature", "top_p", "precision")}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "graph": "absorb", "greedy_sigma": "masked_fraction"}


def _hydra_config(provenance: dict[str, Any]) -> dict[str, Any] | None:
    """The Hydra config saved as ``config.json`` next to hub-format weights (``None`` for training files)."""
    if provenance.get("format") != "hf-sedd":
        return None
    path = Path(str(provenance.get("path"))).parent / "config.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if "model" not in data and isinstance(data.get("config"), dict):
        data = data["config"]
    return data if isinstance(data, dict) else None


def sedd_schedule(config, provenance: dict[str, Any], noise_eps: float) -> NoiseSchedule:
    """Check the graph (absorbing, mask = last id) and build the noise schedule of the checkpoint."""
    hydra = _hydra_config(provenance) or {}
    graph = str((hydra.get("graph") or {}).get("type", "absorb"))
    if graph != "absorb":
        raise NotSupported(f"{provenance.get('path')}: SEDD graph {graph!r}; the sedd adapter supports the absorbing "
                           f"graph of the published checkpoints only")
    if config.mask_index != config.vocab_size - 1:
        raise CheckpointError(f"{provenance.get('path')}: the absorbing state must be the last of {config.vocab_size} ids")
    noise = hydra.get("noise") or {}
    kind = str(noise.get("type", "loglinear"))
    if kind == "loglinear":
        return LogLinearNoise(noise_eps)
    if kind == "geometric":
        return GeometricNoise(float(noise.get("sigma_min", 1e-4)), float(noise.get("sigma_max", 20.0)))
    raise NotSupported(f"{provenance.get('path')}: SEDD noise type {kind!r} (known: loglinear, geometric)")


def load_sedd(spec: ModelSpec, *, device: str = "cpu", batch_size: int | None = None) -> SEDDModel:
    """Load a SEDD checkpoint (hub id ``louaaron/sedd-small`` / ``-medium``, a local folder in that format, a
    SEDD run's ``checkpoint.pth`` or the MDLM repo's ``sedd.ckpt``) and its tokenizer, with the card's settings."""
    from dlmbench.nets.dit_checkpoints import load_sedd_backbone

    return load_dit_lm(SEDDModel, spec, load_sedd_backbone, device=device, batch_size=batch_size,
                       check=lambda config, prov, settings: sedd_schedule(config, prov, settings.noise_eps))  # type: ignore[return-value]


__all__ = ["SEDDModel", "SAMPLERS", "load_sedd", "sedd_schedule"]
