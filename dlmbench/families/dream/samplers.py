"""Dream's decoding (``generation_utils.py: DreamGenerationMixin._sample`` of Dream-org/Dream-v0-*-7B) as a pure
function over a logits function, with per-row seeds and float64 draws.

The canvas ``x`` is the prompt followed by masks; ``steps`` network calls at times ``t_i = linspace(1, ε, steps + 1)``
(``ε = eps``, default 1e-3). At step ``i`` (``t = t_i``, ``s = t_{i+1}``), with the logits read shifted (the output
at ``j − 1`` predicts ``j``) at the masked positions, after ``temperature`` (if > 0), then ``top_p``, then ``top_k``
(the reference's order: the nucleus is taken on the full distribution, then the top-k cut):

- ``origin``: each masked position is revealed with probability ``1 − s/t`` (all of them at the last step), its
  token drawn from the filtered distribution (argmax at temperature 0): the ancestral sampler of the linear schedule.
- ``maskgit_plus`` / ``topk_margin`` / ``entropy``: a candidate ``x̂_j`` for every masked position (drawn, or the
  argmax at temperature 0) with a confidence: ``p(x̂_j)`` (maskgit_plus), ``p_(1) − p_(2)`` (topk_margin, the two
  largest probabilities) or ``Σ_v p_v log(p_v + 1e-10)`` (entropy: the negative entropy); then
  ``k = int(n_masked · (1 − s/t))`` positions are revealed (all at the last step): the ``k`` most confident, or, with
  ``alg_temp > 0``, ``k`` drawn without replacement from ``softmax(confidence / alg_temp)`` (Gumbel-top-k, which is
  that draw: the reference's ``torch.multinomial(..., replacement=False)``).

As the reference, the schedule (``t``, ``s`` and ``k``) is computed in float32, so ``k`` truncates exactly as there.
dlmbench's choices, recorded by the adapter: every random number of row ``b`` comes from that row's generator
(``seeds[b]``: a row does not depend on the batch), probabilities and draws are float64 (``precision``), ``k`` is
counted per row (the reference averages the mask count over the batch; equal for rows of one request, which
start with the same number of masks), the mask token is never drawn (the reference leaves it in the vocabulary),
and the loop ends early once no row has a masked position left (the remaining reference steps change nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, get_args

import torch

from dlmbench.diffusion.categorical import filter_logits
from dlmbench.diffusion.sampling import SamplerOutput, make_rng

Alg = Literal["origin", "maskgit_plus", "topk_margin", "entropy"]
ALGS: tuple[str, ...] = get_args(Alg)

RowLogits = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``row_logits(x [B, L], positions [B, L] bool) -> [N, V]``: the shifted logits at ``positions.nonzero()`` order."""


