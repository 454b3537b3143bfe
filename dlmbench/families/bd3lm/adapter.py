"""BD3-LM (Arriola et al., ICLR 2025; kuleshov-group/bd3lms) through the shared interface.

- Network: :class:`~dlmbench.families.bd3lm.backbone.BD3LMNet` from the published HF folder (no remote code).
  Denoiser: the raw logits with the mask column at ``-inf`` and a log-softmax (the SUBS parameterization at
  masked positions, ``diffusion.py:_subs_parameterization``; carry-over is not materialised, nothing reads it).
  The published checkpoints are not time-conditioned; for one that is, ``sigma`` is clipped to
  ``sigma_max = -log(1e-3)`` as the reference's ``_sigma_from_p``.
- ``conditional_nll`` / ``nll``: the block NELBO (:func:`~dlmbench.families.bd3lm.estimator.block_nelbo_mc`) over
  the continuation, the context clean, block grid from the row's first position, ``mc_samples`` draws per
  request, labelled ``upper``. At block size 1 the exact chain rule (:func:`~.estimator.block_ar_nll`), labelled
  ``exact`` with stderr 0. The reference's ``ignore_bos`` (BOS never masked nor counted) is the task's business:
  put BOS in the context.
- ``greedy_match``: each block decoded by most-confident unmasking (or one-shot argmax) given the clean past.
- ``sample``: block-wise first-hitting or cached ancestral (:func:`~.samplers.block_semi_ar`), nucleus
  ``top_p``, float64 draws, a sliding context of ``max_length``, optional KV cache (``kv_cache``; networks that are
  not time-conditioned); no ``infill`` (a block never sees the tokens after it).
- ``block_size`` (setting) reads the network at another block size than it was trained with (recorded).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from dlmbench.diffusion.adapter import DiffusionLM, sample_seeds
from dlmbench.diffusion.schedules import LogLinearNoise
from dlmbench.errors import BadSpec
from dlmbench.families.bd3lm.settings import BD3LMSettings
from dlmbench.interface import GreedyResult, NLLResult, SampleResult, ScoreRequest, load_settings, require_finite
from dlmbench.specs import ModelSpec

SIGMA_MAX = -math.log(1e-3)  # the reference's noise.sigma_max (log-linear, eps 1e-3)


class BD3LMModel(DiffusionLM):
    family = "bd3lm"
    settings_type = BD3LMSettings
    settings: BD3LMSettings

    def __init__(self, net, config, provenance: dict[str, Any], tokenizer, *, spec: ModelSpec, device: torch.device,
                 settings: BD3LMSettings):
        self.backbone = net
        self.config = config
        self.provenance = dict(provenance)
        self.tokenizer = tokenizer
        self.spec = spec
        self.device = device
        self.settings = settings
        self.mask_id = int(config.mask_index)
        self.max_length = int(spec.max_length or config.length)
        self.block_size = int(settings.block_size or provenance.get("trained_block_size") or config.block_size)
        self.bound = "exact" if self.block_size == 1 else "upper"
        self.schedule = LogLinearNoise(settings.noise_eps)
        self._wdtype = next(net.parameters()).dtype

    # -- the network -----------------------------------------------------------------------------------
    def _sigma(self, sigma: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        if sigma is None or not self.config.time_conditioning:
            return None
        return torch.as_tensor(sigma, dtype=torch.float64, device=self.device).clamp(max=SIGMA_MAX).expand(batch)

    def _log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
        require_finite(logits, f"bd3lm {self.spec.name}: network output")
        logits = logits.clone()
        logits[..., self.mask_id] = float("-inf")
        return torch.log_softmax(logits, dim=-1)

    def _two_stream(self, x_t, x0, sigma, positions=None):
        return self._log_probs(self.backbone.forward_two_stream(x_t, x0, self._sigma(sigma, x_t.shape[0]),
                                                                block_size=self.block_size, positions=positions))

    def _block_denoiser(self):
        from dlmbench.families.bd3lm.estimator import BlockPositional

        return BlockPositional(lambda x_t, x0, s: self._two_stream(x_t, x0, s),
                               lambda x_t, x0, s, pos: self._two_stream(x_t, x0, s, pos))

    def _causal_denoiser(self, x: torch.Tensor, sigma: torch.Tensor | None) -> torch.Tensor:
        return self._log_probs(self.backbone.forward_block_causal(x, self._sigma(sigma, x.shape[0]),
                                                                  block_size=self.block_size))

    def _argmax_denoiser(self, x: torch.Tensor, sigma: torch.Tensor | None) -> torch.Tensor:
        lp = self._causal_denoiser(x, sigma)
        return torch.full_like(lp, float("-inf")).scatter_(-1, lp.argmax(dim=-1, keepdim=True), 0.0)

    def _prefix_denoiser(self, argmax: bool):
        """For the sampler's KV cache: ``prefix [B, P] -> denoiser`` over views that start with one of those
        prefixes. A view row finds its cache by its prefix's tokens (the cache is a function of them alone, so
        any equal row serves); the prefix positions get uniform log-probs, which the samplers never read."""

        def factory(prefix: torch.Tensor):
            cache = self.backbone.prefix_cache(prefix, block_size=self.block_size)
            P = prefix.shape[1]

            def den(x: torch.Tensor, sigma: torch.Tensor | None) -> torch.Tensor:
                idx = (x[:, None, :P] == prefix[None]).all(-1).to(torch.int8).argmax(dim=1)
                lp = self._log_probs(self.backbone.forward_cached(x[:, P:], [(k[idx], v[idx]) for k, v in cache]))
                if argmax:
                    lp = torch.full_like(lp, float("-inf")).scatter_(-1, lp.argmax(dim=-1, keepdim=True), 0.0)
                return torch.cat([torch.zeros(x.shape[0], P, lp.shape[-1], dtype=lp.dtype, device=lp.device), lp], dim=1)

            return den

        return factory

    # -- likelihood ------------------------------------------------------------------------------------
    def _bound_rows(self, x0, score_mask, seeds):
        from dlmbench.families.bd3lm.estimator import block_ar_nll, block_nelbo_mc

        st = self.settings
        with torch.inference_mode():
            if self.block_size == 1:
                nll = block_ar_nll(self._block_denoiser(), x0, score_mask, mask_id=self.mask_id)
                return (nll.cpu().numpy(), np.zeros(x0.shape[0]),
                        {"estimator": "bd3lm_chain_rule", "block_size": 1, "mc_samples": 1})
            est = block_nelbo_mc(self._block_denoiser(), x0, score_mask, seeds, block_size=self.block_size,
                                 mask_id=self.mask_id, schedule=self.schedule, num_samples=st.mc_samples,
                                 time_sampling=st.time_sampling, sampling_eps=st.sampling_eps, batch_size=st.batch_size)
        return est.mean, est.stderr, dict(est.settings)

    def conditional_nll(self, requests: Sequence[ScoreRequest]) -> NLLResult:
        res = super().conditional_nll(requests)
        if self.block_size != 1:
            return res
        return NLLResult(nll=res.nll, n_tokens=res.n_tokens, stderr=np.zeros_like(res.stderr), bound="exact",
                         mc_samples=1, settings=res.settings)

    # -- greedy ----------------------------------------------------------------------------------------
    def greedy_match(self, requests: Sequence[ScoreRequest]) -> GreedyResult:
        from dlmbench.families.bd3lm.estimator import block_greedy_match

        method = self.settings.greedy
        max_len = self.max_length
        out = np.zeros(len(requests), dtype=bool)
        groups: dict[int, list[int]] = {}
        rows = {}
        for i, req in enumerate(requests):
            ctx, cont = req.context, req.continuation
            if len(ctx) + len(cont) > max_len:
                ctx = ctx[len(ctx) - max(0, max_len - len(cont)):] if len(cont) < max_len else ()
                cont = cont[:max_len]
            rows[i] = (ctx, cont)
            groups.setdefault(len(ctx) + len(cont), []).append(i)
        denoiser = lambda x_t, x0, s: self._two_stream(x_t, x0, None)  # noqa: E731
        for _length, idx in sorted(groups.items()):
            for s in range(0, len(idx), self.settings.batch_size):
                chunk = idx[s: s + self.settings.batch_size]
                x0 = torch.tensor([list(rows[i][0]) + list(rows[i][1]) for i in chunk], dtype=torch.long, device=self.device)
                tmask = torch.zeros_like(x0, dtype=torch.bool)
                for r, i in enumerate(chunk):
                    tmask[r, len(rows[i][0]):] = True
                with torch.inference_mode():
                    out[chunk] = block_greedy_match(denoiser, x0, tmask, mask_id=self.mask_id, method=method).cpu().numpy()
        return GreedyResult(matches=out, method=f"bd3lm_block_{method}")

    # -- sampling --------------------------------------------------------------------------------------
    def sample(self, n: int, length: int, *, prefix=None, steps=None, seed: int = 0, **settings: Any) -> SampleResult:
        from dlmbench.diffusion.sampling import masked_canvas
        from dlmbench.families.bd3lm.samplers import block_semi_ar

        given = dict(settings)
        if steps is not None:
            given["steps"] = steps
        st = self._with(given, "sampling")
        if int(n) < 1 or int(length) < 1:
            raise BadSpec(f"bd3lm: sample needs n >= 1 and length >= 1 (got n={n}, length={length})")
        prompt = [int(t) for t in (prefix or [])]
        if self.mask_id in prompt:
            raise BadSpec(f"bd3lm: the prefix contains the mask token id {self.mask_id}")
        total = len(prompt) + int(length)
        seeds = sample_seeds(seed, n)
        temp, top_p = st.temperature, st.top_p
        denoiser = self._causal_denoiser if temp > 0 else self._argmax_denoiser
        canvas = masked_canvas(int(n), total, self.mask_id, prefix=prompt or None, device=self.device)
        window = max(self.block_size, self.max_length // self.block_size * self.block_size)
        use_cache = bool(st.kv_cache) and not self.config.time_conditioning
        toks, row_nfe, nfe = [], [], 0
        with torch.inference_mode():
            for s in range(0, int(n), st.batch_size):
                out = block_semi_ar(denoiser, canvas[s: s + st.batch_size], block_size=self.block_size,
                                    mask_id=self.mask_id, seeds=seeds[s: s + st.batch_size], schedule=self.schedule,
                                    sampler=st.sampler, steps=st.steps, eps=st.sampler_eps, window=window,
                                    temperature=temp if temp > 0 else 1.0,
                                    top_p=None if top_p is None or top_p >= 1 else top_p, precision=st.precision,
                                    prefix_denoiser=self._prefix_denoiser(temp <= 0) if use_cache else None)
                toks.append(out.tokens)
                row_nfe.append(out.row_nfe)
                nfe += int(out.nfe)
        gen = torch.cat(toks)[:, len(prompt):].tolist()
        record = {"sampler": st.sampler, "block_size": self.block_size, "temperature": st.temperature, "top_p": st.top_p,
                  "precision": st.precision, "kv_cache": use_cache, "window": window,
                  "nfe_per_sample": float(torch.cat(row_nfe).double().mean())}
        if st.sampler != "first_hitting":
            record.update(steps_per_block=st.steps, sampler_eps=st.sampler_eps)
        return SampleResult(gen, [self.tokenizer.decode(g) for g in gen], nfe, record)

    # -- provenance ------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        prov = self.provenance
        return {
            "family": self.family,
            "bound": self.bound,
            "checkpoint": prov.get("checkpoint", self.spec.checkpoint.describe()),
            "format": prov.get("format"),
            "revision": prov.get("revision"),
            "sha256": prov.get("sha256"),
            "trained_block_size": prov.get("trained_block_size"),
            "block_size_used": self.block_size,
            "tokenizer": self.tokenizer.name,
            "mask_id": self.mask_id,
            "time_conditioning": bool(self.config.time_conditioning),
            "schedule": repr(self.schedule),
            "dtype": str(self._wdtype).replace("torch.", ""),
            "n_params": int(sum(p.numel() for p in self.backbone.parameters())),
            **self.settings.model_dump(),
        }


def load_bd3lm(spec: ModelSpec, *, device: str = "cpu", batch_size: int | None = None) -> BD3LMModel:
    """Load a BD3-LM checkpoint (hub id ``kuleshov-group/bd3lm-owt-block_size{4,8,16}`` or a local folder in that
    format) and its tokenizer (the card's, one saved beside the weights, else GPT-2), with the card's settings."""
    from dlmbench.families.bd3lm.backbone import load_bd3lm_backbone
    from dlmbench.nets.dit_lm import load_dit_tokenizer, weights_dtype

    settings = load_settings(BD3LMSettings, spec, batch_size)
    dev = torch.device(device)
    dtype, autocast = weights_dtype(spec.dtype, dev)
    net, config, provenance = load_bd3lm_backbone(spec.checkpoint, dev, dtype)
    net.autocast_bf16 = autocast
    tokenizer = load_dit_tokenizer(spec, provenance, config)
    return BD3LMModel(net, config, provenance, tokenizer, spec=spec, device=dev, settings=settings)


__all__ = ["BD3LMModel", "load_bd3lm"]
