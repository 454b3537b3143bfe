"""Typed settings of every task type, of a task card's ``packing`` block and of its ``dataset`` block.

One :class:`~dlmbench.specs.settings.Settings` subclass per task type (the runners are in
``dlmbench/tasks/<type>.py``): each default is written once, here, in its field, with its type, its range
(``Field(ge=...)``) or its choices (``Literal``) and a ``description`` that ``dlmbench show task NAME`` and
``docs/settings.md`` print. A task card's ``settings:`` and ``--set`` hold *overrides*; the typed object is
overrides plus defaults, validated before any model loads (:func:`dlmbench.runner.resolve.resolve`).

``sampler`` (genppl, mauve, reversal, reasoning) stays a mapping: its keys are the model family's own
settings, passed to ``model.sample`` for that task only, and are validated against the family's settings
type at resolve time (see :mod:`dlmbench.runner.resolve`).

Settings that name another model card (the gen-PPL evaluator, the MAUVE featurizer) are listed in
``model_card_fields``: resolve looks the card up in the run's registry and stores it as ``<field>_card``
(an internal field, not shown to users), so the card travels with the job to other processes.

This module imports neither torch nor :mod:`dlmbench.tasks` (specs sit on the lowest floor).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from dlmbench.errors import UnknownName
from dlmbench.specs.settings import Settings

# a field marked with this in json_schema_extra is filled by dlmbench itself, never by a user
INTERNAL = {"internal": True}

SAMPLER_DESCRIPTION = (
    "Extra sampler settings for this task only (keys are the model family's settings, e.g. temperature, "
    "sampler, top_p), passed to model.sample."
)


class TaskSettings(Settings):
    """Settings every task type accepts."""

    model_card_fields: ClassVar[tuple[str, ...]] = ()

    regress: dict[str, Any] | None = Field(
        None,
        description="Per-metric tolerances for `dlmbench regress` (docs/regress.md); never changes what the task computes.",
    )


class PerplexitySettings(TaskSettings):
    """``perplexity``: token-weighted perplexity, NLL per token, bits per byte (dlmbench/tasks/perplexity.py).
    Its knobs are the card's ``packing`` block (:class:`PackingSettings`, presets in :data:`PACKING_PRESETS`)."""


class LambadaSettings(TaskSettings):
    """``lambada``: last-word accuracy and target perplexity (dlmbench/tasks/lambada.py)."""

    strip_punctuation: bool = Field(False, description="Cut trailing punctuation and closing quotes before taking the last word.")
    target_delimiter: str = Field(" ", min_length=1, description="Separator before the last word; the target is delimiter + word.")


class GenPPLSettings(TaskSettings):
    """``genppl``: generative perplexity with unigram-entropy checks (dlmbench/tasks/genppl.py)."""

    model_card_fields: ClassVar[tuple[str, ...]] = ("eval_model",)

    n_samples: int = Field(16, ge=1, description="Samples to generate (--limit overrides it).")
    length: int = Field(128, ge=1, description="Tokens per sample.")
    steps: int | None = Field(None, ge=1, description="Sampling steps (None: the model's own setting).")
    convention: Literal["mdlm", "sedd", "bos"] = Field(
        "mdlm", description="How samples are scored: mdlm (retokenize, token-weighted), sedd (same ids, mean of PPLs), bos (BOS prepended)."
    )
    eval_model: str = Field("gpt2-large", min_length=1, description="Model card of the autoregressive evaluator.")
    entropy_margin: float = Field(0.2, ge=0, description="Flag samples whose mean unigram entropy is this many nats below real text.")
    sampler: dict[str, Any] = Field(default_factory=dict, description=SAMPLER_DESCRIPTION)
    eval_model_card: dict[str, Any] | None = Field(None, description="The resolved eval_model card (set by dlmbench).", json_schema_extra=INTERNAL)


class ReversalSettings(TaskSettings):
    """``reversal``: the reversal curse, same vs reverse direction (dlmbench/tasks/reversal.py)."""

    same_file: str | None = Field(None, min_length=1, description="JSONL file {prompt, completion} asked in the trained direction (required).")
    reverse_file: str | None = Field(None, min_length=1, description="JSONL file {prompt, completion} asked in the reverse direction (required).")
    max_new_tokens: int = Field(24, ge=1, description="Tokens generated per prompt.")
    sampler: dict[str, Any] = Field(default_factory=dict, description=SAMPLER_DESCRIPTION + " Greedy (temperature 0) by default.")

    @model_validator(mode="after")
    def _files_given(self) -> ReversalSettings:
        missing = [k for k in ("same_file", "reverse_file") if getattr(self, k) is None]
        if missing:
            raise ValueError(f"reversal tasks need {' and '.join(missing)} (a JSONL file inside the dataset folder)")
        return self