def filtered_probs(logits: torch.Tensor, *, temperature: float, top_p: float | None, top_k: int | None,
                   mask_id: int | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``softmax`` of ``logits / temperature`` (unchanged at 0) after the reference's top-p then top-k cut, in ``dtype``;
    the mask token's probability is 0."""
    z = logits.to(dtype)
    if mask_id is not None and 0 <= mask_id < z.shape[-1]:
        z = z.clone()
        z[..., mask_id] = float("-inf")
    if temperature > 0:
        z = z / temperature
    if top_p is not None and top_p < 1:
        z = filter_logits(z, top_p=top_p)
    if top_k is not None:
        z = filter_logits(z, top_k=top_k)
    return torch.softmax(z, dim=-1)


def confidence_of(probs: torch.Tensor, tokens: torch.Tensor, alg: str) -> torch.Tensor:
    """The reference's ``sample_tokens`` confidences of the candidates ``tokens`` under ``probs [N, V]``."""
    if alg == "maskgit_plus":
        return probs.gather(-1, tokens[:, None]).squeeze(-1)
    if alg == "topk_margin":
        top2 = probs.topk(2, dim=-1).values
        return top2[:, 0] - top2[:, 1]
    if alg == "entropy":
        return (probs * torch.log(probs + 1e-10)).sum(-1)
    raise ValueError(f"unknown Dream alg {alg!r}; known: {', '.join(ALGS)}")


def transfer_count(n_masked: int, t: torch.Tensor, s: torch.Tensor, last: bool) -> int:
    """``int(n · (1 − s/t))`` in float32 as the reference (all ``n`` at the last step)."""
    if last:
        return int(n_masked)
    return int(torch.tensor(float(n_masked), dtype=torch.float32) * (1 - s / t))


def dream_sample(row_logits: RowLogits, x: torch.Tensor, *, mask_id: int, steps: int, seeds: Sequence[int],
                 alg: Alg = "entropy", eps: float = 1e-3, temperature: float = 0.0, top_p: float | None = None,
                 top_k: int | None = None, alg_temp: float | None = None, precision: str = "float64") -> SamplerOutput:
    """Fill the ``mask_id`` positions of the canvas ``x [B, L]`` with Dream's decoding (module docstring).

    Positions that are not masked at the start are never changed. Returns the canvas, the number of network calls
    (``nfe``) and the calls each row took part in (``row_nfe``: every call includes every row)."""
    if alg not in ALGS:
        raise ValueError(f"unknown Dream alg {alg!r}; known: {', '.join(ALGS)}")
    if steps < 1:
        raise ValueError("steps must be >= 1")
    dtype = torch.float64 if precision == "float64" else torch.float32
    x = x.clone()
    B = x.shape[0]
    rng = make_rng(B, seeds=list(seeds), device="cpu")
    timesteps = torch.linspace(1, eps, steps + 1)  # float32, as the reference
    nfe = 0
    for i in range(steps):
        mask_index = x == mask_id
        if not bool(mask_index.any()):
            break
        logits = row_logits(x, mask_index)  # [N, V], rows in mask_index.nonzero() order
        nfe += 1
        t, s, last = timesteps[i], timesteps[i + 1], i == steps - 1
        rows, cols = mask_index.nonzero(as_tuple=True)
        for b in range(B):
            sel = (rows == b).nonzero(as_tuple=True)[0]
            if sel.numel() == 0:
                continue
            pos = cols[sel]
            probs = filtered_probs(logits[sel], temperature=temperature, top_p=top_p, top_k=top_k, mask_id=mask_id,
                                   dtype=dtype)
            rb = torch.tensor([b])
            if alg == "origin":
                p_transfer = 1.0 if last else float(1 - s / t)
                reveal = rng.uniform((pos.numel(),), rows=rb)[0] < p_transfer
                if bool(reveal.any()):
                    chosen = probs[reveal.to(probs.device)]
                    tok = chosen.argmax(-1) if temperature == 0 else rng.categorical(chosen[None], precision, rows=rb)[0]
                    x[b, pos[reveal.to(pos.device)]] = tok.to(x.device)
                continue
            tok = probs.argmax(-1) if temperature == 0 else rng.categorical(probs[None], precision, rows=rb)[0].to(probs.device)
            conf = confidence_of(probs, tok, alg)
            k = transfer_count(pos.numel(), t, s, last)
            if k <= 0:
                continue
            if alg_temp is None or alg_temp == 0:
                pick = torch.topk(conf, k).indices
            else:  # Gumbel-top-k = k draws without replacement from softmax(conf / alg_temp)
                u = rng.uniform((pos.numel(),), rows=rb)[0].to(conf.device)
                keys = torch.log_softmax(conf.to(torch.float64) / alg_temp, -1) - torch.log(-torch.log1p(-u))
                pick = torch.topk(keys, k).indices
            x[b, pos[pick]] = tok[pick].to(x.device)
    return SamplerOutput(x, nfe, torch.full((B,), nfe, dtype=torch.long))


__all__ = ["ALGS", "Alg", "confidence_of", "dream_sample", "filtered_probs", "transfer_count"]
