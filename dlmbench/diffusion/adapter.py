"""Machinery shared by every diffusion adapter (MDLM, SEDD, LLaDA): requests → fixed-length rows →
per-request Monte Carlo bounds → :class:`NLLResult` with ``bound="upper"``.

- Rows are ``context + continuation``; the continuation positions are noised and scored, the context
  stays clean (the conditional bound). Requests are grouped by length and never padded: a diffusion
  model attends to every position, so padding would change the number.
- A request longer than the model's context is split into continuation chunks, each conditioned on up to
  ``max_length`` preceding clean tokens; the sum of the chunk bounds is a bound on the whole
  continuation (chain rule: ``−log p(a, b | c) = −log p(a | c) − log p(b | c, a)``, each term bounded).
- Every draw is seeded from the request's seed (``estimators.montecarlo``), so numbers do not depend on
  batch size, order or worker count.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from dlmbench.errors import BadSpec
from dlmbench.seeding import request_seed
from dlmbench.interface import GreedyResult, LanguageModel, NLLResult, SampleResult, ScoreRequest
from dlmbench.specs.settings import Settings, validate_settings


def split_long(req: ScoreRequest, max_length: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """``(context, continuation)`` pieces of at most ``max_length`` tokens whose bounds add up.

    If ``context + continuation`` fits, one piece. Otherwise the continuation is cut into chunks of
    ``max_length // 2`` tokens (at least 1), each preceded by as much of the clean history as fits.
    """
    ctx, cont = req.context, req.continuation
    if len(ctx) + len(cont) <= max_length:
        return [(ctx, cont)]
    if len(cont) + min(len(ctx), 1) <= max_length:
        keep = max_length - len(cont)
        return [(ctx[len(ctx) - keep :] if keep else (), cont)]
    step = max(1, max_length // 2)
    history = list(ctx)
    pieces = []
    for start in range(0, len(cont), step):
        chunk = cont[start : start + step]
        room = max_length - len(chunk)
        pieces.append((tuple(history[len(history) - room :]) if room > 0 else (), tuple(chunk)))
        history.extend(chunk)
    return pieces


class DiffusionLM(LanguageModel):
    """Base of the diffusion adapters. Subclasses implement :meth:`_bound_rows` (the family's estimator on
    a ``[R, L]`` batch of equal-length rows) and :meth:`_clean_denoiser` (log p(x0 | x_t) without time,
    for the greedy checks), plus :meth:`sample`.

    ``settings`` is the family's typed settings object (validated when the model loads; it has at least
    ``batch_size``, and ``mc_samples`` / ``greedy`` where the base class reads them)."""

    bound = "upper"
    mask_id: int
    device: torch.device
    settings: Settings

    def _with(self, given: dict[str, Any], where: str) -> Any:
        """The model's settings with the per-call ``given`` ones over them, validated by the same type (a bad
        value or an unknown name is one :class:`~dlmbench.errors.BadSetting` line)."""
        if not given:
            return self.settings
        return validate_settings(type(self.settings), {**self.settings.overrides(), **given}, f"{self.family} {where}")

    # -- family hooks ------------------------------------------------------------------------------
    def _bound_rows(self, x0: torch.Tensor, score_mask: torch.Tensor, seeds: Sequence[int]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Per-row (mean, stderr, settings) of the family's MC upper bound on ``−log p(x0[scored] | rest)``."""
        raise NotImplementedError

    def _clean_denoiser(self) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
        raise NotImplementedError

    # -- the interface -----------------------------------------------------------------------------
    def conditional_nll(self, requests: Sequence[ScoreRequest]) -> NLLResult:
        max_len = int(self.max_length or 1024)
        pieces: list[tuple[int, int, tuple[int, ...], tuple[int, ...]]] = []  # (request, piece, ctx, cont)
        for i, req in enumerate(requests):
            if not req.continuation:
                raise BadSpec(f"request {i} has an empty continuation: nothing to score")
            for j, (c, x) in enumerate(split_long(req, max_len)):
                pieces.append((i, j, c, x))
        by_len: dict[int, list[int]] = defaultdict(list)
        for k, (_i, _j, c, x) in enumerate(pieces):
            by_len[len(c) + len(x)].append(k)
        mean = np.zeros(len(pieces))
        var = np.zeros(len(pieces))
        settings: dict[str, Any] = {}
        bs = self.settings.batch_size
        progress = self._progress(len(pieces))
        for _length, idx in sorted(by_len.items()):
            for s in range(0, len(idx), bs):
                chunk = idx[s : s + bs]
                x0 = torch.tensor([list(pieces[k][2]) + list(pieces[k][3]) for k in chunk], dtype=torch.long, device=self.device)
                mask = torch.zeros_like(x0, dtype=torch.bool)
                for r, k in enumerate(chunk):
                    mask[r, len(pieces[k][2]) :] = True
                seeds = [request_seed(requests[pieces[k][0]].seed, "piece", pieces[k][1]) for k in chunk]
                m, se, settings = self._bound_rows(x0, mask, seeds)
                mean[chunk] = m
                var[chunk] = np.asarray(se, dtype=np.float64) ** 2
                progress.update(len(chunk))
        progress.close()
        nll = np.zeros(len(requests))
        stderr2 = np.zeros(len(requests))
        for k, (i, _j, _c, _x) in enumerate(pieces):
            nll[i] += mean[k]
            stderr2[i] += var[k]
        n_tokens = np.array([len(r.continuation) for r in requests], dtype=np.int64)
        return NLLResult(
            nll=nll,
            n_tokens=n_tokens,
            stderr=np.sqrt(stderr2),
            bound="upper",
            mc_samples=int(settings.get("mc_samples", getattr(self.settings, "mc_samples", 1))),
            settings=settings,
        )

    def greedy_match(self, requests: Sequence[ScoreRequest]) -> GreedyResult:
        from dlmbench.diffusion.masked import iterative_confidence, one_shot_argmax

        method = self.settings.greedy  # iterative_confidence | one_shot_argmax (diffusion.settings.GreedyMethod)
        check = iterative_confidence if method == "iterative_confidence" else one_shot_argmax
        denoiser = self._clean_denoiser()
        max_len = int(self.max_length or 1024)
        out = np.zeros(len(requests), dtype=bool)
        by_len: dict[int, list[int]] = defaultdict(list)
        rows: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        for i, req in enumerate(requests):
            ctx, cont = req.context, req.continuation
            if len(ctx) + len(cont) > max_len:
                ctx = ctx[len(ctx) - max(0, max_len - len(cont)) :] if len(cont) < max_len else ()
                cont = cont[:max_len]
            rows[i] = (ctx, cont)
            by_len[len(ctx) + len(cont)].append(i)
        bs = self.settings.batch_size
        for _length, idx in sorted(by_len.items()):
            for s in range(0, len(idx), bs):
                chunk = idx[s : s + bs]
                x0 = torch.tensor([list(rows[i][0]) + list(rows[i][1]) for i in chunk], dtype=torch.long, device=self.device)
                tmask = torch.zeros_like(x0, dtype=torch.bool)
                for r, i in enumerate(chunk):
                    tmask[r, len(rows[i][0]) :] = True
                with torch.inference_mode():
                    out[chunk] = check(denoiser, x0, tmask, mask_id=self.mask_id).cpu().numpy()
        return GreedyResult(matches=out, method=method)

    def _progress(self, total: int):
        from dlmbench.progress import bar

        return bar(total=total, desc=f"{self.family} bound", unit="seq")