class LmevalSettings(TaskSettings):
    """``lmeval``: any lm-evaluation-harness task through the bridge (dlmbench/tasks/lmeval.py)."""

    lm_eval_task: str | list[str] | None = Field(None, description="lm-eval task, group or tag name, or a list of them (required).")
    num_fewshot: int | None = Field(None, ge=0, description="Few-shot examples (None: the task's own default).")
    lm_eval_task_dir: str | None = Field(None, description="Folder of lm_eval/tasks holding the task: index only that (faster).")
    include_path: str | list[str] | None = Field(None, description="Folder(s) of your own lm-eval task YAMLs.")
    include_defaults: bool = Field(True, description="Index lm-eval's own tasks.")
    data_files: str | dict[str, str] | None = Field(
        None, description="Local data: a file (the evaluation split) or {split: file}; {task} and {dataset_name} expand."
    )
    greedy: Literal["auto", "true", "false"] | bool = Field(
        "auto", description="is_greedy checks: auto (skipped for multiple choice), true or false."
    )
    fewshot_seed: int = Field(1234, description="Seed of the few-shot sampler (lm-eval's default).")
    bootstrap_iters: int = Field(100000, ge=0, description="Bootstrap iterations for the stderr of non-mean aggregations (lm-eval's default).")
    prefix: Literal["lmeval", "card"] = Field(
        "lmeval", description="Prefix token of an empty context: lmeval (lm-eval hf's rule: BOS, else EOS) or card (the model card's)."
    )

    @model_validator(mode="after")
    def _task_given(self) -> LmevalSettings:
        if not self.lm_eval_task:
            raise ValueError("lmeval tasks need lm_eval_task (an lm-eval task or group name)")
        return self


class MauveSettings(TaskSettings):
    """``mauve``: MAUVE between model samples and real text (dlmbench/tasks/mauve.py; mauve-text's defaults)."""

    model_card_fields: ClassVar[tuple[str, ...]] = ("featurizer",)

    n_samples: int = Field(5000, ge=2, description="Samples to generate and reference texts to take (--limit overrides it).")
    length: int = Field(1024, ge=1, description="Tokens per sample and per reference piece.")
    steps: int | None = Field(None, ge=1, description="Sampling steps (None: the model's own setting).")
    sampler: dict[str, Any] = Field(default_factory=dict, description=SAMPLER_DESCRIPTION)
    featurizer: str = Field("gpt2-large", min_length=1, description="Model card of the autoregressive featurizer.")
    max_text_length: int = Field(1024, ge=1, description="Featurizer tokens per text (longer texts are cut).")
    featurize_batch_size: int = Field(8, ge=1, description="Texts per featurizer forward pass (does not change results).")
    num_buckets: Literal["auto"] | int = Field("auto", description="k-means clusters: auto = max(2, round(n/10)), or an integer >= 2.")
    kmeans_seed: int = Field(25, description="k-means seed.")
    kmeans_explained_var: float = Field(0.9, gt=0, le=1, description="Variance kept by the PCA before k-means.")
    kmeans_num_redo: int = Field(5, ge=1, description="k-means restarts.")
    kmeans_max_iter: int = Field(500, ge=1, description="k-means iterations.")
    scaling_factor: float = Field(5, gt=0, description="MAUVE's scaling factor c in exp(-c KL).")
    recommended_samples: int = Field(5000, ge=1, description="Below this many samples a warning is issued and few_samples_flag is 1.")
    featurizer_card: dict[str, Any] | None = Field(None, description="The resolved featurizer card (set by dlmbench).", json_schema_extra=INTERNAL)

    @model_validator(mode="after")
    def _buckets(self) -> MauveSettings:
        if isinstance(self.num_buckets, int) and self.num_buckets < 2:
            raise ValueError(f"num_buckets must be 'auto' or an integer >= 2, not {self.num_buckets}")
        return self


