"""MDLM (Sahoo et al., 2024; ``kuleshov-group/mdlm``): masked diffusion with the SUBS parameterization,
through the shared interface.

- Denoiser: the DiT's raw logits with the mask column at ``-inf`` and a log-softmax, i.e.
  ``log p_theta(x0_i | x_t)`` of MDLM's ``_subs_parameterization`` at every masked position (the carry-over of
  unmasked positions is not materialised: the estimators, greedy checks and samplers read masked positions
  only). MDLM-OWT is not time-conditioned, so ``sigma`` is ignored by the network.
- ``conditional_nll`` / ``nll``: the continuous-time NELBO (log-linear schedule, ``t ~ U[sampling_eps, 1]``,
  masked-token weight ``1/t``; :func:`dlmbench.diffusion.mdlm_nelbo_mc`) over the continuation, context
  clean, ``mc_samples`` draws per request whose times are coupled by ``time_sampling`` (MDLM's
  ``antithetic`` stratification, across the draws of one request); stderr by collapsed strata (pairs of
  adjacent strata, :func:`dlmbench.diffusion.montecarlo.mc_stderr`). Labelled ``upper``. For a time-agnostic
  network (MDLM-OWT, the zoo) ``t_estimator: auto`` integrates ``t`` out exactly
  (:func:`dlmbench.diffusion.masked.mdlm_nelbo_integrated_mc`: draw the number ``n`` of masked tokens, stratified
  over the draws, weight ``T c_n``): the same NELBO, less variance per forward pass; ``t_estimator: sampled`` is
  MDLM's own per-draw ``t``.
  MDLM's own evaluation draws one ``t`` per 1024-token block (stratified across the batch);
  ``t_estimator: sampled`` with ``mc_samples: 1`` is that estimator per request. The cards use more draws per request for small sets.
- ``greedy_match``: iterative most-confident unmasking or one-shot argmax (``greedy`` setting).
- ``sample`` / ``infill``: ``ddpm_cache`` (MDLM's default predictor: ancestral steps that reuse
  ``p_theta`` while ``x_t`` is unchanged, exact because the model is time-agnostic; a time-conditioned MDLM
  checkpoint falls back to ``ddpm`` as the reference's ``_ddpm_caching_update`` does), ``ddpm`` (=
  ``ancestral``), ``first_hitting`` (Zheng et al. 2024: one token per network call); times
  ``linspace(1, sampler_eps, steps + 1)``, leftover masks filled by argmax (``noise_removal``), nucleus
  ``top_p`` on the clean-token distribution (``temperature: 0``: the argmax token at each unmasking),
  categorical draws in ``precision`` (float64 by default; float32 reproduces the reference's truncated
  Gumbel draws); ``topk``: the easy-first top-k decoding of diffusion-vs-ar (Ye et al. 2024; the reasoning
  tasks' reference decoding: ``steps`` passes, each keeping the most confident argmax predictions and
  re-masking the rest on a ``topk_strategy`` schedule, default ``stochastic0.5-linear``); ``confidence``: LLaDA's
  low-confidence remasking over the canvas, with Fast-dLLM's parallel decoding when ``threshold`` / ``factor`` is
  set (a variable number of network calls per row, recorded as ``nfe_per_sample``). No key/value cache: the DiT
  is bidirectional like LLaDA, but the zoo's canvases are 64-128 tokens where a full pass is cheap, and
  ``ddpm_cache`` already skips calls on unchanged canvases exactly.
"""

from __future__ import annotations

from typing import Any

import torch

from dlmbench.errors import BadSpec, CheckpointError
from dlmbench.families.mdlm.settings import SAMPLERS, MDLMSettings
from dlmbench.specs import ModelSpec
from dlmbench.nets.dit_lm import DiTLM, load_dit_lm



