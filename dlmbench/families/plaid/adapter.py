"""Plaid 1B (Gulrajani & Hashimoto, 2023; ``igul222/plaid``): a continuous (Gaussian) diffusion LM over unit-norm
16-dim token embeddings, through the shared interface.

- ``conditional_nll`` / ``nll``: Plaid's continuous-time variational bound (``train.py`` evaluation; see
  :mod:`dlmbench.families.plaid.estimator`): of the ``mc_samples`` draws of a request, 1/8 (``reconst_prob``;
  4 of 32) estimate the reconstruction term at ``t = 0`` and the rest the diffusion integrand at times stratified
  over ``[0, 1)`` (``time_sampling: stratified``; the reference's evaluation batch, per request), plus the exact
  prior KL, self-conditioning unrolled; stderr from the two parts (i.i.d. over the reconstruction rows, collapsed
  strata over the diffusion rows); labelled ``upper``. With an empty context this is exactly the reference
  bound on ``−log p(x)``. With a context, every position is noised at the same ``t`` and only the
  continuation's terms are summed: an upper bound on ``−log p̃(continuation | context)`` for the *replacement*
  conditional of the model (context latents drawn from ``q(z_t | context)`` at every step). Plaid's network has a
  single noise level per sequence and the reference has no clean-context likelihood, so the context is not clean.
- ``greedy_match``: ``replacement_ddim`` — a deterministic decode: the reference's DDIM update (``ddim_sampler``,
  score temperature 1) from ``z_1 = 0`` for the continuation, with the context latents replaced at every step by
  their noise-free mean ``α_t E[context]``; a match iff the final argmax equals the continuation.
- ``sample`` / ``infill``: ``sample.py``'s VDM ancestral sampler (score temperature 0.9, self-conditioning,
  float64 updates); a prefix (and the known tokens of an infill) is imposed as in ``sample.py`` by token
  guidance (weight ``guidance_weight`` = 2.0), i.e. softly: the returned text is the generated sequence after the
  prefix (infill returns the whole sequence with the known tokens written back).

Weights: the release archive (``plaid1b_weights.tar.gz.*``, https://github.com/igul222/plaid/releases/tag/v1.0.0)
unpacked into a local folder, plus the tokenizer ``misc/owt2_tokenizer.json`` from the repository.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlmbench.errors import BadSpec, CheckpointError
from dlmbench.families.plaid.settings import SAMPLERS, PlaidSettings
from dlmbench.specs import ModelSpec
from dlmbench.interface import GreedyResult, SampleResult, ScoreRequest, load_settings
from dlmbench.diffusion.adapter import DiffusionLM


TOKENIZER_FILE = "owt2_tokenizer.json"
RELEASE_URL = "https://github.com/igul222/plaid/releases/tag/v1.0.0"
TOKENIZER_URL = "https://github.com/igul222/plaid/blob/main/misc/owt2_tokenizer.json"


def _download_hint(folder: Path) -> str:
    return (
        f"download the parts plaid1b_weights.tar.gz.* from {RELEASE_URL}, unpack them with "
        f"`cat plaid1b_weights.tar.gz.* | tar xvzf -` and move the files (noise_schedule.pt, gamma_bounds.pt, "
        f"embedding_matrix.pt, model.pt) into {folder}; then put the tokenizer {TOKENIZER_URL} there as "
        f"{TOKENIZER_FILE} (or point the card's checkpoint.local at the unpacked folder)"
    )


class PlaidTokenizer:
    """Plaid's OWT2 byte-level BPE (``tokenizers`` JSON; id 0 = the end-of-text token between documents)."""

    def __init__(self, path: Path):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(path))
        self.name = str(path)
        self.vocab_size = int(self.tok.get_vocab_size())
        self.bos_id = None
        self.eos_id = 0
        self.mask_id = None

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int]) -> str:
        # sample.py decodes with skip_special_tokens=False: document boundaries stay visible
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def token_text(self, token_id: int) -> str:
        """The vocabulary entry of one id, special tokens included."""
        return str(self.tok.id_to_token(int(token_id)))


