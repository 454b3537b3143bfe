"""LLaDA (Nie et al., 2025): the bidirectional LLaMA-style masked diffusion model, through the shared
interface.

- ``conditional_nll``: LLaDA's estimator (``get_log_likelihood.py``, paper eq. 6): per draw, exactly ``l`` of
  the ``L`` continuation tokens are masked, a uniform ``l``-subset, the prompt stays clean, and the masked
  cross-entropy is weighted by ``L / l``; the mean over the ``mc_samples`` draws estimates an upper bound on
  ``−log p(continuation | prompt)`` (:func:`dlmbench.diffusion.llada_bound_mc`). The counts ``l_k`` are
  stratified over the draws of a request (``time_sampling: stratified``: ``l_k = floor(v_k L) + 1``, ``v_k``
  uniform on ``[k/K, (k+1)/K)``), stderr by collapsed strata. LLaDA's own code instead shares one offset per
  mini-batch and rounds half-to-even, which skews the counts (see
  :func:`dlmbench.diffusion.timesteps.stratified_mask_counts`); ``time_sampling: systematic`` is its shape
  with a floor. Optional unsupervised
  classifier-free guidance (``cfg = w > 0``): the unconditional pass masks the whole prompt and the logits
  are ``un + (w + 1)(cond − un)`` (LLaDA ``eval_llada.py``); with CFG the number is no longer a bound of
  the model's own likelihood and is labelled as such in the settings.
- ``greedy_match``: LLaDA's ``suffix_greedy_prediction`` (iterative most-confident unmasking), or the
  one-shot argmax, as the ``greedy`` setting says.
- ``sample``: low-confidence / random remasking with semi-autoregressive blocks (``generate.py``), and Fast-dLLM's
  confidence-threshold parallel decoding and block-wise approximate key/value cache (settings ``threshold``,
  ``factor``, ``cache``; Wu et al. 2025, NVlabs/Fast-dLLM ``llada/generate.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from dlmbench.errors import BadSpec
from dlmbench.families.llada.settings import LLaDASettings, block_schedule
from dlmbench.specs import ModelSpec
from dlmbench.interface import SampleResult, load_settings, require_finite
from dlmbench.diffusion.adapter import DiffusionLM


class LLaDATokenizer:
    """The LLaDA tokenizer behind the :class:`~dlmbench.interface.Tokenizer` protocol."""

    def __init__(self, hf_tokenizer, name: str, *, mask_id: int | None = None, eos_id: int | None = None, bos_id: int | None = None):
        """Special ids default to the published 8B ones; a checkpoint with its own (e.g. the zoo's) passes
        them from its ``config.json`` (``mask_token_id``, ``eos_token_id``)."""
        from dlmbench.families.llada.backbone import BOS_ID, EOS_ID, MASK_ID

        self.hf = hf_tokenizer
        self.name = name
        self.vocab_size = len(hf_tokenizer)
        self.mask_id = MASK_ID if mask_id is None else int(mask_id)
        self.eos_id = EOS_ID if eos_id is None else int(eos_id)
        self.bos_id = BOS_ID if bos_id is None else int(bos_id)

    def encode(self, text: str) -> list[int]:
        return list(self.hf(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=True)

    def token_text(self, token_id: int) -> str:
        """The vocabulary entry of one id, special tokens included."""
        return str(self.hf.convert_ids_to_tokens(int(token_id)))


class LLaDAModel(DiffusionLM):
    family = "llada"
    settings_type = LLaDASettings
    settings: LLaDASettings

    def __init__(self, backbone, tokenizer, *, spec: ModelSpec, device: torch.device, settings: LLaDASettings):
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.spec = spec
        self.device = device
        self.settings = settings
        self.mask_id = int(backbone.config.mask_token_id)  # 126336 for the published models
        self.max_length = spec.max_length or 4096

    # -- denoisers -------------------------------------------------------------------------------
    def _logits(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        out = (self.backbone(x) if positions is None else self.backbone(x, positions=positions)).float()
        return require_finite(out, f"llada {self.spec.name}: network output")

    def _guided_log_probs(self, x_t: torch.Tensor, prompt_mask: torch.Tensor | None, precision: str = "float64",
                          positions: torch.Tensor | None = None) -> torch.Tensor:
        """``log p_theta(x0 | x_t)`` ``[B, L, V]``, CFG-guided when ``cfg > 0`` and the prompt is known.

        ``precision="float64"`` (the samplers' categorical draws) normalises a float64 copy;
        ``"float32"`` (the likelihood bound and the greedy check, setting ``score_precision``) normalises the
        float32 logits in place, ``logits - logsumexp(logits)``: with LLaDA's 126,464-entry vocabulary this is
        the largest tensor of the estimator, and the float64 copy would take 2.5x its memory for a change of
        order 1e-6 nats per token, far below the Monte Carlo error. The gathered log-probs are summed in
        float64 either way (:func:`dlmbench.diffusion.masked.target_log_probs`). With ``positions`` (bool
        ``[B, L]``) only the rows ``[N, V]`` there: the bound reads the masked continuation tokens alone.
        """
        cond = self._logits(x_t, positions)
        w = self.settings.cfg
        if w > 0 and prompt_mask is not None:
            un_x = torch.where(prompt_mask, torch.full_like(x_t, self.mask_id), x_t)
            un = self._logits(un_x, positions)
            cond = un + (w + 1.0) * (cond - un)
        if precision == "float64":
            return torch.log_softmax(cond.double(), dim=-1)
        lse = torch.logsumexp(cond, dim=-1, keepdim=True)
        return cond.sub_(lse) if not torch.is_grad_enabled() else cond - lse

    def _clean_denoiser(self):
        prec = self.settings.score_precision
        return lambda x_t, _sigma: self._guided_log_probs(x_t, None, prec)

    def _bound_rows(self, x0, score_mask, seeds):
        from dlmbench.diffusion.masked import PositionalDenoiser, llada_bound_mc

        k = self.settings.mc_samples
        chunk = self.settings.batch_size
        cfg = self.settings.cfg
        prec = self.settings.score_precision
        with torch.inference_mode():
            if cfg > 0:
                # one request at a time, so the unconditional pass knows which positions are the prompt
                means, ses = [], []
                for r in range(x0.shape[0]):
                    pm = ~score_mask[r : r + 1]
                    den = PositionalDenoiser(
                        lambda x_t, _s, pm=pm: self._guided_log_probs(x_t, pm.expand(x_t.shape[0], -1), prec),
                        lambda x_t, _s, pos, pm=pm: self._guided_log_probs(x_t, pm.expand(x_t.shape[0], -1), prec, pos),
                    )
                    est = llada_bound_mc(den, x0[r : r + 1], score_mask[r : r + 1], seeds[r : r + 1], mask_id=self.mask_id, num_samples=k,
                                         time_sampling=self.settings.time_sampling, batch_size=chunk)
                    means.append(est.mean[0])
                    ses.append(est.stderr[0])
                mean, se, settings = np.array(means), np.array(ses), dict(est.settings)
                settings["note"] = "CFG-guided score: not a bound of the model's own likelihood"
            else:
                den = PositionalDenoiser(lambda x_t, _s: self._guided_log_probs(x_t, None, prec),
                                         lambda x_t, _s, pos: self._guided_log_probs(x_t, None, prec, pos))
                est = llada_bound_mc(den, x0, score_mask, seeds, mask_id=self.mask_id, num_samples=k,
                                         time_sampling=self.settings.time_sampling, batch_size=chunk)
                mean, se, settings = est.mean, est.stderr, dict(est.settings)
        settings["cfg"] = cfg
        settings["score_precision"] = prec
        return mean, se, settings

    # -- sampling ---------------------------------------------------------------------------------
    def sample(self, n: int, length: int, *, prefix=None, steps=None, seed: int = 0, **settings: Any) -> SampleResult:
        """LLaDA's low-confidence / random remasking with semi-autoregressive blocks, optionally with Fast-dLLM's
        parallel decoding (``threshold`` / ``factor``) and block-wise key/value cache (``cache``)
        (:func:`dlmbench.diffusion.remasking.low_confidence_remasking`). Rows are drawn in chunks of ``batch_size``
        with one seed per row (:func:`dlmbench.diffusion.adapter.sample_seeds`), so a row does not depend on ``n``
        or the batch size. The record has ``nfe_per_sample`` (mean network calls per row: with ``threshold`` it
        varies per row) and ``nfe_total`` (their sum)."""
        from dlmbench.diffusion.adapter import sample_seeds
        from dlmbench.diffusion.remasking import low_confidence_remasking

        st = self._with({**settings, **({} if steps is None else {"steps": steps})}, "sampling")
        steps = st.steps
        prompt = list(prefix or [])
        if length < 1 or n < 1:
            raise BadSpec(f"LLaDA sampling: n and length must be at least 1, not n={n}, length={length}")
        block, n_blocks = block_schedule(length, st.block_length, steps)  # a request shorter than one block is one block
        seeds = sample_seeds(seed, n)
        x_all = torch.full((n, len(prompt) + length), self.mask_id, dtype=torch.long, device=self.device)
        if prompt:
            x_all[:, : len(prompt)] = torch.tensor(prompt, device=self.device)
        tokens, row_nfe, nfe = [], [], 0
        with torch.inference_mode():
            for s in range(0, n, st.batch_size):
                x = x_all[s : s + st.batch_size]
                pm = torch.zeros_like(x, dtype=torch.bool)
                pm[:, : len(prompt)] = True
                den = _BackboneCache(self) if st.cache != "none" else (lambda xt, pm=pm: self._guided_log_probs(xt, pm[: xt.shape[0]], "float64"))
                out = low_confidence_remasking(
                    den, x, prompt_length=len(prompt), steps=steps, block_length=block, remasking=st.remasking,
                    temperature=st.temperature, mask_id=self.mask_id, seeds=seeds[s : s + st.batch_size],
                    precision=st.precision, threshold=st.threshold, factor=st.factor, cache=st.cache,
                )
                tokens.append(out.tokens[:, len(prompt) :])
                row_nfe.append(out.row_nfe)
                nfe += int(out.nfe)
        rn = torch.cat(row_nfe).double()
        gen = torch.cat(tokens).tolist()
        record = {"sampler": f"llada_{st.remasking}", "steps": steps, "block_length": block, "temperature": st.temperature,
                  "cfg": st.cfg, "precision": st.precision, "threshold": st.threshold, "factor": st.factor, "cache": st.cache,
                  "nfe_per_sample": float(rn.mean()), "nfe_total": int(rn.sum()), "seeding": "per_row"}
        return SampleResult(gen, [self.tokenizer.decode(g) for g in gen], nfe, record)

    def describe(self) -> dict[str, Any]:
        n_params = sum(p.numel() for p in self.backbone.parameters())
        return {"family": self.family, "bound": "upper", "checkpoint": self.spec.checkpoint.describe(), "dtype": str(next(self.backbone.parameters()).dtype).replace("torch.", ""), "n_params": int(n_params), **self.settings.model_dump()}


class _BackboneCache:
    """The LLaDA backbone as a :class:`dlmbench.diffusion.remasking.BlockCachedDenoiser` (no CFG): ``refresh`` is the
    full forward keeping each layer's keys/values (:meth:`LLaDABackbone.forward_kv`), ``window`` the forward over
    a window of positions against them (:meth:`LLaDABackbone.forward_window`); both return float64 log-probs as
    the uncached denoiser does."""

    def __init__(self, model: LLaDAModel):
        self.model = model

    def _log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        out = require_finite(logits.float(), f"llada {self.model.spec.name}: network output")
        return torch.log_softmax(out.double(), dim=-1)

    def refresh(self, x: torch.Tensor):
        logits, kv = self.model.backbone.forward_kv(x)
        return self._log_probs(logits), kv

    def window(self, x_w: torch.Tensor, state, lo: int) -> torch.Tensor:
        return self._log_probs(self.model.backbone.forward_window(x_w, state, lo))

    def select(self, state, rows: torch.Tensor):
        return [(k[rows], v[rows]) for k, v in state]


def load_llada(spec: ModelSpec, *, device: str = "cpu", batch_size: int | None = None) -> LLaDAModel:
    from dlmbench.families.llada.loader import check_llada_tokenizer, default_dtype, load_llada_backbone, load_llada_tokenizer, resolve_folder

    settings = load_settings(LLaDASettings, spec, batch_size)
    dev = torch.device(device)
    folder = resolve_folder(spec.checkpoint)  # a hub id, a local folder, or a folder shipped in a package
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}[spec.dtype]
    if dev.type == "cpu" and dtype in (torch.bfloat16, torch.float16):
        dtype = default_dtype(dev)  # float32 on CPU
    backbone = load_llada_backbone(folder, device=dev, dtype=dtype)
    tok_folder = resolve_folder(spec.tokenizer) if spec.tokenizer else folder
    cfg = backbone.config
    hf_tok = load_llada_tokenizer(tok_folder, mask_id=cfg.mask_token_id, eos_id=cfg.eos_token_id)
    check_llada_tokenizer(hf_tok, cfg, where=f"model {spec.name} (tokenizer {tok_folder})")
    bos = hf_tok.convert_tokens_to_ids("<|startoftext|>") if "<|startoftext|>" in hf_tok.get_vocab() else cfg.eos_token_id
    tokenizer = LLaDATokenizer(hf_tok, name=str(tok_folder), mask_id=cfg.mask_token_id, eos_id=cfg.eos_token_id, bos_id=bos)
    return LLaDAModel(backbone, tokenizer, spec=spec, device=dev, settings=settings)


__all__ = ["LLaDAModel", "load_llada", "np"]
