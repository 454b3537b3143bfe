"""Any Hugging Face causal LM (hub id, local folder, installed package, GGUF file) behind the shared
interface. Every number is exact (``bound="exact"``).

- ``conditional_nll``: ``-log p(cont | ctx) = -sum_i log p(x_i | x_<i)`` over the continuation positions
  (chain rule), float32 log-softmax accumulated in float64. With an empty context the first token is
  scored against the prefix token (the tokenizer's BOS, as lm-eval's ``prefix_token_id``) when there is
  one, otherwise it is left unscored and not counted in ``n_tokens``.
- Sequences longer than the context are scored with a sliding window (HF guide "Perplexity of
  fixed-length models"): targets are scored ``stride`` at a time, each window conditioning on up to
  ``max_length`` previous tokens, and every target is scored exactly once (:func:`plan_windows`).
- ``greedy_match``: every continuation token is the argmax of its conditional (one teacher-forced pass,
  method ``ar_argmax``).
- ``sample``: ancestral sampling with a KV cache; temperature / top-k / top-p and a float64 categorical
  draw (:mod:`dlmbench.diffusion.categorical`); sequence ``j`` draws from its own generator seeded with
  ``request_seed(seed, "ar_sample", j)``, so it does not depend on ``n`` or on batching.

Speed (``benchmarks/ar_loglik.py``): windows from all requests are sorted by length and batched with
right padding (padding sits after every real token, so causal attention never lets it touch a real
position; the attention mask is passed as well); the LM head and the log-softmax are applied only to the
scored positions, in chunks.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dlmbench.diffusion.categorical import sample_from_logits
from dlmbench.errors import BadSetting, BadSpec, CheckpointError
from dlmbench.families.ar.settings import ARSamplingSettings, ARSettings
from dlmbench.seeding import generator, request_seed
from dlmbench.specs import ModelSpec
from dlmbench.specs.settings import validate_settings
from dlmbench.interface import GreedyResult, LanguageModel, NLLResult, SampleResult, ScoreRequest, load_settings, require_finite

MAX_PADDING = 1.25  # a batch's padded area may exceed its real tokens by at most 25%
HEAD_CHUNK = 1024  # scored positions per LM-head/log-softmax chunk (bounds memory to HEAD_CHUNK x V floats)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


# ---------------------------------------------------------------------------------------------------
# Pure planning: which tokens each forward pass sees and which it scores.
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One forward pass: ``inputs = seq[start:end-1]`` predicts ``seq[start+1:end]``; the targets
    ``seq[first:end]`` (``first > start``) are the ones scored here."""

    request: int
    start: int
    first: int
    end: int


def plan_windows(request: int, length: int, first_target: int, max_length: int, stride: int) -> list[Window]:
    """Windows scoring targets ``first_target .. length-1`` of a sequence of ``length`` tokens, each once.

    Inputs are at most ``max_length`` tokens. The first window ends at ``max(max_length + 1, first + 1)``
    (capped at ``length``) so everything that fits is scored with its full history; later windows
    score ``stride`` new targets each, conditioned on the ``max_length`` tokens before the window's end
    (the HF "fixed-length models" sliding window). Requires ``1 <= stride <= max_length``.
    """
    if not 1 <= stride <= max_length:
        raise BadSpec(f"ar setting stride must be between 1 and max_length={max_length}, not {stride}")
    windows: list[Window] = []
    a = max(first_target, 1)
    if a >= length:
        return windows
    b = min(length, max(max_length + 1, a + 1) if a <= max_length else a + stride)
    while True:
        windows.append(Window(request, max(0, b - 1 - max_length), a, b))
        if b >= length:
            return windows
        a, b = b, min(length, b + stride)


def pack_batches(windows: Sequence[Window], batch_size: int, max_padding: float = MAX_PADDING) -> list[list[Window]]:
    """Group windows (longest first) into batches of at most ``batch_size`` whose padded area
    (``count x longest``) is at most ``max_padding`` times their real tokens.

    Sorting alone is not enough: one long document followed by short ones would be padded to the long
    one's width (a 943-token chapter batched with seven 40-token verses costs 8x the compute).
    """
    ordered = sorted(windows, key=lambda w: w.end - w.start, reverse=True)
    batches: list[list[Window]] = []
    cur: list[Window] = []
    real = width = 0
    for w in ordered:
        n = w.end - 1 - w.start
        if cur and (len(cur) >= batch_size or width * (len(cur) + 1) > max_padding * (real + n)):
            batches.append(cur)
            cur, real = [], 0
        if not cur:
            width = n
        cur.append(w)
        real += n
    if cur:
        batches.append(cur)
    return batches


