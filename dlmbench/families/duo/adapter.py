"""DUO (Sahoo et al., ICML 2025; s-sahoo/duo) through the shared interface.

- Network: MDLM's DiT from the published HF folder (:mod:`~dlmbench.families.duo.backbone`; no remote code),
  time-conditioned on ``sigma = -log alpha_t``. Denoiser: ``log_softmax`` of the raw logits over all ``V`` columns
  (``algo.py:DUO_BASE._process_model_output``; parameterization ``mean``: no carry-over, no column removed).
- ``conditional_nll`` / ``nll``: the uniform-state NELBO (:func:`~dlmbench.families.duo.estimator.duo_nelbo_mc`) over
  the continuation, the context clean, ``mc_samples`` draws per request with antithetic ``t``; stderr by collapsed
  strata; labelled ``upper``. As the reference's ``ppl_eval``: ``t ~ U[1e-3, 1]``, no prior term. Every scored
  token carries loss (uniform noise never "masks").
- ``greedy_match``: the continuation replaced by prior noise drawn from the request's seed, one network call at
  ``t = 1``, match iff every target is the argmax (:func:`~.estimator.duo_one_shot_argmax`).
- ``sample``: the ancestral sampler with ``noise_removal`` ancestral / greedy (greedy-tail; with ``steps: 8`` the
  few-step sampler of the distilled model), nucleus ``top_p``, float64 draws, the prefix kept clean; no ``infill``.
  The pad row (no text) is never predicted by ``p_theta`` when sampling (dlmbench's choice, as MDLM never predicts
  its mask; the reference keeps the column, which a trained model gives ~0 mass), so samples hold text ids only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from dlmbench.diffusion.adapter import DiffusionLM, sample_seeds
from dlmbench.errors import BadSpec
from dlmbench.families.duo.estimator import UniformLogLinear
from dlmbench.families.duo.settings import DUOSettings
from dlmbench.interface import GreedyResult, SampleResult, ScoreRequest, load_settings, require_finite
from dlmbench.seeding import generator as make_generator
from dlmbench.seeding import request_seed
from dlmbench.specs import ModelSpec


class DUOModel(DiffusionLM):
    family = "duo"
    settings_type = DUOSettings
    settings: DUOSettings

    def __init__(self, net, config, provenance: dict[str, Any], tokenizer, *, spec: ModelSpec, device: torch.device,
                 settings: DUOSettings):
        self.backbone = net
        self.config = config
        self.provenance = dict(provenance)
        self.tokenizer = tokenizer
        self.spec = spec
        self.device = device
        self.settings = settings
        self.vocab_size = int(config.vocab_size)
        self.mask_id = int(config.mask_index)  # no mask in DUO: the last row is the pad token (the tokenizer's mask_id slot)
        self.pad_id = int(config.mask_index)
        self.max_length = int(spec.max_length or config.length)
        self.schedule = UniformLogLinear(settings.noise_eps)
        self._wdtype = next(net.parameters()).dtype
        hf = getattr(tokenizer, "hf", None)
        if hf is not None:
            from dlmbench.data.vocab import id_span

            self._n_text_ids = int(id_span(hf))
        else:
            self._n_text_ids = int(getattr(tokenizer, "vocab_size", self.vocab_size))

    # -- the network -----------------------------------------------------------------------------------
    def _denoiser(self, x_t: torch.Tensor, sigma: torch.Tensor | None) -> torch.Tensor:
        """``log p_theta(x0 | x_t)`` ``[B, L, V]`` at total noise ``sigma [B]`` (float64; cast to the weights' dtype)."""
        if sigma is None:
            sigma = self.schedule.sigma(torch.ones(x_t.shape[0], dtype=torch.float64))
        dt = self._wdtype if self._wdtype in (torch.float32, torch.float64) else torch.float32
        out = self.backbone(x_t, sigma.to(device=x_t.device, dtype=dt))
        out = out if out.dtype in (torch.float32, torch.float64) else out.float()
        require_finite(out, f"duo {self.spec.name}: network output")
        return torch.log_softmax(out, dim=-1)

    # -- likelihood ------------------------------------------------------------------------------------
    def _bound_rows(self, x0, score_mask, seeds):
        from dlmbench.families.duo.estimator import duo_nelbo_mc

        st = self.settings
        with torch.inference_mode():
            est = duo_nelbo_mc(self._denoiser, x0, score_mask, seeds, vocab_size=self.vocab_size, schedule=self.schedule,
                               num_samples=st.mc_samples, time_sampling=st.time_sampling,
                               sampling_eps=st.sampling_eps, batch_size=st.batch_size)
        return est.mean, est.stderr, dict(est.settings)

    # -- greedy ----------------------------------------------------------------------------------------
    def greedy_match(self, requests: Sequence[ScoreRequest]) -> GreedyResult:
        from dlmbench.families.duo.estimator import duo_one_shot_argmax

        max_len = self.max_length
        out = np.zeros(len(requests), dtype=bool)
        rows: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        by_len: dict[int, list[int]] = defaultdict(list)
        for i, req in enumerate(requests):
            ctx, cont = req.context, req.continuation
            if len(ctx) + len(cont) > max_len:
                ctx = ctx[len(ctx) - max(0, max_len - len(cont)):] if len(cont) < max_len else ()
                cont = cont[:max_len]
            rows[i] = (ctx, cont)
            by_len[len(ctx) + len(cont)].append(i)
        bs = self.settings.batch_size
        for length, idx in sorted(by_len.items()):
            for s in range(0, len(idx), bs):
                chunk = idx[s: s + bs]
                x0 = torch.tensor([list(rows[i][0]) + list(rows[i][1]) for i in chunk], dtype=torch.long, device=self.device)
                tmask = torch.zeros_like(x0, dtype=torch.bool)
                for r, i in enumerate(chunk):
                    tmask[r, len(rows[i][0]):] = True
                noise = torch.stack([
                    torch.randint(0, self.vocab_size, (length,), generator=make_generator(request_seed(requests[i].seed, "duo-greedy")))
                    for i in chunk]).to(self.device)
                sigma = self.schedule.sigma(torch.ones(len(chunk), dtype=torch.float64))
                with torch.inference_mode():
                    out[chunk] = duo_one_shot_argmax(self._denoiser, x0, tmask, noise, sigma=sigma).cpu().numpy()
        return GreedyResult(matches=out, method="duo_one_shot_argmax_from_prior_noise")

    # -- sampling --------------------------------------------------------------------------------------
    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode([int(t) for t in ids if 0 <= int(t) < self._n_text_ids])  # the pad row has no text

    def _window(self, x: torch.Tensor, fixed: torch.Tensor, seeds: Sequence[int], st: DUOSettings) -> tuple[torch.Tensor, int]:
        """Sample the free positions of one window ``x [n, <= max_length]`` in chunks of ``batch_size`` rows."""
        from dlmbench.families.duo.samplers import duo_ancestral

        top_p = None if st.top_p is None or st.top_p >= 1 else st.top_p
        toks, nfe = [], 0
        for s in range(0, x.shape[0], st.batch_size):
            out = duo_ancestral(self._denoiser, x[s: s + st.batch_size], fixed[s: s + st.batch_size],
                                vocab_size=self.vocab_size, seeds=list(seeds[s: s + st.batch_size]), schedule=self.schedule,
                                steps=st.steps, eps=st.sampler_eps, noise_removal=st.noise_removal,
                                temperature=st.temperature, top_p=top_p, precision=st.precision, exclude=self.pad_id)
            toks.append(out.tokens)
            nfe += int(out.nfe)
        return torch.cat(toks), nfe

    def sample(self, n: int, length: int, *, prefix=None, steps=None, seed: int = 0, **settings: Any) -> SampleResult:
        """``n`` continuations of ``length`` tokens after ``prefix`` (kept clean). Longer than the model's window: windows
        of ``max_length`` advancing by half a window, each conditioned on the tokens before it (the reference's
        ``_semi_ar_sampler`` idea), a window's row seeds from ``(seed, row, window)``."""
        given = dict(settings)
        if steps is not None:
            given["steps"] = steps
        st = self._with(given, "sampling")
        if int(n) < 1 or int(length) < 1:
            raise BadSpec(f"duo: sample needs n >= 1 and length >= 1 (got n={n}, length={length})")
        prompt = [int(t) for t in (prefix or [])]
        window = self.max_length
        if len(prompt) >= window:
            raise BadSpec(f"duo: a prefix of {len(prompt)} tokens leaves no room in the {window}-token window")
        total = len(prompt) + int(length)
        seeds = sample_seeds(seed, n)
        seq = torch.tensor([prompt] * int(n), dtype=torch.long, device=self.device).reshape(int(n), len(prompt))
        nfe, per_row, rnd = 0, 0, 0
        stride = max(1, window // 2)
        with torch.inference_mode():
            while seq.shape[1] < total:
                new = min(total - seq.shape[1], window - seq.shape[1] if rnd == 0 else stride)
                ctx = seq[:, max(0, seq.shape[1] - (window - new)):]
                x = torch.cat([ctx, torch.zeros(int(n), new, dtype=torch.long, device=self.device)], dim=1)
                fixed = torch.zeros_like(x, dtype=torch.bool)
                fixed[:, : ctx.shape[1]] = True
                rows = seeds if rnd == 0 else [request_seed(s, "semi-ar", rnd) for s in seeds]
                out, calls = self._window(x, fixed, rows, st)
                seq = torch.cat([seq, out[:, ctx.shape[1]:]], dim=1)
                nfe += calls
                per_row += calls // max(1, -(-int(n) // st.batch_size))
                rnd += 1
        gen = seq[:, len(prompt):].tolist()
        record = {"sampler": st.sampler, "steps": st.steps, "sampler_eps": st.sampler_eps, "noise_removal": st.noise_removal,
                  "temperature": st.temperature, "top_p": st.top_p, "precision": st.precision,
                  "nfe_per_sample": float(per_row)}
        if rnd > 1:
            record["semi_autoregressive"] = {"window": window, "stride": stride, "windows": rnd}
        return SampleResult(gen, [self._decode(g) for g in gen], nfe, record)

    # -- provenance ------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        prov = self.provenance
        return {
            "family": self.family,
            "bound": "upper",
            "checkpoint": prov.get("checkpoint", self.spec.checkpoint.describe()),
            "format": prov.get("format"),
            "revision": prov.get("revision"),
            "sha256": prov.get("sha256"),
            "ema": prov.get("ema"),
            "tokenizer": self.tokenizer.name,
            "vocab_size": self.vocab_size,
            "time_conditioning": True,
            "schedule": repr(self.schedule),
            "dtype": str(self._wdtype).replace("torch.", ""),
            "autocast_bf16": bool(getattr(self.backbone, "autocast_bf16", False)),
            "n_params": int(sum(p.numel() for p in self.backbone.parameters())),
            **self.settings.model_dump(),
        }


def load_duo(spec: ModelSpec, *, device: str = "cpu", batch_size: int | None = None) -> DUOModel:
    """Load a DUO checkpoint (hub id ``s-sahoo/duo`` / ``s-sahoo/duo-distilled``, a local folder in that format, or a
    DUO-repo Lightning ``.ckpt``) and its tokenizer (the card's, one saved beside the weights, else GPT-2), with the
    card's settings."""
    from dlmbench.families.duo.backbone import load_duo_backbone
    from dlmbench.nets.dit_lm import load_dit_tokenizer, weights_dtype

    settings = load_settings(DUOSettings, spec, batch_size)
    dev = torch.device(device)
    dtype, autocast = weights_dtype(spec.dtype, dev)
    net, config, provenance = load_duo_backbone(spec.checkpoint, dev, dtype)
    net.autocast_bf16 = autocast
    tokenizer = load_dit_tokenizer(spec, provenance, config)
    return DUOModel(net, config, provenance, tokenizer, spec=spec, device=dev, settings=settings)


__all__ = ["DUOModel", "load_duo"]