class ReasoningSettings(TaskSettings):
    """``reasoning``: Countdown, Sudoku, SAT, planning with two verifiers (dlmbench/tasks/reasoning.py)."""

    problem: Literal["countdown", "sudoku", "sat", "planning"] | None = Field(
        None, description="Problem family (None: the dataset path names it)."
    )
    n_test: int = Field(200, ge=1, description="Examples evaluated (--limit overrides it).")
    n_split: int = Field(1000, ge=1, description="Size of the generated split the examples are taken from.")
    data_seed: int = Field(1234, description="Seed of the problem generator (the train split uses data_seed + 1).")
    max_new_tokens: int | None = Field(None, ge=1, description="Tokens generated per example (None: the problem's own length).")
    steps: int | None = Field(None, ge=1, description="Sampling steps (None: the model's own setting, or 20 with mdm_decoding reference).")
    sampler: dict[str, Any] = Field(default_factory=dict, description=SAMPLER_DESCRIPTION + " AR: greedy by default.")
    prompt_suffix: str = Field("=", description="Text after the problem with a non-character tokenizer.")
    mdm_decoding: Literal["reference", "model"] = Field(
        "reference", description="reference: easy-first top-k decoding of Ye et al. 2024 where the model offers it; model: the card's own sampler."
    )


TASK_SETTINGS_TYPES: dict[str, type[TaskSettings]] = {
    "perplexity": PerplexitySettings,
    "lambada": LambadaSettings,
    "genppl": GenPPLSettings,
    "reversal": ReversalSettings,
    "lmeval": LmevalSettings,
    "mauve": MauveSettings,
    "reasoning": ReasoningSettings,
}

TASK_TYPES: tuple[str, ...] = tuple(TASK_SETTINGS_TYPES)


def task_settings_type(task_type: str) -> type[TaskSettings]:
    """The settings type of a task type (an unknown type gets "did you mean")."""
    if task_type not in TASK_SETTINGS_TYPES:
        raise UnknownName("task type", task_type, TASK_TYPES)
    return TASK_SETTINGS_TYPES[task_type]


def user_fields(cls: type[Settings]) -> list[str]:
    """The field names a user may set (internal fields left out), in definition order."""
    return [k for k, f in cls.model_fields.items() if not (f.json_schema_extra or {}).get("internal")]


#: Named packing presets (``packing: {preset: NAME}``): each protocol's values and its source. A card's explicit
#: keys override the preset's; the resolved values are what a result row records (``settings.packing``).
PACKING_PRESETS: dict[str, dict[str, Any]] = {
    # lm-eval's loglikelihood_rolling (lm_eval/models/huggingface.py HFLM.loglikelihood_rolling with
    # lm_eval/utils.py get_rolling_token_windows(context_len=1) + make_disjoint_window): each document on its own,
    # no EOS, every token scored, the first after the prefix token, windows of max_length tokens. The prefix token
    # is the model's (an AR card's prefix_token_id); lm-eval's HF backend uses its prefix_token_id argument, else
    # the tokenizer's BOS, else EOS (the same for GPT-2; set the card's prefix_token_id to match another model).
    "lmeval-rolling": {"mode": "rolling", "first_token": "prefixed", "add_eos": False},
    # MDLM zero-shot perplexity (kuleshov-group/mdlm dataloader.py _group_texts, wrap=True, model.length 1024):
    # EOS after every document, concatenated, blocks [prefix] + 1022 tokens + [EOS], the remainder dropped.
    "mdlm-wrap": {"mode": "wrap", "block_size": 1024, "first_token": "prefixed", "add_eos": True, "partial_last_block": "drop"},
    # GPT-2-style sliding window (HF guide "Perplexity of fixed-length models", gpt2-large, max_length 1024,
    # stride 512): documents joined with an EOS after each, the stream starts with the prefix token.
    "gpt2-sliding": {"mode": "sliding", "block_size": 1024, "stride": 512, "first_token": "prefixed", "add_eos": True},
}


def expand_preset(values: dict[str, Any]) -> dict[str, Any]:
    """A ``packing`` block with its preset's values filled in under the keys given explicitly."""
    name = values.get("preset")
    return {**PACKING_PRESETS.get(name, {}), **values} if isinstance(name, str) else dict(values)


