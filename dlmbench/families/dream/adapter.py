"""Dream (Ye et al. 2025; HKUNLP, ``Dream-org/Dream-v0-Base-7B`` / ``-Instruct-7B``) through the shared interface.

- Network: :class:`~dlmbench.families.dream.backbone.DreamBackbone` from the published sharded safetensors (no
  remote code), read with the **shifted-logit convention** (the output at ``i − 1`` predicts token ``i``;
  :func:`~dlmbench.families.dream.estimator.shifted_denoiser`), the LM head applied only to the rows that are read.
- ``conditional_nll`` / ``nll``: Dream's masked-diffusion NELBO over the continuation, the context clean
  (:func:`~dlmbench.families.dream.estimator.dream_bound_mc`: ``t ~ U[1e-3, 1]``, masking probability ``t``,
  weight ``1/t``), ``mc_samples`` draws per request seeded per request, labelled ``upper``. An empty context is
  read after the tokenizer's BOS (``bos_for_empty_context``), as the authors' harness prepends it.
- ``greedy_match``: most-confident iterative unmasking (or one-shot argmax) on the shifted log-probs.
- ``sample`` / ``infill``: Dream's decoding (:func:`~dlmbench.families.dream.samplers.dream_sample`: origin,
  maskgit_plus, topk_margin, entropy), float64 draws, per-row seeds; ``nfe`` counts network calls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from dlmbench.diffusion.adapter import DiffusionLM, sample_seeds
from dlmbench.errors import BadSpec
from dlmbench.families.dream.settings import DreamSettings
from dlmbench.interface import GreedyResult, NLLResult, SampleResult, ScoreRequest, load_settings, require_finite
from dlmbench.specs import ModelSpec


class DreamTokenizer:
    """The Dream tokenizer behind the :class:`~dlmbench.interface.Tokenizer` protocol; special ids from
    ``config.json`` (mask, EOS) and the tokenizer (BOS: ``<|beginoftext|>`` for the published models)."""

    def __init__(self, hf_tokenizer, name: str, *, mask_id: int, eos_id: int | None, bos_id: int | None):
        self.hf = hf_tokenizer
        self.name = name
        self.vocab_size = len(hf_tokenizer)
        self.mask_id = int(mask_id)
        self.eos_id = None if eos_id is None else int(eos_id)
        self.bos_id = None if bos_id is None else int(bos_id)

    def encode(self, text: str) -> list[int]:
        return list(self.hf(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=True)

    def token_text(self, token_id: int) -> str:
        return str(self.hf.convert_ids_to_tokens(int(token_id)))


class DreamModel(DiffusionLM):
    family = "dream"
    settings_type = DreamSettings
    settings: DreamSettings

    def __init__(self, backbone, tokenizer: DreamTokenizer, *, spec: ModelSpec, device: torch.device, settings: DreamSettings):
        self.backbone = backbone
        self.config = backbone.config
        self.tokenizer = tokenizer
        self.spec = spec
        self.device = device
        self.settings = settings
        self.mask_id = int(self.config.mask_token_id)
        self.max_length = int(spec.max_length or min(self.config.max_position_embeddings, 2048))

    # -- the network, read shifted ---------------------------------------------------------------------
    def _head(self, h: torch.Tensor) -> torch.Tensor:
        out = self.backbone.head(h).float()
        return require_finite(out, f"dream {self.spec.name}: network output")

    def _normalise(self, precision: str):
        def log_softmax(z: torch.Tensor) -> torch.Tensor:
            if precision == "float64":
                return torch.log_softmax(z.double(), dim=-1)
            return z.sub_(torch.logsumexp(z, dim=-1, keepdim=True)) if not torch.is_grad_enabled() else torch.log_softmax(z, -1)

        return log_softmax

    def _denoiser(self, precision: str):
        from dlmbench.families.dream.estimator import shifted_denoiser

        return shifted_denoiser(self.backbone.hidden, self._head, self._normalise(precision))

    def _clean_denoiser(self):
        return self._denoiser(self.settings.score_precision)

    def _row_logits(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        from dlmbench.families.dream.estimator import source_positions

        h = self.backbone.hidden(x)
        return self._head(h.reshape(-1, h.shape[-1])[source_positions(positions)])

    # -- likelihood --------------------------------------------------------------------------------------
    def _with_bos(self, requests: Sequence[ScoreRequest]) -> list[ScoreRequest]:
        bos = self.tokenizer.bos_id
        if not self.settings.bos_for_empty_context or bos is None:
            return list(requests)
        return [dataclasses.replace(r, context=(bos,)) if not r.context else r for r in requests]

    def conditional_nll(self, requests: Sequence[ScoreRequest]) -> NLLResult:
        res = super().conditional_nll(self._with_bos(requests))
        bos = self.tokenizer.bos_id if self.settings.bos_for_empty_context else None
        return dataclasses.replace(res, settings={**res.settings, "empty_context_prefix": bos})

    def greedy_match(self, requests: Sequence[ScoreRequest]) -> GreedyResult:
        return super().greedy_match(self._with_bos(requests))

    def _bound_rows(self, x0, score_mask, seeds):
        from dlmbench.families.dream.estimator import dream_bound_mc

        st = self.settings
        with torch.inference_mode():
            est = dream_bound_mc(self._denoiser(st.score_precision), x0, score_mask, seeds, mask_id=self.mask_id,
                                 num_samples=st.mc_samples, time_sampling=st.time_sampling, sampling_eps=st.sampling_eps,
                                 t_estimator=st.t_estimator, batch_size=st.batch_size)
        return est.mean, est.stderr, {**est.settings, "score_precision": st.score_precision}

    # -- sampling ----------------------------------------------------------------------------------------
    def _decode(self, canvas: torch.Tensor, seeds: Sequence[int], st: DreamSettings):
        from dlmbench.diffusion.sampling import SamplerOutput
        from dlmbench.families.dream.samplers import dream_sample

        toks, row_nfe, nfe = [], [], 0
        with torch.inference_mode():
            for s in range(0, canvas.shape[0], st.batch_size):
                out = dream_sample(self._row_logits, canvas[s: s + st.batch_size], mask_id=self.mask_id, steps=st.steps,
                                   seeds=list(seeds[s: s + st.batch_size]), alg=st.alg, eps=st.eps,
                                   temperature=st.temperature, top_p=st.top_p, top_k=st.top_k, alg_temp=st.alg_temp,
                                   precision=st.precision)
                toks.append(out.tokens)
                row_nfe.append(out.row_nfe)
                nfe += int(out.nfe)
        return SamplerOutput(torch.cat(toks), nfe, torch.cat(row_nfe))

    def _record(self, st: DreamSettings, out) -> dict[str, Any]:
        return {"sampler": f"dream_{st.alg}", "steps": st.steps, "eps": st.eps, "temperature": st.temperature,
                "top_p": st.top_p, "top_k": st.top_k, "alg_temp": st.alg_temp, "precision": st.precision,
                "nfe_per_sample": float(out.row_nfe.double().mean())}

    def sample(self, n: int, length: int, *, prefix=None, steps=None, seed: int = 0, **settings: Any) -> SampleResult:
        st = self._with({**settings, **({} if steps is None else {"steps": steps})}, "sampling")
        if int(n) < 1 or int(length) < 1:
            raise BadSpec(f"dream: sample needs n >= 1 and length >= 1 (got n={n}, length={length})")
        prompt = [int(t) for t in (prefix or [])]
        if self.mask_id in prompt:
            raise BadSpec(f"dream: the prefix contains the mask token id {self.mask_id}")
        # an empty prefix starts after BOS (shifted logits: the first token is read from the position before it), when
        # the window has room for it: a canvas that fills the window exactly (genppl: 128 tokens on a 128-token zoo
        # model) starts at position 0, which reads its own output, as Dream's generate() does for a prompt-less canvas
        lead = [self.tokenizer.bos_id] if (not prompt and st.bos_for_empty_context and self.tokenizer.bos_id is not None
                                           and int(length) < self.max_length) else []
        start = len(lead) + len(prompt)
        if start + int(length) > self.max_length:
            raise BadSpec(f"dream: {start} prefix tokens + {length} new ones exceed the model's {self.max_length}-token window")
        canvas = torch.full((int(n), start + int(length)), self.mask_id, dtype=torch.long, device=self.device)
        if start:
            canvas[:, :start] = torch.tensor(lead + prompt, device=self.device)
        out = self._decode(canvas, sample_seeds(seed, n), st)
        gen = out.tokens[:, start:].tolist()
        return SampleResult(gen, [self.tokenizer.decode(g) for g in gen], int(out.nfe),
                            {**self._record(st, out), "bos_lead": bool(lead)})

    def infill(self, tokens: Sequence[int | None], *, steps: int | None = None, seed: int = 0, **settings: Any) -> SampleResult:
        st = self._with({**settings, **({} if steps is None else {"steps": steps})}, "infill")
        if not tokens:
            raise BadSpec("dream: nothing to infill")
        if len(tokens) > self.max_length:
            raise BadSpec(f"dream: {len(tokens)} positions exceed the model's {self.max_length}-token window")
        if any(t is not None and int(t) == self.mask_id for t in tokens):
            raise BadSpec(f"dream: the known tokens contain the mask token id {self.mask_id}; write holes as None")
        canvas = torch.tensor([[self.mask_id if t is None else int(t) for t in tokens]], dtype=torch.long, device=self.device)
        out = self._decode(canvas, sample_seeds(seed, 1, "infill"), st)
        gen = out.tokens.tolist()
        return SampleResult(gen, [self.tokenizer.decode(g) for g in gen], int(out.nfe), self._record(st, out))

    def describe(self) -> dict[str, Any]:
        return {"family": self.family, "bound": "upper", "checkpoint": self.spec.checkpoint.describe(),
                "dtype": str(next(self.backbone.parameters()).dtype).replace("torch.", ""),
                "n_params": int(sum(p.numel() for p in self.backbone.parameters())), "mask_id": self.mask_id,
                "bos_id": self.tokenizer.bos_id, "logits": "shifted", **self.settings.model_dump()}


def load_dream(spec: ModelSpec, *, device: str = "cpu", batch_size: int | None = None) -> DreamModel:
    """Load a Dream checkpoint (hub id or local folder in the published format) and its tokenizer (the card's
    ``tokenizer:``, else the checkpoint folder's), with the card's settings."""
    from dlmbench.families.dream.loader import (
        check_dream_tokenizer,
        default_dtype,
        load_dream_backbone,
        load_dream_tokenizer,
        resolve_folder,
    )

    settings = load_settings(DreamSettings, spec, batch_size)
    dev = torch.device(device)
    folder = resolve_folder(spec.checkpoint)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}[spec.dtype]
    if dev.type == "cpu" and dtype in (torch.bfloat16, torch.float16):
        dtype = default_dtype(dev)  # float32 on CPU
    backbone = load_dream_backbone(folder, device=dev, dtype=dtype)
    tok_folder = resolve_folder(spec.tokenizer) if spec.tokenizer else folder
    hf_tok = load_dream_tokenizer(tok_folder)
    cfg = backbone.config
    check_dream_tokenizer(hf_tok, cfg, where=f"model {spec.name} (tokenizer {tok_folder})")
    bos = getattr(hf_tok, "bos_token_id", None)
    tokenizer = DreamTokenizer(hf_tok, str(tok_folder), mask_id=cfg.mask_token_id, eos_id=cfg.eos_token_id,
                               bos_id=bos if bos is not None else cfg.eos_token_id)
    return DreamModel(backbone, tokenizer, spec=spec, device=dev, settings=settings)


__all__ = ["DreamModel", "DreamTokenizer", "load_dream"]
