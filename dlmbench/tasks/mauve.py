"""MAUVE (Pillutla et al., 2021) between model samples and real text, with features we compute.

Protocol (https://github.com/krishnap25/mauve README; kuleshov-group/remdm ``main.py``):
sample ``n_samples`` sequences of ``length``
tokens with the model's own sampler and settings (Q, the model), take ``n_samples`` reference texts of
the same length from the task's corpus (P, human text: the corpus tokenized with the generator's
tokenizer, documents joined by a newline, cut into ``length``-token pieces and decoded), featurize both
with a local AR model card (``featurizer``; ``gpt2-large`` as in the MAUVE paper and ReMDM,
``smollm2-135m`` offline) and call ``mauve.compute_mauve(p_features=..., q_features=...)`` from the
``mauve-text`` package, so nothing is downloaded.

Features are those of ``mauve.utils.featurize_tokens_from_model``: the texts are re-tokenized by the
featurizer (no special tokens, truncated to ``max_text_length`` tokens), and the feature of a text is the
last layer's hidden state (after the final norm) at its last token. Empty texts are dropped, as the
package does.

Recorded in every row: the featurizer and its checkpoint, both sample counts, the number of buckets
actually used (``auto`` = max(2, round(n/10))), the k-means seed and the other package settings, the
sampling seed, and the ``mauve-text`` version. The package's guidance is "at least a few thousand
generations each (the paper uses 5000 each)" and "MAUVE with a smaller number of samples is biased
towards optimism": below ``recommended_samples`` (5000) a warning is issued and ``few_samples_flag`` is 1.
MAUVE has no closed-form standard error; compare runs over several seeds (the rows have
``stderr: null``).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from dlmbench.interface import LanguageModel
from dlmbench.errors import BadSpec, DatasetUnavailable
from dlmbench.seeding import request_seed
from dlmbench.specs import TaskSpec
from dlmbench.specs.task_settings import MauveSettings
from dlmbench.metrics import names
from dlmbench.tasks.base import MetricValue, TaskOutput
from dlmbench.data.sources import dataset_name

log = logging.getLogger(__name__)

REFERENCE_SEPARATOR = "\n"


def mauve_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("mauve-text")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "?"


@torch.inference_mode()
def featurize(featurizer: LanguageModel, texts: Sequence[str], *, max_text_length: int = 1024, batch_size: int = 8) -> tuple[np.ndarray, list[int]]:
    """MAUVE features of ``texts``: last-layer hidden state at each text's last token (float32).

    Returns ``(features [m, d], kept)`` where ``kept`` are the indices of the texts that are not empty
    after tokenization. Texts are batched by length (right padding with an attention mask), so the result
    does not depend on the order of ``texts``.
    """
    net = getattr(featurizer, "model", None)
    if net is None or not hasattr(net, "base_model"):
        raise BadSpec("the MAUVE featurizer must be an autoregressive (HF causal LM) model card")
    device = getattr(featurizer, "device", torch.device("cpu"))
    cap = min(int(max_text_length), int(featurizer.max_length or max_text_length))  # never past the context
    ids = [featurizer.tokenizer.encode(t)[:cap] if t else [] for t in texts]
    kept = [i for i, x in enumerate(ids) if x]
    order = sorted(kept, key=lambda i: (len(ids[i]), i))
    feats: dict[int, np.ndarray] = {}
    for s in range(0, len(order), max(1, int(batch_size))):
        rows = order[s : s + batch_size]
        width = max(len(ids[i]) for i in rows)
        x = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            x[r, : len(ids[i])] = torch.tensor(ids[i])
            mask[r, : len(ids[i])] = 1
        h = net.base_model(input_ids=x.to(device), attention_mask=mask.to(device)).last_hidden_state
        last = torch.tensor([len(ids[i]) - 1 for i in rows], device=h.device)
        sel = h[torch.arange(len(rows), device=h.device), last].float().cpu().numpy()
        for r, i in enumerate(rows):
            feats[i] = sel[r]
    if not kept:
        return np.zeros((0, 0), dtype=np.float32), []
    return np.stack([feats[i] for i in kept]).astype(np.float32), kept


def mauve_score(p_features: np.ndarray, q_features: np.ndarray, *, num_buckets: Any = "auto", seed: int = 25,
                kmeans_explained_var: float = 0.9, kmeans_num_redo: int = 5, kmeans_max_iter: int = 500,
                scaling_factor: float = 5) -> Any:
    """``mauve.compute_mauve`` on precomputed features (P = reference, Q = model).

    One correction, flagged on the result as ``tie_corrected``: when the two histograms are identical,
    MAUVE is 1 by definition, but the package's area computation can return 0.75 (see below).
    """
    try:
        import mauve
    except ImportError:  # pragma: no cover
        raise BadSpec("the mauve task needs the mauve-text package: pip install 'dlmbench[mauve]'") from None
    if num_buckets != "auto":
        num_buckets = int(num_buckets)
    out = mauve.compute_mauve(
        p_features=p_features,
        q_features=q_features,
        num_buckets=num_buckets,
        kmeans_explained_var=float(kmeans_explained_var),
        kmeans_num_redo=int(kmeans_num_redo),
        kmeans_max_iter=int(kmeans_max_iter),
        mauve_scaling_factor=scaling_factor,
        seed=int(seed),
        verbose=False,
    )
    out.tie_corrected = False
    if np.array_equal(out.p_hist, out.q_hist) and (out.mauve < 1.0 or out.mauve_star < 1.0):
        # Identical histograms: every point of the divergence curve is (1, 1), so MAUVE = 1. mauve-text
        # 0.4.0 sorts the curve's points with np.argsort (not stable), and the extreme point (1, 0) can land
        # among the tied points, which turns the area into 0.75. Report the value the definition gives.
        out.mauve, out.mauve_star, out.tie_corrected = 1.0, 1.0, True
    return out


def reference_texts(task: TaskSpec, tokenizer, length: int, n: int) -> list[str]:
    """``n`` pieces of ``length`` tokens (generator's tokenizer) of the task's corpus, decoded (a
    :class:`~dlmbench.data.sources.Texts`: ``skipped_missing`` counts records skipped for lacking the field)."""
    from dlmbench.data.sources import Texts, load_texts

    texts = load_texts(task.dataset, limit=None)
    stream: list[int] = []
    out: list[str] = []
    for t in texts:
        if not t:
            continue
        stream += tokenizer.encode(t + REFERENCE_SEPARATOR)
        while len(stream) >= length and len(out) < n:
            out.append(tokenizer.decode(stream[:length]))
            stream = stream[length:]
        if len(out) >= n:
            break
    pieces = Texts(out)
    pieces.skipped_missing = texts.skipped_missing
    return pieces


def _load_featurizer(model: LanguageModel, settings: MauveSettings) -> tuple[LanguageModel, Any]:
    from dlmbench.plugins import load_model, require
    from dlmbench.tasks.registry import MODEL_CARD_NEEDS, model_card_setting

    name = settings.featurizer
    spec = model_card_setting(settings, "featurizer")
    require(spec.family, MODEL_CARD_NEEDS["mauve"]["featurizer"], f"the MAUVE featurizer {name}")
    own = getattr(model, "spec", None)
    if own is not None and getattr(own, "name", None) == spec.name and own == spec:
        return model, spec
    device = str(getattr(model, "device", "cpu"))
    return load_model(spec, device=device), spec


def run_mauve(model: LanguageModel, task: TaskSpec, *, seed: int, limit: int | None) -> TaskOutput:
    st = task.typed_settings
    n = limit or st.n_samples
    length, steps, sampler_settings = st.length, st.steps, dict(st.sampler)
    max_text_length, recommended = st.max_text_length, st.recommended_samples
    if n < 2:
        raise BadSpec(f"task {task.name}: MAUVE needs n_samples >= 2 and length >= 1")

    t0 = time.time()
    out = model.sample(n, length, steps=steps, seed=request_seed(seed, task.name, "samples"), **sampler_settings)
    gen_seconds = time.time() - t0
    q_text = list(out.texts)
    p_text = reference_texts(task, model.tokenizer, length, n)
    if len(p_text) < 2:
        raise DatasetUnavailable(f"task {task.name}: the reference corpus has fewer than {2 * length} tokens")

    feat_name = st.featurizer
    featurizer, feat_spec = _load_featurizer(model, st)
    bs = st.featurize_batch_size
    p_feat, p_kept = featurize(featurizer, p_text, max_text_length=max_text_length, batch_size=bs)
    q_feat, q_kept = featurize(featurizer, q_text, max_text_length=max_text_length, batch_size=bs)
    if len(q_kept) < 2:
        raise DatasetUnavailable(f"task {task.name}: fewer than two non-empty samples to featurize")

    n_p, n_q = len(p_kept), len(q_kept)
    few = min(n_p, n_q) < recommended
    if few:
        msg = (
            f"MAUVE with {n_q} model and {n_p} reference samples: the mauve-text guidance is at least a few "
            f"thousand each (the paper uses 5000); with fewer samples MAUVE is biased towards optimism "
            f"(few_samples_flag = 1)"
        )
        warnings.warn(msg, stacklevel=2)
        log.warning(msg)
    kseed = st.kmeans_seed
    res = mauve_score(
        p_feat,
        q_feat,
        num_buckets=st.num_buckets,
        seed=kseed,
        kmeans_explained_var=st.kmeans_explained_var,
        kmeans_num_redo=st.kmeans_num_redo,
        kmeans_max_iter=st.kmeans_max_iter,
        scaling_factor=st.scaling_factor,
    )
    m = min(n_p, n_q)
    rows = [
        MetricValue(names.MAUVE, float(res.mauve), None, m, "exact", True, {}),
        MetricValue(names.MAUVE_STAR, float(res.mauve_star), None, m, "exact", True, {}),
        MetricValue(names.FRONTIER_INTEGRAL, float(res.frontier_integral), None, m, "exact", False, {}),
        MetricValue(names.FEW_SAMPLES_FLAG, float(few), None, m, "exact", False, {}),
        # network evaluations per sample (the papers' NFE), not the batched calls summed over chunks
        MetricValue(names.NFE, float(out.settings.get("nfe_per_sample", out.nfe)), None, n, "exact", False, {"batched_calls": int(out.nfe)}),
        MetricValue(names.SECONDS_PER_SAMPLE, gen_seconds / max(n, 1), None, n, "exact", False, {}),
        MetricValue(names.TOKENS_PER_SECOND, n * length / max(gen_seconds, 1e-9), None, n, "exact", True,
                    {"tokens": int(n * length)}),
    ]
    q_set, p_set = set(q_kept), set(p_kept)
    examples = [
        {"index": i, "kind": "model", "text": q_text[i], "tokens": list(out.tokens[i]), "featurized": i in q_set}
        for i in range(len(q_text))
    ] + [
        {"index": len(q_text) + j, "kind": "reference", "text": p_text[j], "featurized": j in p_set}
        for j in range(len(p_text))
    ]
    settings = {
        "featurizer": feat_name,
        "featurizer_checkpoint": feat_spec.checkpoint.describe(),
        "feature": "last-layer hidden state at the last token (mauve featurize_tokens_from_model)",
        "feature_dim": int(q_feat.shape[1]),
        "max_text_length": max_text_length,
        "n_samples": n,
        "n_model_featurized": n_q,
        "n_reference": len(p_text),
        "n_reference_featurized": n_p,
        "reference": f"{dataset_name(task.dataset)}: {length}-token pieces (generator tokenizer), documents joined by a newline",
        "num_buckets": int(res.num_buckets),
        "num_buckets_setting": st.num_buckets,
        "kmeans_seed": kseed,
        "kmeans_explained_var": st.kmeans_explained_var,
        "kmeans_num_redo": st.kmeans_num_redo,
        "kmeans_max_iter": st.kmeans_max_iter,
        "scaling_factor": st.scaling_factor,
        "recommended_samples": recommended,
        "few_samples": few,
        "sampling_seed": seed,
        "mauve_text_version": mauve_version(),
        "identical_histograms_tie_corrected": bool(res.tie_corrected),
        "length": length,
        "steps": steps,
        **{f"sampler.{k}": v for k, v in out.settings.items()},
    }
    if task.dataset.skip_missing:  # reference records skipped for lacking the text field
        settings["skipped_missing"] = int(getattr(p_text, "skipped_missing", 0))
    return TaskOutput(rows, examples, settings, dataset=dataset_name(task.dataset), split=task.dataset.split)