# ---------------------------------------------------------------------------------------------------


def _progress(total: int, desc: str):
    from dlmbench.progress import bar

    return bar(total=total, desc=desc, leave=False)


class ARModel(LanguageModel):
    """A causal LM from ``transformers`` with an :class:`~dlmbench.data.tokenization.HFTokenizer`."""

    family = "ar"
    bound = "exact"
    settings_type = ARSettings

    def __init__(self, model, tokenizer, *, spec: ModelSpec, device: torch.device, settings: ARSettings):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.spec = spec
        self.device = device
        self.settings = settings
        config = model.config
        positions = getattr(config, "max_position_embeddings", None)
        if settings.max_length and positions and settings.max_length > positions:
            raise BadSetting(f"model {spec.name}: setting 'max_length' = {settings.max_length} is not allowed: the model has "
                             f"{positions} positions (max_position_embeddings)")
        ctx = settings.max_length or spec.max_length or positions
        if not ctx:
            raise BadSpec(f"model {spec.name}: unknown context length; set max_length in the card or with --set")
        if positions and ctx > positions:  # the card's max_length: an IndexError deep in the network otherwise
            raise BadSpec(f"model {spec.name}: max_length {ctx} (from the card) is larger than the network's {positions} "
                          f"positions (max_position_embeddings in its config); set max_length to at most {positions}")
        self.max_length = int(ctx)
        self.stride = int(settings.stride or max(1, self.max_length // 2))
        if self.stride > self.max_length:
            raise BadSetting(f"model {spec.name}: setting 'stride' = {self.stride} is not allowed: at most max_length = {self.max_length}")
        self.model_vocab = int(model.get_output_embeddings().weight.shape[0])
        self.prefix_id = self._prefix_id(settings.prefix_token_id)
        self._fast_head = self._check_fast_head()

    # -- set-up ----------------------------------------------------------------------------------
    def _prefix_id(self, value: str | int | None) -> int | None:
        """The token id an empty context is scored against (``value``: ``"auto"``, ``"none"``/None or an id)."""
        if value in (None, "none"):
            return None
        if value == "auto":
            return self.tokenizer.bos_id
        return int(value)

    def sequence_prefix(self, mode: str) -> int | None:
        """The card's prefix token (``prefix_token_id``), the one an empty context is scored against, in every
        packing mode: a document start and an empty context are scored after the same token."""
        return self.prefix_id

    @torch.inference_mode()
    def _check_fast_head(self) -> bool:
        """Whether ``lm_head(base_model(x))`` equals the full forward's logits for this architecture.

        True for GPT-2, LLaMA, Mistral, Qwen, ...; False for models that post-process logits (soft-capping,
        logit scaling), which then take the (slower, equally exact) full forward.
        """
        try:
            x = torch.arange(1, 9, device=self.device).remainder(self.model_vocab).unsqueeze(0)
            full = self.model(input_ids=x).logits.float()
            fast = self.model.get_output_embeddings()(self.model.base_model(input_ids=x).last_hidden_state).float()
            return full.shape == fast.shape and torch.allclose(full, fast, rtol=1e-4, atol=1e-4)
        except Exception:
            return False

    # -- scoring ---------------------------------------------------------------------------------
    def _sequence(self, req: ScoreRequest) -> tuple[list[int], int]:
        """The token sequence fed to the model and the index of its first scored target."""
        ctx, cont = list(req.context), list(req.continuation)
        for t in ctx + cont:
            if not 0 <= t < self.model_vocab:
                raise ValueError(f"token id {t} outside the model's vocabulary (0..{self.model_vocab - 1})")
        if ctx:
            return ctx + cont, len(ctx)
        if self.prefix_id is not None:
            return [self.prefix_id] + cont, 1
        return cont, 1

    def _hidden_and_logits(self, ids: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor):
        """Logits (float32) at positions ``(rows, cols)`` of the batch, in chunks of ``HEAD_CHUNK``."""
        if self._fast_head:
            h = self.model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
            sel = h[rows, cols]
            head = self.model.get_output_embeddings()
            for s in range(0, sel.shape[0], HEAD_CHUNK):
                yield s, head(sel[s : s + HEAD_CHUNK]).float()
        else:
            logits = self.model(input_ids=ids, attention_mask=mask).logits
            sel = logits[rows, cols]
            for s in range(0, sel.shape[0], HEAD_CHUNK):
                yield s, sel[s : s + HEAD_CHUNK].float()

    @torch.inference_mode()
    def _score(self, requests: Sequence[ScoreRequest], desc: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per request: summed NLL (float64), number of scored tokens, whether every target is the argmax."""
        n = len(requests)
        nll = np.zeros(n, dtype=np.float64)
        count = np.zeros(n, dtype=np.int64)
        greedy = np.ones(n, dtype=bool)
        seqs: list[list[int]] = []
        windows: list[Window] = []
        for i, req in enumerate(requests):
            seq, first = self._sequence(req)
            seqs.append(seq)
            windows.extend(plan_windows(i, len(seq), first, self.max_length, self.stride))
        # longest first (memory trouble shows at once), similar lengths together (little padding)
        with _progress(len(windows), desc) as bar:
            for batch in pack_batches(windows, self.settings.batch_size, MAX_PADDING):
                width = max(w.end - 1 - w.start for w in batch)
                ids = torch.zeros((len(batch), width), dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                rows, cols, targets, owner = [], [], [], []
                for r, w in enumerate(batch):
                    seq = seqs[w.request]
                    inp = seq[w.start : w.end - 1]
                    ids[r, : len(inp)] = torch.tensor(inp)
                    mask[r, : len(inp)] = 1
                    # target seq[t] is predicted at input position t - 1 - start
                    rows.extend([r] * (w.end - w.first))
                    cols.extend(range(w.first - 1 - w.start, w.end - 1 - w.start))
                    targets.extend(seq[w.first : w.end])
                    owner.extend([w.request] * (w.end - w.first))
                rows_t = torch.tensor(rows, device=self.device)
                cols_t = torch.tensor(cols, device=self.device)
                tgt = torch.tensor(targets, device=self.device)
                own = np.asarray(owner)
                for s, logits in self._hidden_and_logits(ids.to(self.device), mask.to(self.device), rows_t, cols_t):
                    t = tgt[s : s + logits.shape[0]]
                    # -log softmax(z)_t = logsumexp(z) - z_t  (float32), summed per request in float64
                    tok_nll = (torch.logsumexp(logits, dim=-1) - logits.gather(-1, t[:, None])[:, 0]).double()
                    hit = (logits.argmax(dim=-1) == t).cpu().numpy()
                    o = own[s : s + logits.shape[0]]
                    np.add.at(nll, o, tok_nll.cpu().numpy())
                    np.add.at(count, o, 1)
                    np.logical_and.at(greedy, o, hit)
                bar.update(len(batch))
        return require_finite(nll, f"{self.spec.name}: log-likelihoods"), count, greedy

    def conditional_nll(self, requests: Sequence[ScoreRequest]) -> NLLResult:
        nll, count, _ = self._score(requests, "ar nll")
        return NLLResult(
            nll=nll,
            n_tokens=count,
            stderr=np.zeros(len(requests), dtype=np.float64),
            bound="exact",
            mc_samples=1,
            settings={"max_length": self.max_length, "stride": self.stride, "prefix_token_id": self.prefix_id},
        )

    def greedy_match(self, requests: Sequence[ScoreRequest]) -> GreedyResult:
        _, _, greedy = self._score(requests, "ar greedy")
        return GreedyResult(matches=greedy, method="ar_argmax")

    # -- sampling --------------------------------------------------------------------------------
    @torch.inference_mode()
    def sample(
        self,
        n: int,
        length: int,
        *,
        prefix: Sequence[int] | None = None,
        steps: int | None = None,
        seed: int = 0,
        **settings: Any,
    ) -> SampleResult:
        """Ancestral sampling of ``length`` tokens after ``prefix`` (default: the prefix token).

        ``steps`` is accepted for interface symmetry and must be ``None`` or ``length`` (an AR model
        makes one step per token). ``settings`` override temperature / top_k / top_p / precision.
        """
        current = {k: getattr(self.settings, k) for k in ARSamplingSettings.model_fields}
        st = validate_settings(ARSamplingSettings, {**current, **settings}, "ar sampling") if settings else self.settings
        if steps is not None and int(steps) != int(length):
            raise BadSpec(f"an AR model makes one step per token: steps must equal length ({length}), not {steps}")
        pre = [int(t) for t in (prefix if prefix is not None else [])]
        if not pre:
            if self.prefix_id is None:
                raise BadSpec(f"model {self.spec.name} has no BOS token: give a non-empty prefix to sample from")
            pre = [self.prefix_id]
        if len(pre) + length - 1 > self.max_length:
            raise BadSpec(
                f"prefix ({len(pre)}) + length ({length}) exceeds the context length {self.max_length} of {self.spec.name}"
            )
        out: list[list[int]] = []
        nfe = 0
        row_nfe: list[int] = []  # calls each row took part in (with the KV cache: one per generated token)
        bs = self.settings.batch_size
        with _progress(n, "ar sample") as bar:
            for j0 in range(0, n, bs):
                rows = list(range(j0, min(n, j0 + bs)))
                gens = [generator(request_seed(seed, "ar_sample", j), "cpu") for j in rows]
                tokens, f = self._sample_batch(pre, length, gens, st)
                out.extend(tokens)
                nfe += f
                row_nfe.extend([f] * len(rows))
                bar.update(len(rows))
        texts = [self.tokenizer.decode(t) for t in out]
        info = {
            "sampler": "ar_ancestral",
            "kv_cache": True,
            "temperature": st.temperature,
            "top_k": st.top_k,
            "top_p": st.top_p,
            "precision": st.precision,
            "nfe_per_sample": float(sum(row_nfe) / max(len(row_nfe), 1)),
            "nfe_total": int(sum(row_nfe)),
        }
        return SampleResult(tokens=out, texts=texts, nfe=nfe, settings=info)

    def _sample_batch(self, prefix: list[int], length: int, gens: list[torch.Generator], st: ARSamplingSettings):
        b = len(gens)
        x = torch.tensor([prefix] * b, device=self.device)
        params = inspect.signature(self.model.forward).parameters
        cache_arg = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5.2x
        extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        past = None
        out = torch.empty((b, length), dtype=torch.long)
        nfe = 0
        for step in range(length):
            res = self.model(input_ids=x, use_cache=True, **{cache_arg: past}, **extra)
            nfe += 1
            past = getattr(res, "cache", None)
            if past is None:
                past = getattr(res, "past_key_values", None)
            logits = require_finite(res.logits[:, -1, :].float().cpu(), f"{self.spec.name}: next-token logits")
            for r in range(b):
                out[r, step] = sample_from_logits(
                    logits[r : r + 1],
                    gens[r],
                    temperature=st.temperature,
                    top_k=st.top_k,
                    top_p=st.top_p,
                    precision=st.precision,
                )[0]
            x = out[:, step : step + 1].to(self.device)
        return out.tolist(), nfe

    # -- provenance ------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "bound": self.bound,
            "checkpoint": self.spec.checkpoint.describe(),
            "architecture": type(self.model).__name__,
            "dtype": str(next(self.model.parameters()).dtype).replace("torch.", ""),
            "n_params": int(sum(p.numel() for p in self.model.parameters())),
            **self.settings.model_dump(),
            "max_length": self.max_length,
            "stride": self.stride,
            "prefix_token_id": self.prefix_id,
        }


def _load_weights(spec: ModelSpec, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM

    from dlmbench.data.hub import load_error_line, quiet_transformers, resolve_file

    folder, gguf = resolve_file(spec.checkpoint)
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": False}  # never code from a checkpoint
    if gguf:
        kwargs["gguf_file"] = gguf
    # every tensor of the architecture must come from the file with its shape: transformers would otherwise fill a
    # missing tensor with random values (and explain a wrong shape in a multi-line report); we say it in one line
    kwargs.update(output_loading_info=True, ignore_mismatched_sizes=True)
    where = f"model {spec.name}: cannot load a causal LM from {spec.checkpoint.describe()}"
    try:
        with quiet_transformers():  # its multi-line load report; what matters is raised below
            model, info = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"{where}: {load_error_line(e, folder)}") from None
    _check_loading_info(info, where)
    return model


def _names(keys, n: int = 3) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def _mismatch(entry) -> str:
    """``name [found] (expected [shape])`` from an entry of transformers' ``mismatched_keys`` (``(name, found,
    expected)`` in transformers 5; a bare name in older versions)."""
    if isinstance(entry, (tuple, list)):
        if len(entry) == 3:
            return f"{entry[0]} {list(entry[1])} (expected {list(entry[2])})"
        return str(entry[0])
    return str(entry)


def _check_loading_info(info: dict[str, Any], where: str) -> None:
    """One-line :class:`CheckpointError` from transformers' own loading report (``output_loading_info=True``).

    ``missing_keys``: tensors of the architecture the files lack (transformers would initialise them at random);
    ``unexpected_keys``: tensors in the files the architecture has no place for (a renamed or foreign tensor,
    silently dropped otherwise); ``mismatched_keys``: wrong shapes. transformers already removes what it derives or
    ignores by design, and so do we: a head tied to the input embedding (``tie_word_embeddings``; absent from the
    file, not reported missing) and the patterns a model class declares in ``_keys_to_ignore_on_load_unexpected``
    / ``_keys_to_ignore_on_load_missing`` (GPT-2's causal-mask buffers ``attn.bias`` / ``attn.masked_bias`` of old
    checkpoints, per-layer ``rotary_emb.inv_freq`` and ``position_ids`` buffers). Non-persistent buffers (rotary
    tables, causal masks) are computed from the config and never read from a file.
    """
    missing = sorted(info.get("missing_keys") or ())
    unexpected = sorted(info.get("unexpected_keys") or ())
    mismatched = sorted(_mismatch(k) for k in info.get("mismatched_keys") or ())
    errors = [str(e).strip().splitlines()[0] for e in info.get("error_msgs") or () if str(e).strip()]
    if mismatched:
        raise CheckpointError(f"{where}: {len(mismatched)} tensor(s) have the wrong shape for its config.json: {_names(mismatched)}")
    if missing or unexpected:
        parts = ([f"{len(missing)} tensor(s) missing from the weights: {_names(missing)}"] if missing else []) + (
            [f"{len(unexpected)} unexpected tensor(s) the architecture has no place for: {_names(unexpected)}"] if unexpected else [])
        raise CheckpointError(f"{where}: " + "; ".join(parts))
    if errors:
        raise CheckpointError(f"{where}: {errors[0]}")


def _check_tokenizer(spec: ModelSpec, model, tokenizer) -> None:
    """The tokenizer belongs to the weights (:mod:`dlmbench.data.vocab`): its ids fill the embedding up to the
    ``padded`` allowance (``max(128, rows // 32)`` unused rows: HF embeddings are often rounded up, e.g. to a
    multiple of 64), and the config's BOS / EOS / pad ids are tokens of it; where both name a BOS or EOS they
    agree (the generation config's EOS ids count as the config's, as chat models list several there)."""
    from dlmbench.data.vocab import check_rows, check_special_ids, declared_ids, id_span

    where = f"model {spec.name}"
    rows = int(model.get_input_embeddings().weight.shape[0])
    n_ids = id_span(tokenizer.hf)
    check_rows(n_ids, rows, "padded", where=where)
    config, gen = model.config, getattr(model, "generation_config", None)

    def ids(role: str) -> tuple[int, ...]:
        own = declared_ids(getattr(config, f"{role}_token_id", None))
        extra = declared_ids(getattr(gen, f"{role}_token_id", None)) if gen is not None and own else ()
        return tuple(dict.fromkeys(own + extra))

    check_special_ids({"bos": ids("bos"), "eos": ids("eos"), "pad": ids("pad")},
                      {"bos": tokenizer.bos_id, "eos": tokenizer.eos_id}, n_ids, where=where, agree=("bos", "eos"))


def load_ar(spec: ModelSpec, *, device: str = "cpu", batch_size: int | None = None) -> ARModel:
    """Load ``spec``'s checkpoint and tokenizer (no remote code) and wrap them as an :class:`ARModel`."""
    from dlmbench.data.tokenization import load_tokenizer

    settings = load_settings(ARSettings, spec, batch_size)
    dev = torch.device(device)
    dtype = DTYPES[spec.dtype]
    if dev.type == "cpu" and dtype == torch.float16:
        dtype = torch.float32  # half-precision matmuls are slow or missing on CPU
    tokenizer = load_tokenizer(spec.tokenizer or spec.checkpoint)
    model = _load_weights(spec, dtype).to(dev)
    _check_tokenizer(spec, model, tokenizer)
    return ARModel(model, tokenizer, spec=spec, device=dev, settings=settings)


__all__ = ["ARModel", "Window", "load_ar", "pack_batches", "plan_windows"]