class MDLMModel(DiTLM):
    family = "mdlm"
    samplers = SAMPLERS
    settings_type = MDLMSettings
    settings: MDLMSettings

    # -- denoiser ----------------------------------------------------------------------------------
    def _denoiser(self, x_t: torch.Tensor, sigma: torch.Tensor | None, positions: torch.Tensor | None = None) -> torch.Tensor:
        """``log p_theta(x0 | x_t)`` ``[B, L, V]``: SUBS at masked positions (mask column ``-inf``); with
        ``positions`` only the rows ``[N, V]`` there."""
        logits = self._logits(x_t, self._sigma(x_t, sigma), positions)
        logits[..., self.mask_id] = float("-inf")
        return torch.log_softmax(logits, dim=-1)

    def _bound_denoiser(self):
        from dlmbench.diffusion.masked import PositionalDenoiser

        return PositionalDenoiser(self._denoiser, self._denoiser)

    def _argmax_denoiser(self, x_t: torch.Tensor, sigma: torch.Tensor | None) -> torch.Tensor:
        """Temperature 0: all the clean-token mass on the argmax (log-probs 0 there, ``-inf`` elsewhere)."""
        lp = self._denoiser(x_t, sigma)
        return torch.full_like(lp, float("-inf")).scatter_(-1, lp.argmax(dim=-1, keepdim=True), 0.0)

    def _clean_denoiser(self):
        return self._denoiser

    # -- likelihood ---------------------------------------------------------------------------------
    def _t_estimator(self) -> str:
        """``sampled`` or ``integrated`` (``auto``: integrated iff the network is time-agnostic)."""
        mode = self.settings.t_estimator
        timed = bool(self.config.time_conditioning)
        if mode == "auto":
            return "sampled" if timed else "integrated"
        if mode == "integrated" and timed:
            raise BadSpec("mdlm: t_estimator 'integrated' needs a time-agnostic network and this checkpoint is "
                          "time-conditioned; use t_estimator: sampled (or auto)")
        return mode

    def _bound_rows(self, x0, score_mask, seeds):
        from dlmbench.diffusion.masked import mdlm_nelbo_integrated_mc, mdlm_nelbo_mc

        st = self.settings
        fn = mdlm_nelbo_integrated_mc if self._t_estimator() == "integrated" else mdlm_nelbo_mc
        with torch.inference_mode():
            est = fn(self._bound_denoiser(), x0, score_mask, seeds, mask_id=self.mask_id, schedule=self.schedule,
                     num_samples=st.mc_samples, time_sampling=st.time_sampling,
                     sampling_eps=st.sampling_eps, batch_size=st.batch_size)
        return est.mean, est.stderr, dict(est.settings)

    # -- sampling -----------------------------------------------------------------------------------
    def _cache_used(self, st: MDLMSettings) -> bool:
        return st.sampler == "ddpm_cache" and not self.config.time_conditioning

    def _sample_canvas(self, canvas, seeds, st):
        from dlmbench.diffusion.masked_samplers import first_hitting, mdlm_ancestral
        from dlmbench.diffusion.remasking import topk_decoding

        top_p, temp = st.top_p, st.temperature
        denoiser = self._denoiser if temp > 0 else self._argmax_denoiser
        common = dict(mask_id=self.mask_id, seeds=seeds, schedule=self.schedule, temperature=temp if temp > 0 else 1.0,
                      top_p=None if top_p is None or top_p >= 1 else top_p, precision=st.precision)
        if st.sampler == "first_hitting":
            return first_hitting(denoiser, canvas, **common)
        if st.sampler == "confidence":
            return self._confidence_canvas(canvas, seeds, st)
        if st.sampler == "topk":
            return topk_decoding(lambda x: self._denoiser(x, None), canvas, mask_id=self.mask_id, steps=st.steps,
                                 strategy=st.topk_strategy, seeds=seeds)
        return mdlm_ancestral(denoiser, canvas, steps=st.steps, eps=st.sampler_eps,
                              cache=self._cache_used(st), final="argmax" if st.noise_removal else "sample", **common)

    def _sampler_record(self, st: MDLMSettings) -> dict[str, Any]:
        if st.sampler == "confidence":
            return self._confidence_record(st)
        if st.sampler == "topk":  # argmax predictions; the strategy's noise only orders the re-masking
            return {"sampler": "topk", "steps": st.steps, "topk_strategy": st.topk_strategy}
        rec = {"sampler": st.sampler, "temperature": st.temperature, "top_p": st.top_p, "precision": st.precision}
        if st.sampler != "first_hitting":  # first-hitting takes one step per masked token
            rec.update(steps=st.steps, sampler_eps=st.sampler_eps, noise_removal=st.noise_removal, cache=self._cache_used(st))
        return rec


def _check_mdlm(config, provenance: dict[str, Any], settings: MDLMSettings):
    param = provenance.get("parameterization")
    if param not in (None, "subs"):
        hint = "load it with family sedd" if param == "sedd" else "only the SUBS parameterization is supported"
        raise CheckpointError(f"{provenance.get('path')}: trained with parameterization {param!r}, not subs; {hint}")
    return None


def load_mdlm(spec: ModelSpec, *, device: str = "cpu", batch_size: int | None = None) -> MDLMModel:
    """Load an MDLM checkpoint (hub id ``kuleshov-group/mdlm-owt``, a local folder in that format, or an
    MDLM-repo Lightning ``.ckpt``) and its tokenizer, with the card's settings."""
    from dlmbench.nets.dit_checkpoints import load_mdlm_backbone

    return load_dit_lm(MDLMModel, spec, load_mdlm_backbone, device=device, batch_size=batch_size,
                       check=_check_mdlm)  # type: ignore[return-value]


__all__ = ["MDLMModel", "SAMPLERS", "load_mdlm"]
