"""Matching baseline rows to candidate rows (pure functions).

A row is identified by ``(model key, task, metric, seed)`` and its *compared settings*:

* the model key is the model name (``match_model_by="name"``), its family (``"family"``: a new
  checkpoint of the same family is compared with the baseline model of that family) or nothing
  (``"none"``, also implied by an explicit ``baseline_model``/``candidate_model`` pair, which first keeps
  only those models' rows);
* the seed is part of the identity unless ``ignore_seed`` (a suite with a seed grid compares seed by seed);
* compared settings: every key of the row's ``settings`` (a setting renamed since, see
  :data:`RENAMED_SETTINGS`, read under its new name on both sides; nested dicts flattened to dotted keys, e.g.
  ``packing.block_size``, ``task_settings.strip_punctuation``), plus ``dataset`` and ``split``, except the
  bookkeeping keys in :data:`DEFAULT_IGNORED` (counts that follow from the data and tokenizer, batch
  size, device, timings, and the ``task_settings.regress`` tolerance block itself) and any key the user
  ignores. A key ``k`` ignores ``k`` and everything below it (``k.*``).

Several rows on one side with the same identity and settings (re-runs, e.g. after a version bump) are
ambiguous unless ``latest`` picks the newest (``started_at``).

Rows with the same identity whose compared settings differ are reported as mismatched settings, naming
the keys; rows with no counterpart at all as missing. Matched pairs must agree on ``bound`` (exact vs
upper) and ``higher_is_better``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dlmbench.regress.inputs import Entry

#: settings that are bookkeeping, not inputs that change the numbers
DEFAULT_IGNORED: tuple[str, ...] = (
    "n_requests",
    "n_tokens",
    "n_bytes",
    "n_words",
    "n_examples",
    # loaded records that became no request, by reason (they follow from the data; the n column shows the effect)
    "n_skipped",
    "skipped",
    "batch_size",
    "batch_size_auto",
    # measured, not fed: forward passes a sampler used (the nfe metric rows carry them as numbers)
    "batched_calls",
    "nfe_total",
    "sampler.nfe_per_sample",
    "sampler.nfe_total",
    "device",
    "task_settings.regress",
    # where the tokenizer files sit on this machine (an absolute path for local cards); which model and
    # checkpoint produced the row is matched through the model key and the checkpoint column instead
    "tokenizer",
    # the same for the evaluator / featurizer card resolved into a genppl / mauve task (its name is compared)
    "task_settings.eval_model_card.checkpoint",
    "task_settings.eval_model_card.tokenizer",
    "task_settings.featurizer_card.checkpoint",
    "task_settings.featurizer_card.tokenizer",
    # content identity of the inputs (checkpoint/tokenizer/data sha256, hub commits; dlmbench.data.identity)
    # and the DiT loaders' weight-file sha256 and revision: they say *which* checkpoint produced a row, which
    # is what a regression check varies on purpose (a new checkpoint against the baseline's), so they are
    # recorded but not compared
    "identity",
    "sha256",
    "revision",
)
#: model settings renamed since older rows were written: family -> {old key -> new key}. A row of that family
#: that records the old key is compared as if it recorded the new one (both sides), so committed baselines keep
#: matching fresh runs. Plaid's sampler steps were ``sampling_steps`` until issue 13 ("one name per concept");
#: the settings type keeps accepting the old name (``PlaidSettings.renamed_settings``).
RENAMED_SETTINGS: dict[str, dict[str, str]] = {"plaid": {"sampling_steps": "steps"}}
#: any settings key whose last part ends like this is a timing
TIMING_SUFFIXES: tuple[str, ...] = ("_s", "_sec", "_seconds", "seconds", "duration")

MODEL_MATCH = ("name", "family", "none")


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys: ``{"packing": {"mode": "wrap"}}`` → ``{"packing.mode": "wrap"}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def canonical(v: Any) -> str:
    """A string that is equal for equal setting values (``1 == 1.0``, tuples == lists, key order ignored)."""

    def norm(x: Any) -> Any:
        if isinstance(x, bool) or x is None or isinstance(x, str):
            return x
        if isinstance(x, (int, float)):
            f = float(x)
            return int(f) if f.is_integer() else f
        if isinstance(x, Mapping):
            return {str(k): norm(val) for k, val in x.items()}
        if isinstance(x, (list, tuple)):
            return [norm(e) for e in x]
        return str(x)

    return json.dumps(norm(v), sort_keys=True)


def is_ignored(key: str, ignored: Iterable[str]) -> bool:
    if key.rsplit(".", 1)[-1].endswith(TIMING_SUFFIXES):
        return True
    return any(key == k or key.startswith(k + ".") for k in ignored)


def renamed(settings: Mapping[str, Any], family: Any) -> dict[str, Any]:
    """``settings`` with the top-level keys of :data:`RENAMED_SETTINGS` for ``family`` under their new names (a
    row that records both keeps the new key's value)."""
    out = dict(settings)
    for old, new in RENAMED_SETTINGS.get(str(family), {}).items():
        if old in out:
            value = out.pop(old)
            out.setdefault(new, value)
    return out


def compared_settings(row: Mapping[str, Any], ignored: Iterable[str]) -> dict[str, str]:
    """The settings that must be equal for two rows to be compared, canonicalised."""
    ignored = tuple(ignored)
    flat = flatten(renamed(row.get("settings") or {}, row.get("family")))
    flat["dataset"] = row.get("dataset")
    flat["split"] = row.get("split")
    return {k: canonical(v) for k, v in flat.items() if not is_ignored(k, ignored)}


@dataclass(frozen=True)
class Options:
    match_model_by: str = "name"
    baseline_model: str | None = None
    candidate_model: str | None = None
    ignore_seed: bool = False
    ignore_settings: tuple[str, ...] = ()
    allow_missing: bool = False
    latest: bool = False
    tasks: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    skip_metrics: tuple[str, ...] = ()

    @property
    def ignored(self) -> tuple[str, ...]:
        return DEFAULT_IGNORED + tuple(self.ignore_settings)


@dataclass(frozen=True)
class Pair:
    base: Entry
    cand: Entry


@dataclass(frozen=True)
class Problem:
    """A reason the comparison is incomplete; ``kind`` is missing | settings | ambiguous | mismatch | lacking.

    ``lacking``: a baseline row whose candidate run exists (rows of the same model, task and seed) but has no
    row for this metric; :func:`dlmbench.regress.compare.compare` turns it into a regression (``entry`` is the
    baseline row)."""

    kind: str
    where: str
    message: str
    entry: Entry | None = field(default=None, compare=False, repr=False)

    def line(self) -> str:
        return f"{self.where}: {self.message}"


def select(entries: Sequence[Entry], opts: Options, side: str) -> list[Entry]:
    """Rows kept after the model/task/metric filters."""
    model = opts.baseline_model if side == "baseline" else opts.candidate_model
    out = []
    for e in entries:
        r = e.row
        if model is not None and r.get("model") != model:
            continue
        if opts.tasks and r.get("task") not in opts.tasks:
            continue
        if opts.metrics and r.get("metric") not in opts.metrics:
            continue
        if r.get("metric") in opts.skip_metrics:
            continue
        out.append(e)
    return out


def model_key(row: Mapping[str, Any], opts: Options) -> str:
    if opts.baseline_model is not None or opts.candidate_model is not None or opts.match_model_by == "none":
        return ""
    if opts.match_model_by == "family":
        return str(row.get("family"))
    return str(row.get("model"))


def identity(row: Mapping[str, Any], opts: Options) -> tuple:
    seed = None if opts.ignore_seed else row.get("seed")
    return (model_key(row, opts), str(row.get("task")), str(row.get("metric")), seed)


def describe_identity(ident: tuple, opts: Options) -> str:
    model, task, metric, seed = ident
    parts = [p for p in (model, task, metric) if p]
    s = " / ".join(parts)
    return s + (f" (seed {seed})" if seed is not None else "")


def match(baseline: Sequence[Entry], candidate: Sequence[Entry], opts: Options) -> tuple[list[Pair], list[Problem]]:
    """Pairs of rows to compare and every problem that prevents a full comparison (module docstring)."""
    ignored = opts.ignored
    groups: dict[tuple, tuple[list[Entry], list[Entry]]] = defaultdict(lambda: ([], []))
    for e in baseline:
        groups[identity(e.row, opts)][0].append(e)
    for e in candidate:
        groups[identity(e.row, opts)][1].append(e)
    pairs: list[Pair] = []
    problems: list[Problem] = []
    candidate_runs = {identity(e.row, opts)[:2] + identity(e.row, opts)[3:] for e in candidate}
    for ident in sorted(groups, key=lambda t: tuple("" if x is None else str(x) for x in t)):
        bs, cs = groups[ident]
        where = describe_identity(ident, opts)
        b_by: dict[str, list[Entry]] = defaultdict(list)
        c_by: dict[str, list[Entry]] = defaultdict(list)
        sets: dict[str, dict[str, str]] = {}
        for lst, by in ((bs, b_by), (cs, c_by)):
            for e in lst:
                s = compared_settings(e.row, ignored)
                sig = json.dumps(s, sort_keys=True)
                sets[sig] = s
                by[sig].append(e)
        for side, by in (("baseline", b_by), ("candidate", c_by)):
            for sig, lst in by.items():
                if len(lst) > 1 and opts.latest:
                    by[sig] = [max(lst, key=lambda e: str(e.row.get("started_at") or ""))]
                elif len(lst) > 1:
                    problems.append(Problem("ambiguous", where, _ambiguous_message(side, lst, opts)))
        left_b = [sig for sig in b_by if sig not in c_by]
        left_c = [sig for sig in c_by if sig not in b_by]
        for sig in b_by:
            if sig in c_by and len(b_by[sig]) == 1 and len(c_by[sig]) == 1:
                pair = Pair(b_by[sig][0], c_by[sig][0])
                bad = _pair_mismatch(pair)
                if bad:
                    problems.append(Problem("mismatch", where, bad))
                else:
                    pairs.append(pair)
        # leftovers: pair each baseline leftover with the closest candidate leftover to name the differences
        for sig_b in left_b:
            if left_c:
                sig_c = min(left_c, key=lambda sc: len(_differences(sets[sig_b], sets[sc])))
                left_c.remove(sig_c)
                diffs = _differences(sets[sig_b], sets[sig_c])
                problems.append(Problem("settings", where, "settings differ: " + "; ".join(diffs)))
            else:
                e = b_by[sig_b][0]
                if ident[:2] + ident[3:] in candidate_runs:
                    problems.append(Problem("lacking", where, f"the candidate run has no {ident[2]} row (baseline {e.origin})", e))
                else:
                    problems.append(Problem("missing", where, f"no candidate row (baseline {e.origin})"))
        for sig_c in left_c:
            e = c_by[sig_c][0]
            problems.append(Problem("missing", where, f"no baseline row (candidate {e.origin})"))
    return pairs, problems


def _differences(b: Mapping[str, str], c: Mapping[str, str]) -> list[str]:
    out = []
    for k in sorted(set(b) | set(c)):
        vb, vc = b.get(k, "(absent)"), c.get(k, "(absent)")
        if vb != vc:
            out.append(f"{k} baseline={vb} candidate={vc}")
    return out


def _ambiguous_message(side: str, lst: Sequence[Entry], opts: Options) -> str:
    models = sorted({str(e.row.get("model")) for e in lst})
    hint = (
        f" (models {', '.join(models)}: pass --{side}-model NAME)"
        if len(models) > 1
        else " (pass --latest to use the newest, or a single run folder)"
    )
    origins = ", ".join(e.origin for e in lst[:4]) + (", ..." if len(lst) > 4 else "")
    return f"{len(lst)} {side} rows with the same settings: {origins}{hint}"


def _pair_mismatch(pair: Pair) -> str | None:
    b, c = pair.base.row, pair.cand.row
    if (b.get("bound") or "exact") != (c.get("bound") or "exact"):
        return (
            f"bound differs: baseline {b.get('bound')} vs candidate {c.get('bound')} "
            "(an exact value and a Monte Carlo upper bound are not comparable)"
        )
    if bool(b.get("higher_is_better")) != bool(c.get("higher_is_better")):
        return "higher_is_better differs between baseline and candidate"
    return None


def varying_keys(pairs: Sequence[Pair], ignored: Iterable[str]) -> dict[tuple[str, str], list[str]]:
    """Per (model, task), the compared settings keys whose value differs between its matched rows: what tells
    two rows of one model and task apart in the table (e.g. ``steps``). Keys that vary in lockstep (``steps``,
    ``sampler.steps``, ``task_settings.steps``) are shown once, by the shortest name."""
    ignored = list(ignored)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for p in pairs:
        groups[(str(p.base.row.get("model")), str(p.base.row.get("task")))].append(compared_settings(p.base.row, ignored))
    out: dict[tuple[str, str], list[str]] = {}
    for group, settings in groups.items():
        everywhere = set.intersection(*(set(s) for s in settings))  # a key only some rows carry is a metric's extra
        keys = sorted(everywhere) or sorted({k for s in settings for k in s})
        seen: dict[tuple[int, ...], str] = {}
        for k in sorted(keys, key=lambda k: (k.count("."), len(k), k)):
            values = [str(s.get(k, "(absent)")) for s in settings]
            if len(set(values)) < 2:
                continue
            first: dict[str, int] = {}
            partition = tuple(first.setdefault(v, len(first)) for v in values)  # which rows share a value
            seen.setdefault(partition, k)  # keys that split the rows the same way (steps, nfe): the shortest name
        out[group] = sorted(seen.values())
    return out