"""Which run the leaderboard shows: the one place this is decided.

Runs are grouped by what makes their numbers comparable: ``(model, task, seed, checkpoint identity, dataset,
split, run settings)``. The checkpoint identity is :func:`dlmbench.store.checkpoint_identity` (the checkpoint
plus any content digest). The run settings are the settings every metric row of the run shares, flattened to
dotted keys, without bookkeeping that follows from ``--limit`` or the machine (:data:`IGNORED_SETTINGS`).

Within a group, :func:`select_runs` keeps (policy ``"largest_n"``, the default):

1. the run with the largest ``n`` (a run's ``n`` is the value most of its metric rows report, ties to the
   larger), so a ``--limit 100`` re-run never hides a full run;
2. among equal ``n``, a full run (``limit`` empty) over a limited one;
3. then the newest (``started_at``), then the larger ``run_id`` so the choice is deterministic.

Policy ``"latest"`` keeps the newest run of each group instead (``dlmbench results --latest``). Every run not
kept is returned in ``unused`` with the run kept in its place, so a report can list it.
"""

from __future__ import annotations

import json
from typing import Any

from dlmbench.store import checkpoint_identity

#: settings keys (dotted; a key covers everything below it) that do not make two runs' numbers differ in
#: meaning: counts that follow from ``--limit`` and the data, the limit itself, batch size and device, local
#: paths of tokenizers and evaluator cards, and the regress tolerance block
IGNORED_SETTINGS: tuple[str, ...] = (
    "limit",
    "n_requests",
    "n_tokens",
    "n_bytes",
    "n_words",
    "n_examples",
    "n_params",
    "batch_size",
    "batch_size_auto",
    # measured, not fed: forward passes a sampler used (the nfe metric rows carry them as numbers)
    "batched_calls",
    "nfe_total",
    "sampler.nfe_per_sample",
    "sampler.nfe_total",
    "device",
    "tokenizer",
    "task_settings.regress",
    "task_settings.eval_model_card.checkpoint",
    "task_settings.eval_model_card.tokenizer",
    "task_settings.featurizer_card.checkpoint",
    "task_settings.featurizer_card.tokenizer",
)
#: the columns that, with the run settings, identify a group of comparable runs
GROUP_COLUMNS: tuple[str, ...] = ("model", "task", "seed", "checkpoint_identity", "dataset", "split", "settings_key")
POLICIES = ("largest_n", "latest")


def flat_settings(settings: dict[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (``{"sampler": {"steps": 8}}`` → ``{"sampler.steps": 8}``), ignored
    keys (:data:`IGNORED_SETTINGS`) left out; lists kept as JSON text."""
    out: dict[str, Any] = {}
    for k, v in (settings or {}).items():
        key = f"{prefix}{k}"
        if any(key == i or key.startswith(i + ".") for i in IGNORED_SETTINGS):
            continue
        if isinstance(v, dict) and v:
            out.update(flat_settings(v, key + "."))
        elif isinstance(v, (list, tuple, dict)):
            out[key] = json.dumps(v, sort_keys=True, default=str)
        else:
            out[key] = v
    return out


def run_table(df):
    """One row per run of the tidy table ``df``: ``run_id``, the group columns (:data:`GROUP_COLUMNS`),
    ``n``, ``limit``, ``started_at`` and ``run_settings`` (the flattened settings shared by all its rows)."""
    import pandas as pd

    records = []
    for run_id, g in df.groupby("run_id", sort=False):
        first = g.iloc[0]
        flats = [flat_settings(s if isinstance(s, dict) else {}) for s in g["settings"]]
        shared = {k: v for k, v in flats[0].items() if all(k in f and f[k] == v for f in flats[1:])}
        ns = g["n"].astype(int)
        counts = ns.value_counts()
        n = int(max(v for v, c in counts.items() if c == counts.max()))
        limit = first.get("limit")
        records.append({
            "run_id": run_id,
            "model": first["model"],
            "task": first["task"],
            "seed": first["seed"],
            "checkpoint_identity": checkpoint_identity(first),
            "dataset": first.get("dataset"),
            "split": "" if first.get("split") is None else first.get("split"),
            "settings_key": json.dumps(shared, sort_keys=True, default=str),
            "run_settings": shared,
            "n": n,
            "limit": None if limit is None or pd.isna(limit) else int(limit),
            "started_at": str(first.get("started_at") or ""),
        })
    return pd.DataFrame.from_records(records, columns=["run_id", *GROUP_COLUMNS, "run_settings", "n", "limit", "started_at"])


def select_runs(df, policy: str = "largest_n"):
    """``(chosen, unused)``: ``chosen`` is the rows of ``df`` (all its columns, original order) that belong to the
    run kept for each group of comparable runs (rules in the module docstring); ``unused`` has one row per run
    not kept: ``run_id, model, task, seed, n, limit, started_at, used_run_id, used_n, used_limit``.

    Guaranteed: every run of ``df`` is either chosen or listed in ``unused``, never both; exactly one run per
    group is chosen; under ``"largest_n"`` no chosen run has a smaller ``n`` than a run of its group.
    """
    import pandas as pd

    if policy not in POLICIES:
        raise ValueError(f"unknown run selection policy {policy!r}; one of {', '.join(POLICIES)}")
    unused_cols = ["run_id", "model", "task", "seed", "n", "limit", "started_at", "used_run_id", "used_n", "used_limit"]
    if df.empty:
        return df, pd.DataFrame(columns=unused_cols)
    runs = run_table(df)
    runs["_full"] = runs["limit"].isna()
    if policy == "largest_n":
        order = ["n", "_full", "started_at", "run_id"]
    else:
        order = ["started_at", "n", "_full", "run_id"]
    runs = runs.sort_values(order, ascending=False, kind="stable")
    keep, unused = [], []
    for _, g in runs.groupby(list(GROUP_COLUMNS), sort=False, dropna=False):
        best = g.iloc[0]
        keep.append(best["run_id"])
        for _, r in g.iloc[1:].iterrows():
            unused.append({
                "run_id": r["run_id"], "model": r["model"], "task": r["task"], "seed": r["seed"], "n": r["n"],
                "limit": r["limit"], "started_at": r["started_at"], "used_run_id": best["run_id"],
                "used_n": best["n"], "used_limit": best["limit"],
            })
    chosen = df[df["run_id"].isin(set(keep))]
    return chosen, pd.DataFrame.from_records(unused, columns=unused_cols)
