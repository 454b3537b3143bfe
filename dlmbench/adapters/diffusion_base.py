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

from ..errors import BadSpec, UnknownName
from ..seeding import request_seed
from .base import GreedyResult, LanguageModel, NLLResult, ScoreRequest

GREEDY_METHODS = ("iterative_confidence", "one_shot_argmax")


def check_settings(family: str, given: dict[str, Any], known: dict[str, Any]) -> dict[str, Any]:
    """Merge ``given`` over the defaults ``known``; unknown names fail with "did you mean"."""
    for key in given:
        if key not in known:
            raise UnknownName(f"{family} setting", key, known, "see `dlmbench show model NAME`")
    return {**known, **given}


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
    for the greedy checks), plus :meth:`sample`."""

    bound = "upper"
    mask_id: int
    device: torch.device

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
        bs = int(self.settings.get("batch_size", 8))
        progress = self._progress(len(pieces))
        for length, idx in sorted(by_len.items()):
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
            mc_samples=int(settings.get("mc_samples", self.settings.get("mc_samples", 1))),
            settings=settings,
        )

    def greedy_match(self, requests: Sequence[ScoreRequest]) -> GreedyResult:
        from ..estimators import iterative_confidence, one_shot_argmax

        method = str(self.settings.get("greedy", "iterative_confidence"))
        if method not in GREEDY_METHODS:
            raise UnknownName("greedy method", method, GREEDY_METHODS)
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
        bs = int(self.settings.get("batch_size", 8))
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
        import os
        import sys

        from tqdm import tqdm

        disable = os.environ.get("DLMBENCH_NO_PROGRESS") == "1" or not sys.stderr.isatty()
        return tqdm(total=total, desc=f"{self.family} bound", unit="seq", disable=disable, file=sys.stderr)