# ------------------------------------------------------------------------------------------------------
# Sampling on a masked canvas (MDLM, SEDD): prefix / infill tokens fixed, ``mask_id`` positions generated


def sample_seeds(seed: int, n: int, *identity: object) -> list[int]:
    """Per-row seeds of a sampling call: row ``i`` depends only on ``(seed, identity, i)``, never on ``n``,
    the batch size or the other rows."""
    return [request_seed(int(seed), "sample", *identity, i) for i in range(int(n))]


class CanvasDiffusionLM(DiffusionLM):
    """A :class:`DiffusionLM` whose samplers fill the ``mask_id`` positions of a canvas and never touch
    the others (MDLM's and SEDD's samplers in :mod:`dlmbench.diffusion`). Shared here:

    - :meth:`sample`: canvas = ``prefix + [mask] * length``; a canvas longer than ``max_length`` is
      generated semi-autoregressively (MDLM ``sample_subs_guidance``: windows of ``max_length`` advancing by
      ``semi_ar_stride`` tokens, :func:`dlmbench.diffusion.semi_autoregressive`);
    - :meth:`infill`: the ``None`` holes are the masked positions of a one-row canvas;
    - rows are sampled in chunks of ``batch_size`` with per-row seeds, so a row's tokens do not depend on
      ``n`` or the batch size; ``nfe`` is the number of batched network calls summed over chunks, and the
      settings record ``nfe_per_sample`` (mean network calls each row took part in).

    ``temperature: 0`` is the zero-temperature limit: every unmasked token is the argmax of the clean-token
    distribution (which positions unmask, and when, stays the sampler's).

    Subclasses implement :meth:`_sample_canvas` (one chunk, given the checked settings) and
    :meth:`_sampler_record` (what to write into :attr:`SampleResult.settings`), and list their sampler
    names in ``samplers``. ``settings`` is a :class:`~dlmbench.diffusion.settings.CanvasSettings`; per-call
    overrides (``sample(..., temperature=0.5)``) are validated by the same type.
    """

    samplers: tuple[str, ...] = ()
    sample_keys: tuple[str, ...] = ("sampler", "steps", "temperature", "top_p", "precision")

    def _sample_canvas(self, canvas: torch.Tensor, seeds: Sequence[int], st: Any):
        """Fill the ``mask_id`` positions of ``canvas [B, L]``; return a :class:`~dlmbench.diffusion.SamplerOutput`."""
        raise NotImplementedError

    def _sampler_record(self, st: Any) -> dict[str, Any]:
        return {k: getattr(st, k) for k in self.sample_keys}

    def _confidence_canvas(self, canvas: torch.Tensor, seeds: Sequence[int], st: Any):
        """Sampler ``confidence``: LLaDA's low-confidence remasking over the whole canvas as one block, with
        Fast-dLLM's parallel rule when ``threshold`` or ``factor`` is set
        (:func:`dlmbench.diffusion.remasking.low_confidence_remasking`). The denoiser is the family's clean one
        read without a time (:meth:`_clean_denoiser` with ``sigma=None``: the noise level whose masking probability
        is the row's masked fraction, for a time-conditioned network; ignored by a time-agnostic one). Without a
        rule each of ``steps`` calls commits ``masked / steps`` tokens (at least one while masks remain)."""
        from dlmbench.diffusion.remasking import low_confidence_remasking

        den = self._clean_denoiser()
        top_p = None if st.top_p is None or st.top_p >= 1 else st.top_p
        return low_confidence_remasking(lambda x: den(x, None), canvas, mask_id=self.mask_id, steps=st.steps,
                                        temperature=st.temperature, top_p=top_p, seeds=seeds, precision=st.precision,
                                        threshold=st.threshold, factor=st.factor)

    def _confidence_record(self, st: Any) -> dict[str, Any]:
        return {"sampler": "confidence", "steps": st.steps, "temperature": st.temperature, "top_p": st.top_p,
                "precision": st.precision, "threshold": st.threshold, "factor": st.factor}

    def _sample_settings(self, steps: int | None, settings: dict[str, Any]) -> Any:
        """The settings of one sampling call: ``steps`` and ``settings`` over the model's, validated."""
        given = dict(settings)
        if steps is not None:
            given["steps"] = steps
        return self._with(given, "sampling")

    def _generate(self, canvas: torch.Tensor, seeds: Sequence[int], st: Any):
        """:meth:`_sample_canvas` over chunks of ``batch_size`` rows; NFE summed over chunks."""
        from dlmbench.diffusion.sampling import SamplerOutput

        bs = st.batch_size
        tokens, row_nfe, nfe = [], [], 0
        with torch.inference_mode():
            for s in range(0, canvas.shape[0], bs):
                out = self._sample_canvas(canvas[s : s + bs], list(seeds[s : s + bs]), st)
                tokens.append(out.tokens)
                rn = out.row_nfe if out.row_nfe.numel() else torch.full((out.tokens.shape[0],), out.nfe, dtype=torch.long)
                row_nfe.append(rn.cpu())
                nfe += int(out.nfe)
        return SamplerOutput(torch.cat(tokens), nfe, torch.cat(row_nfe))

    def _result(self, rows: torch.Tensor, out, st: Any, **extra: Any) -> SampleResult:
        gen = rows.tolist()
        record = {**self._sampler_record(st), **extra, "nfe_per_sample": float(out.row_nfe.double().mean()) if out.row_nfe.numel() else float(out.nfe)}
        return SampleResult(gen, [self.tokenizer.decode(g) for g in gen], int(out.nfe), record)

    def sample(self, n: int, length: int, *, prefix=None, steps=None, seed: int = 0, **settings: Any) -> SampleResult:
        from dlmbench.diffusion.sampling import masked_canvas
        from dlmbench.diffusion.masked_samplers import semi_autoregressive

        st = self._sample_settings(steps, settings)
        if int(n) < 1 or int(length) < 1:
            raise BadSpec(f"{self.family}: sample needs n >= 1 and length >= 1 (got n={n}, length={length})")
        prompt = [int(t) for t in (prefix or [])]
        if self.mask_id in prompt:
            raise BadSpec(f"{self.family}: the prefix contains the mask token id {self.mask_id}")
        window = int(self.max_length or 1024)
        total = len(prompt) + int(length)
        seeds = sample_seeds(seed, n)
        if total <= window:
            canvas = masked_canvas(int(n), total, self.mask_id, prefix=prompt or None, device=self.device)
            out = self._generate(canvas, seeds, st)
            return self._result(out.tokens[:, len(prompt) :], out, st)
        if len(prompt) >= window:
            raise BadSpec(f"{self.family}: a prefix of {len(prompt)} tokens leaves no room in the {window}-token window")
        stride = st.semi_ar_stride or max(1, window // 2)
        if not 0 < stride <= window:
            raise BadSpec(f"{self.family}: semi_ar_stride must lie in 1..{window}, not {stride}")

        def window_sampler(canvas: torch.Tensor, rnd: int):
            return self._generate(canvas, [request_seed(s, "semi-ar", rnd) for s in seeds], st)

        out = semi_autoregressive(window_sampler, batch=int(n), total_length=total, window=window, stride=stride,
                                  mask_id=self.mask_id, prefix=prompt or None, device=self.device)
        return self._result(out.tokens[:, len(prompt) :], out, st, semi_autoregressive={"window": window, "stride": stride})

    def infill(self, tokens: Sequence[int | None], *, steps: int | None = None, seed: int = 0, **settings: Any) -> SampleResult:
        st = self._sample_settings(steps, settings)
        if not tokens:
            raise BadSpec(f"{self.family}: nothing to infill")
        if len(tokens) > int(self.max_length or 1024):
            raise BadSpec(f"{self.family}: {len(tokens)} positions exceed the model's {self.max_length}-token window")
        if any(t is not None and int(t) == self.mask_id for t in tokens):
            raise BadSpec(f"{self.family}: the known tokens contain the mask token id {self.mask_id}; write holes as None")
        canvas = torch.tensor([[self.mask_id if t is None else int(t) for t in tokens]], dtype=torch.long, device=self.device)
        out = self._generate(canvas, sample_seeds(seed, 1, "infill"), st)
        return self._result(out.tokens, out, st)
