"""What the MDLM and SEDD adapters share: one DiT backbone (:mod:`.backbones.dit`), the GPT-2 (or BERT)
tokenizer with the mask / absorbing token appended, the noise schedule, the forward pass in the card's
dtype, the noise level of the greedy check, ``describe()`` and loading from a card.

The families differ only in how the raw logits are read (MDLM: SUBS log-probabilities; SEDD: log concrete
scores), which bound is estimated, and which samplers run; those live in :mod:`.mdlm` and :mod:`.sedd`.

Tokenizer and mask id (kuleshov-group/mdlm ``diffusion.py`` ``Diffusion.__init__`` and ``dataloader.py``
``get_tokenizer``; SEDD ``graph_lib.py`` ``Absorbing``): the OWT checkpoints use GPT-2's 50,257 tokens plus
one mask / absorbing token at id 50257 (``V = 50258``, the last row of the embedding); MDLM's LM1B models
use ``bert-base-uncased`` and its own ``[MASK]`` (103). The tokenizer is the card's ``tokenizer`` if given,
else one stored next to the weights (a folder with tokenizer files), else the hub's ``gpt2`` (or
``bert-base-uncased`` for a 30,522-token model).

Numerics: card ``dtype: float32`` runs the whole network in float32 (the default; the reference's mixed
precision differs slightly, by an amount its authors do not state; they also publish an fp32 variant,
https://huggingface.co/kuleshov-group/mdlm-no_flashattn-fp32-owt); ``dtype: bfloat16`` keeps
float32 weights and runs the blocks and output layer under bfloat16 autocast on CUDA, as the reference code
does (float32 on CPU). Logits are cast to float32 before any normalisation; the estimators accumulate in
float64.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from dlmbench.errors import CheckpointError
from dlmbench.interface import require_finite
from dlmbench.diffusion.schedules import LogLinearNoise, NoiseSchedule
from dlmbench.specs import CheckpointRef, ModelSpec
from dlmbench.diffusion.adapter import CanvasDiffusionLM
from dlmbench.diffusion.settings import CanvasSettings
from dlmbench.interface import load_settings

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json")


def weights_dtype(card_dtype: str, device: torch.device) -> tuple[torch.dtype, bool]:
    """``(dtype of the weights, bfloat16 autocast?)`` for a card's ``dtype`` on ``device``."""
    if card_dtype == "float64":
        return torch.float64, False
    if card_dtype == "bfloat16":
        return torch.float32, device.type == "cuda"  # the reference: fp32 weights, bf16 autocast of the trunk
    if card_dtype == "float16" and device.type == "cuda":
        return torch.float16, False
    return torch.float32, False


def default_tokenizer_ref(vocab_size: int) -> CheckpointRef:
    from dlmbench.nets.dit import BERT_VOCAB

    return CheckpointRef("hub", "bert-base-uncased" if vocab_size == BERT_VOCAB else "gpt2")


def check_dit_tokenizer(tok, config, *, where: str) -> None:
    """The tokenizer belongs to the DiT (:mod:`dlmbench.data.vocab`; one-line CheckpointError otherwise).

    Size: GPT-2 convention (``config.mask_id`` None: the mask / absorbing token is the embedding's last row, id
    ``V - 1``): ``mask_appended``, i.e. ``V - 1`` tokens (GPT-2's 50257 for MDLM-OWT / SEDD's 50258 rows), or ``V``
    when the tokenizer holds a token at the last id (a tokenizer saved by MDLM carries ``[PAD]`` there); that
    token must then be a special token, never text the tokenizer can emit. BERT convention (``[MASK]`` = 103 is
    one of the tokenizer's own ids, MDLM on LM1B): ``exact``, and the tokenizer's mask token is that id. In both,
    the tokenizer's BOS / EOS are real tokens, not the mask.
    """
    from dlmbench.data.vocab import check_rows, check_special_ids, id_span

    hf = getattr(tok, "hf", None)
    n_ids = id_span(hf) if hf is not None else int(tok.vocab_size)
    v, mask = int(config.vocab_size), int(config.mask_index)
    if config.mask_id is None:
        check_rows(n_ids, v, "mask_appended", where=where)
        if n_ids == v and hf is not None:
            specials = {int(i) for i in hf.all_special_ids} | {int(i) for i, t in hf.added_tokens_decoder.items() if t.special}
            if mask not in specials:
                raise CheckpointError(f"{where}: the model's mask id {mask} (its last embedding row) is the tokenizer's "
                                      f"ordinary token {hf.convert_ids_to_tokens(mask)!r}; the tokenizer does not belong "
                                      "to these weights")
    else:
        check_rows(n_ids, v, "exact", where=where)
        check_special_ids({"mask": mask}, {"mask": tok.mask_id}, n_ids, where=where, agree=("mask",))
    for role in ("bos", "eos"):
        own = getattr(tok, f"{role}_id", None)
        if own is not None and int(own) == mask:
            raise CheckpointError(f"{where}: the tokenizer's {role} id {own} is the model's mask id; the tokenizer "
                                  "does not belong to these weights")