class PlaidModel(DiffusionLM):
    family = "plaid"
    bound = "upper"
    mask_id = None  # type: ignore[assignment]
    samplers = SAMPLERS
    settings_type = PlaidSettings
    settings: PlaidSettings

    def __init__(self, modules, tokenizer, *, spec: ModelSpec, device: torch.device, settings: PlaidSettings, folder: Path):
        self.net = modules
        self.tokenizer = tokenizer
        self.spec = spec
        self.device = device
        self.settings = settings
        self.folder = folder
        self.max_length = spec.max_length or 1024

    # -- likelihood ---------------------------------------------------------------------------------
    def _bound_rows(self, x0, score_mask, seeds):
        from dlmbench.families.plaid.estimator import plaid_vlb_mc

        with torch.inference_mode():
            est = plaid_vlb_mc(self.net, x0, score_mask, seeds, num_samples=self.settings.mc_samples,
                               batch_size=self.settings.batch_size, reconst_prob=self.settings.reconst_prob,
                               time_sampling=self.settings.time_sampling)
        return est.mean, est.stderr, dict(est.settings)

    # -- greedy check -------------------------------------------------------------------------------
    def greedy_match(self, requests: Sequence[ScoreRequest]) -> GreedyResult:
        from dlmbench.families.plaid.samplers import replacement_ddim_decode

        method = self.settings.greedy  # replacement_ddim, the only one
        out = np.zeros(len(requests), dtype=bool)
        steps = self.settings.greedy_steps
        max_len = int(self.max_length)
        for i, req in enumerate(requests):
            if not req.continuation:
                raise BadSpec(f"request {i} has an empty continuation: nothing to check")
            cont = list(req.continuation)[:max_len]
            ctx = list(req.context)[max(0, len(req.context) - (max_len - len(cont))):] if len(cont) < max_len else []
            x0 = torch.tensor([ctx + cont], dtype=torch.long, device=self.device)
            known = torch.zeros_like(x0, dtype=torch.bool)
            known[:, : len(ctx)] = True
            with torch.inference_mode():
                pred = replacement_ddim_decode(self.net, x0, known, steps=steps)
            out[i] = bool((pred[0, len(ctx):] == x0[0, len(ctx):]).all())
        return GreedyResult(matches=out, method=method)

    # -- sampling -----------------------------------------------------------------------------------
    def _sample_settings(self, steps: int | None, settings: dict[str, Any]) -> PlaidSettings:
        """The settings of one sampling call (``steps`` and ``settings`` over the model's), validated; the old
        name ``sampling_steps`` is read as ``steps`` (:mod:`dlmbench.families.plaid.settings`)."""
        given = dict(settings)
        if steps is not None:
            given.pop("sampling_steps", None)
            given["steps"] = steps
        return self._with(given, "sampling")

    def _run_sampler(self, n: int, length: int, guidance, seed: int, st: PlaidSettings):
        from dlmbench.families.plaid.samplers import vdm_ancestral_sample

        return vdm_ancestral_sample(self.net, n, length, steps=st.steps, seed=seed, score_temp=st.score_temp,
                                    initial_noise_scale=st.initial_noise_scale, guidance=guidance,
                                    ddim=st.sampler == "ddim", device=self.device)

    def _record(self, st: PlaidSettings, guided: bool) -> dict[str, Any]:
        rec = {"sampler": f"plaid_vdm_{st.sampler}", "steps": st.steps, "score_temp": st.score_temp,
               "initial_noise_scale": st.initial_noise_scale, "precision": "float64"}
        if guided:
            rec["guidance_weight"] = st.guidance_weight
        return rec

    def sample(self, n: int, length: int, *, prefix=None, steps=None, seed: int = 0, **settings: Any) -> SampleResult:
        from dlmbench.families.plaid.samplers import prefix_guidance

        st = self._sample_settings(steps, settings)
        prompt = [int(t) for t in (prefix or [])]
        total = len(prompt) + int(length)
        if total > int(self.max_length):
            raise BadSpec(f"plaid: prefix + length = {total} exceeds the model's {self.max_length} positions")
        guidance = prefix_guidance(prompt, st.guidance_weight) if prompt else []
        tokens, nfe = self._run_sampler(n, total, guidance, seed, st)
        gen = tokens[:, len(prompt):].tolist()
        return SampleResult(gen, [self.tokenizer.decode(g) for g in gen], int(nfe), self._record(st, bool(prompt)))

    def infill(self, tokens: Sequence[int | None], *, steps: int | None = None, seed: int = 0, **settings: Any) -> SampleResult:
        from dlmbench.families.plaid.samplers import Guidance

        st = self._sample_settings(steps, settings)
        w = st.guidance_weight
        guidance = [Guidance(int(t), w, i) for i, t in enumerate(tokens) if t is not None]
        out, nfe = self._run_sampler(1, len(tokens), guidance, seed, st)
        filled = [int(t) if t is not None else int(o) for t, o in zip(tokens, out[0].tolist())]
        return SampleResult([filled], [self.tokenizer.decode(filled)], int(nfe), self._record(st, True))

    def describe(self) -> dict[str, Any]:
        n_params = sum(p.numel() for p in self.net.parameters())
        return {"family": self.family, "bound": "upper", "checkpoint": str(self.folder),
                "compute_dtype": str(self.net.model.compute_dtype).replace("torch.", ""), "n_params": int(n_params), **self.settings.model_dump()}