class PackingSettings(Settings):
    """A task card's ``packing`` block: how documents become scoring requests (dlmbench/data/packing.py).

    ``preset`` fills the keys it names (:data:`PACKING_PRESETS`); keys given beside it override them.
    ``add_bos`` is the former spelling of ``first_token`` (true: prefixed, false: unscored)."""

    preset: Literal["lmeval-rolling", "mdlm-wrap", "gpt2-sliding"] | None = Field(
        None, description="A named protocol: lmeval-rolling, mdlm-wrap or gpt2-sliding (explicit keys override it)."
    )
    mode: Literal["wrap", "sliding", "document", "rolling"] = Field(
        "document",
        description="wrap: concatenate and cut into blocks (MDLM); sliding: overlapping windows; document: one request "
        "per document; rolling: each document in lm-eval's disjoint rolling windows.",
    )
    block_size: int | None = Field(None, ge=2, description="Tokens per block or window (None: the model's max_length).")
    stride: int | None = Field(None, ge=1, description="sliding: new tokens per window, < block_size (None: block_size // 2).")
    first_token: Literal["prefixed", "unscored"] = Field(
        "prefixed",
        description="First token of each sequence (document, block or stream): prefixed (scored after the model's prefix "
        "token) or unscored (kept as context).",
    )
    add_bos: bool | None = Field(None, description="Former spelling of first_token: true = prefixed, false = unscored.")
    add_eos: bool = Field(True, description="End every document with the tokenizer's EOS.")
    separator: int | str | None = Field(
        None, description="wrap/sliding: put between consecutive documents a token id, or a string tokenized once (e.g. \"\\n\")."
    )
    partial_last_block: Literal["drop", "keep"] | None = Field(
        None, description="wrap: drop (MDLM) or keep (a shorter last block) the remainder of the stream (None: drop)."
    )

    @model_validator(mode="before")
    @classmethod
    def _preset_and_legacy(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = expand_preset(data)  # an unknown preset is left to the field check, which names the allowed ones
        if data.get("add_bos") is not None and isinstance(data["add_bos"], bool):
            implied = "prefixed" if data["add_bos"] else "unscored"
            if data.get("first_token", implied) != implied:
                raise ValueError(f"add_bos: {str(data['add_bos']).lower()} contradicts first_token: {data['first_token']} (give first_token only)")
            data["first_token"] = implied
        return data

    @field_validator("separator", mode="before")
    @classmethod
    def _separator(cls, v: Any) -> Any:
        if v is None:
            return v
        if isinstance(v, bool) or (isinstance(v, int) and v < 0) or (isinstance(v, str) and not v):
            raise ValueError("expected a token id >= 0 or a non-empty string")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> PackingSettings:
        if self.mode == "sliding" and self.stride is not None and self.block_size is not None and self.stride >= self.block_size:
            raise ValueError(f"stride ({self.stride}) must be smaller than block_size ({self.block_size})")
        if self.separator is not None and self.mode not in ("wrap", "sliding"):
            raise ValueError(f"separator joins documents, so it applies to modes wrap and sliding, not {self.mode!r}")
        if self.partial_last_block is not None and self.mode != "wrap":
            raise ValueError(f"partial_last_block applies to mode wrap only, not {self.mode!r} (which scores every token)")
        return self

    def resolved(self) -> dict[str, Any]:
        """The protocol actually used, as a result row records it (the legacy ``add_bos`` folded into
        ``first_token``; ``partial_last_block`` is ``drop`` in wrap mode unless given, None elsewhere)."""
        return {
            "preset": self.preset,
            "mode": self.mode,
            "block_size": self.block_size,
            "stride": self.stride,
            "first_token": self.first_token,
            "add_eos": self.add_eos,
            "separator": self.separator,
            "partial_last_block": (self.partial_last_block or "drop") if self.mode == "wrap" else None,
        }


class DatasetSettings(Settings):
    """A task card's ``dataset`` block: where the documents come from (dlmbench/data/sources.py)."""

    model_config = ConfigDict(coerce_numbers_to_str=True)  # ``name: 2`` in YAML or ``--set dataset.name=2``

    source: Literal["hf", "local", "package", "url", "generated"] = Field(
        description="hf: a Hugging Face dataset; local: a file or folder; package: a file inside an installed package; url: an address; generated: dlmbench's problem generators."
    )
    path: str = Field(min_length=1, description="hf: dataset name; local: file path; package: package name; url: address; generated: problem.")
    name: str | None = Field(None, description="hf: config name; generated: variant (e.g. cd3).")
    split: str | None = Field(None, description="Split name, or a record selection such as mod:50=0.")
    field: str = Field("text", min_length=1, description="Column holding the text.")
    file: str | None = Field(None, description="package: file inside the package.")
    format: Literal["jsonl", "json", "txt", "parquet"] | None = Field(None, description="local/url file format (None: from the extension).")
    skip_missing: bool = Field(
        False,
        description="Skip records that lack the text field (or hold null) and record how many in the result "
        "(skipped_missing); false: such a record is an error naming the file and line.",
    )
    on_empty: Literal["skip", "error"] = Field(
        "skip",
        description="A document with no tokens after detokenizing: skip (counted in the result's skipped.empty) or "
        "error (naming the record). With skip, wrap mode with add_eos keeps it (its EOS is scored, as MDLM's pipeline does).",
    )