def load_dit_tokenizer(spec: ModelSpec, provenance: dict[str, Any], config) -> Any:
    """The card's tokenizer, else one saved beside the weights, else the hub default; mask id checked."""
    from dlmbench.data.tokenization import load_tokenizer

    if spec.tokenizer is not None:
        ref = spec.tokenizer
    else:
        folder = Path(str(provenance.get("path", ""))).parent
        local = any((folder / f).is_file() for f in TOKENIZER_FILES)
        ref = CheckpointRef("local", str(folder)) if local else default_tokenizer_ref(config.vocab_size)
    tok = load_tokenizer(ref)
    check_dit_tokenizer(tok, config, where=f"model {spec.name} (tokenizer {ref.describe()})")
    tok.mask_id = int(config.mask_index)
    return tok


class DiTLM(CanvasDiffusionLM):
    """Base of :class:`~.mdlm.MDLMModel` and :class:`~.sedd.SEDDModel` (see the module docstring).

    ``settings_type``: the family's typed settings (a :class:`~dlmbench.diffusion.settings.CanvasSettings`)."""

    settings_type: type[CanvasSettings] = CanvasSettings
    settings: CanvasSettings

    def __init__(self, backbone, config, provenance: dict[str, Any], tokenizer, *, spec: ModelSpec,
                 device: torch.device, settings: CanvasSettings, schedule: NoiseSchedule | None = None):
        self.backbone = backbone
        self.config = config
        self.provenance = dict(provenance)
        self.tokenizer = tokenizer
        self.spec = spec
        self.device = device
        self.settings = settings
        self.mask_id = int(config.mask_index)
        self.max_length = int(spec.max_length or config.length)
        self.schedule = schedule if schedule is not None else LogLinearNoise(settings.noise_eps)
        self._wdtype = next(backbone.parameters()).dtype

    # -- the network ---------------------------------------------------------------------------------
    def _logits(self, x_t: torch.Tensor, sigma: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Raw backbone output ``[B, L, V]`` in float32 (float64 for a float64 model); ``sigma [B]``; with
        ``positions`` (bool ``[B, L]``) only the rows ``[N, V]`` there."""
        s = sigma.to(device=x_t.device, dtype=self._wdtype if self._wdtype in (torch.float32, torch.float64) else torch.float32)
        out = self.backbone(x_t, s) if positions is None else self.backbone(x_t, s, positions=positions)
        out = out if out.dtype in (torch.float32, torch.float64) else out.float()
        return require_finite(out, f"{self.family} {self.spec.name}: network output")

    def _sigma(self, x_t: torch.Tensor, sigma: torch.Tensor | None) -> torch.Tensor:
        """``sigma`` as given; for a time-free query (``None``: the greedy checks) the noise level whose
        masking probability equals each row's fraction of masked positions, clipped to the schedule's range
        ``[mask_prob(sampling_eps), mask_prob(1)]`` (ignored by MDLM-OWT, which is not time-conditioned)."""
        if sigma is not None:
            return sigma
        frac = (x_t == self.mask_id).to(torch.float64).mean(dim=-1)
        ends = torch.tensor([self.settings.sampling_eps, 1.0], dtype=torch.float64, device=x_t.device)
        lo, hi = self.schedule.mask_prob(ends).tolist()
        return -torch.log1p(-frac.clamp(lo, hi))

    # -- provenance ----------------------------------------------------------------------------------
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
            "mask_id": self.mask_id,
            "time_conditioning": bool(self.config.time_conditioning),
            "schedule": repr(self.schedule),
            "dtype": str(self._wdtype).replace("torch.", ""),
            "autocast_bf16": bool(getattr(self.backbone, "autocast_bf16", False)),
            "n_params": int(sum(p.numel() for p in self.backbone.parameters())),
            **self.settings.model_dump(),
        }


def load_dit_lm(cls: type[DiTLM], spec: ModelSpec, load_backbone: Callable[..., Any], *, device: str, batch_size: int | None,
                check: Callable[[Any, dict[str, Any], CanvasSettings], NoiseSchedule | None]) -> DiTLM:
    """Shared loader: the card's settings validated by ``cls.settings_type`` (before any weights load), backbone
    via ``load_backbone`` (the ``load_*_backbone`` of :mod:`dlmbench.nets.dit_checkpoints`), tokenizer, and
    ``check(config, provenance, settings)`` (the family's own validation, returning its noise schedule or
    ``None`` for the log-linear default)."""
    settings = load_settings(cls.settings_type, spec, batch_size)
    dev = torch.device(device)
    dtype, autocast = weights_dtype(spec.dtype, dev)
    backbone, config, provenance = load_backbone(spec.checkpoint, dev, dtype, use_ema=settings.use_ema)
    backbone.autocast_bf16 = autocast
    schedule = check(config, provenance, settings)
    tokenizer = load_dit_tokenizer(spec, provenance, config)
    return cls(backbone, config, provenance, tokenizer, spec=spec, device=dev, settings=settings, schedule=schedule)