def _local_path(ref) -> Path:
    """The path of a ``local`` reference, or of a ``package`` one (a folder or file shipped inside a package,
    e.g. the zoo's ``dlmbench/cards/models/zoo/plaid-kjv``)."""
    if ref.source == "package":
        from dlmbench.data.hub import package_folder

        return package_folder(ref.location)
    return Path(ref.location).expanduser()


def _tokenizer_path(spec: ModelSpec, folder: Path) -> Path:
    if spec.tokenizer is not None:
        if spec.tokenizer.source not in ("local", "package"):
            raise CheckpointError(f"model {spec.name}: the Plaid tokenizer must be a local file or folder ({TOKENIZER_FILE})")
        p = _local_path(spec.tokenizer)
        candidates = [p] if p.is_file() else [p / TOKENIZER_FILE, p / "tokenizer.json"]
    else:
        candidates = [folder / TOKENIZER_FILE, folder / "tokenizer.json"]
    for c in candidates:
        if c.is_file():
            return c
    raise CheckpointError(
        f"model {spec.name}: no Plaid tokenizer at {candidates[0]}; download {TOKENIZER_URL} (the repository's "
        f"misc/owt2_tokenizer.json) and save it as {folder / TOKENIZER_FILE}"
    )


def check_plaid_tokenizer(tokenizer: PlaidTokenizer, rows: int, *, where: str) -> None:
    """The tokenizer belongs to the weights (:mod:`dlmbench.data.vocab`): ``exact`` size (the release's
    ``embedding_matrix`` and ``output_linear`` have one row per OWT2 token, 32768, no padding), and id 0 is a
    special token, the end-of-text that joins documents (``lib/datasets.py``: ``_to_chunks``), never text."""
    from dlmbench.data.vocab import check_rows

    check_rows(tokenizer.vocab_size, rows, "exact", where=where)
    added = tokenizer.tok.get_added_tokens_decoder()
    eot = added.get(tokenizer.eos_id)
    if eot is None or not eot.special:
        raise CheckpointError(f"{where}: id {tokenizer.eos_id} is the ordinary token {tokenizer.tok.id_to_token(tokenizer.eos_id)!r}, "
                              "not a special end-of-text token as Plaid's tokenizer has; the tokenizer does not belong "
                              "to these weights")


def load_plaid(spec: ModelSpec, *, device: str = "cpu", batch_size: int | None = None) -> PlaidModel:
    """Load a Plaid weights folder (``spec.checkpoint`` must be ``local``) with the card's settings.

    The Transformer runs under bfloat16 autocast when ``spec.dtype`` is bfloat16 on CUDA (as the reference),
    in float32 otherwise; the schedule, γ, α/σ and all bound terms are float64.
    """
    from dlmbench.families.plaid.backbone import MODULE_NAMES, load_plaid_modules

    settings = load_settings(PlaidSettings, spec, batch_size)
    if spec.checkpoint.source not in ("local", "package"):
        raise CheckpointError(
            f"model {spec.name}: Plaid weights are not on a hub; set checkpoint: {{local: /path/to/plaid1b_weights}} "
            f"and {_download_hint(Path('/path/to/plaid1b_weights'))}"
        )
    folder = _local_path(spec.checkpoint)
    missing = [n for n in MODULE_NAMES if not (folder / f"{n}.pt").is_file() and not (folder / f"{n}.safetensors").is_file()]
    if not folder.is_dir() or missing:
        what = "does not exist" if not folder.is_dir() else f"lacks {', '.join(m + '.pt' for m in missing)}"
        raise CheckpointError(f"model {spec.name}: the Plaid weights folder {folder} {what}; {_download_hint(folder)}")
    dev = torch.device(device)
    compute = torch.bfloat16 if (dev.type == "cuda" and spec.dtype == "bfloat16") else torch.float32
    if spec.dtype == "float16" and dev.type == "cuda":
        compute = torch.float16
    modules = load_plaid_modules(folder, device=dev, compute_dtype=compute)
    tokenizer = PlaidTokenizer(_tokenizer_path(spec, folder))
    check_plaid_tokenizer(tokenizer, modules.config.vocab_size, where=f"model {spec.name} (tokenizer {tokenizer.name})")
    return PlaidModel(modules, tokenizer, spec=spec, device=dev, settings=settings, folder=folder)


__all__ = ["PlaidModel", "PlaidTokenizer", "load_plaid"]
