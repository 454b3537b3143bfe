"""lm-eval tasks through the bridge: lm-eval's own task definitions, our models, our tidy rows.

A card of type ``lmeval`` names lm-eval task(s) or group(s) (``lm_eval_task``) and ``num_fewshot``; the
run builds them with lm-eval's ``TaskManager``, evaluates them with ``lm_eval.simple_evaluate`` on the
model wrapped by :class:`dlmbench.integrations.lmeval.DlmbenchLM`, and turns lm-eval's results into metric
rows (``acc``, ``acc_norm``, ... with lm-eval's own standard errors), lm-eval's per-document records
into examples, and the lm-eval version, task versions, shots and seeds into provenance.

Bounds. For a diffusion model the log-likelihoods lm-eval compares are lower bounds (the negative of
Monte Carlo upper bounds on the NLL). Perplexities computed from them (LAMBADA ``perplexity``, rolling
perplexities) are upper bounds and labelled ``bound: upper``. Multiple-choice ``acc`` / ``acc_norm`` ranked
by those bounds are exact accuracies of that decision rule, not bounds: labelled ``exact``, with
``score_basis: nll_upper_bound`` in their settings (AR rows: ``exact_loglikelihood``). Metrics that only
read the greedy check (LAMBADA ``acc``) or generations (``exact_match``) are ``exact``.

Offline and local data (lm-eval's new-task guide,
https://github.com/EleutherAI/lm-evaluation-harness/blob/main/docs/new_task_guide.md). lm-eval reads its
datasets from the HF hub; a user with a local copy has two ways:

- ``--set dataset.source=local --set dataset.path=FILE`` (or ``--set data_files=FILE`` /
  ``{split: FILE}``): the run writes, for every lm-eval task involved, a YAML that ``include:``s lm-eval's
  own YAML (so prompts, choices, metrics stay identical) and only changes ``dataset_path`` to the file's
  format (``json`` for .json/.jsonl, ``csv``, ``parquet``) with ``dataset_kwargs: {data_files: ...}``.
  A single file is the evaluation split (lm-eval's ``test_split``, else ``validation_split``); splits not
  given are dropped (few-shot examples then come from the evaluation split, lm-eval warns). File names may
  contain ``{task}`` and ``{dataset_name}`` (e.g. ``mmlu/{dataset_name}_test.jsonl``), so groups such as
  ``mmlu`` work with one pattern.
- ``--set include_path=DIR``: a folder of your own lm-eval task YAMLs (lm-eval's documented
  ``TaskManager(include_path=...)``), e.g. copies of the stock ones pointing at local data; name them
  with ``--set lm_eval_task=NAME``.

``lm_eval_task_dir`` names the folder of ``lm_eval/tasks`` that holds the card's tasks; only that folder
is indexed (indexing all of lm-eval's ~15k YAML files takes ~15 s). If it is missing in the installed
lm-eval, everything is indexed.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dlmbench.interface import LanguageModel
from dlmbench.errors import BadSpec, DatasetUnavailable, UnknownName
from dlmbench.integrations.lmeval_table import LIKELIHOOD_METRICS, metric_bound  # noqa: F401 (re-exported)
from dlmbench.specs import TaskSpec
from dlmbench.tasks.base import MetricValue, TaskOutput

log = logging.getLogger(__name__)

SPLIT_KEYS = ("training_split", "validation_split", "test_split", "fewshot_split")
_FORMATS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".arrow": "arrow", ".txt": "text"}
_SKIP_KEYS = {"alias", "name", "sample_len", "samples", " ", ""}
_LOCAL_BUILDERS = {"json", "csv", "parquet", "arrow", "text"}


def lm_eval_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("lm_eval")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "?"


def _names(value: Any) -> list[str]:
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def _paths(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, (str, Path)):
        return [str(value)]
    return [str(v) for v in value]


# -- task manager ----------------------------------------------------------------------------------
def _stock_root() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).resolve().parent


def task_manager(
    names: list[str],
    *,
    include_path: list[str],
    include_defaults: bool = True,
    task_dir: str | None = None,
):
    """A ``TaskManager`` that knows ``names``: lm-eval's ``task_dir`` folder (or all of lm-eval's tasks)
    plus ``include_path``."""
    from lm_eval.tasks import TaskManager

    if not (hasattr(TaskManager, "load") and hasattr(TaskManager, "task_index")):
        raise BadSpec(
            f"lmeval tasks are written against lm-eval's TaskManager of 0.4.13 (load, task_index); "
            f"installed: {lm_eval_version()}. Install lm-eval==0.4.13"
        )
    for p in include_path:
        if not Path(p).expanduser().is_dir():
            raise BadSpec(f"lmeval include_path {p} is not a folder of lm-eval task YAML files")
    from dlmbench.integrations.lmeval import TASKS_DIR

    # dlmbench's packaged lm-eval tasks (dlmbench_kjv_rolling, ...) first, so a user's folder can override them
    extra = [str(TASKS_DIR), *(str(Path(p).expanduser().resolve()) for p in include_path)]
    if include_defaults and task_dir:
        folder = _stock_root() / task_dir
        if folder.is_dir():
            tm = TaskManager(include_path=[str(folder), *extra], include_defaults=False)
            if all(n in tm.task_index for n in names):
                return tm
            log.warning("lm-eval tasks %s not all in %s; indexing all of lm-eval's tasks", names, folder)
        else:
            log.warning("lm-eval has no task folder %s (version %s); indexing all of its tasks", task_dir, lm_eval_version())
    return TaskManager(include_path=extra or None, include_defaults=include_defaults)


def _check_known(tm, names: list[str]) -> None:
    for n in names:
        if n not in tm.task_index:
            raise UnknownName("lm-eval task", n, tm.all_tasks, f"lm-eval {lm_eval_version()}; add your own YAMLs with include_path")


def leaf_entries(tm, name: str, _seen: set[str] | None = None) -> list[Any]:
    """The index entries of the YAML tasks that ``name`` (task, group or tag) runs, without building them."""
    seen = _seen if _seen is not None else set()
    if name in seen:
        return []
    seen.add(name)
    entry = tm.task_index.get(name)
    if entry is None:
        raise UnknownName("lm-eval task", name, tm.all_tasks)
    kind = entry.kind.name
    if kind in ("TASK", "PY_TASK"):
        return [entry]
    if kind == "TAG":
        return [e for t in sorted(entry.tags) for e in leaf_entries(tm, t, seen)]
    if kind == "GROUP":
        out = []
        members = (entry.cfg or {}).get("task") or []
        for m in members if isinstance(members, list) else [members]:
            if isinstance(m, str):
                out += leaf_entries(tm, m, seen)
            else:
                raise BadSpec(f"lm-eval group {name} defines an inline task; give local data with include_path instead")
        return out
    raise BadSpec(f"lm-eval entry {name} is of unknown kind {kind}")


# -- local data ------------------------------------------------------------------------------------
def _data_files(task: TaskSpec) -> Any:
    files = task.typed_settings.data_files
    if files:
        return files
    if task.dataset.source == "local":
        return task.dataset.path
    if task.dataset.source not in ("hf",):
        raise BadSpec(f"task {task.name}: lmeval tasks read lm-eval's datasets (hf) or local files, not {task.dataset.source!r}")
    return None


def _format_of(files: Mapping[str, str]) -> str:
    fmts = set()
    for f in files.values():
        suffix = Path(f).suffix.lower()
        if suffix not in _FORMATS:
            raise BadSpec(f"local lm-eval data {f}: use .jsonl, .json, .csv, .parquet or .arrow files")
        fmts.add(_FORMATS[suffix])
    if len(fmts) != 1:
        raise BadSpec(f"local lm-eval data files must share one format, got {sorted(fmts)}")
    return fmts.pop()


def local_override_yamls(tm, names: list[str], data_files: Any, folder: Path) -> dict[str, dict[str, str]]:
    """Write one YAML per leaf task of ``names`` into ``folder``: lm-eval's YAML, local data files.

    Returns ``{task: {split: file}}``.
    """
    from lm_eval.tasks._yaml_loader import load_yaml  # resolves ``include:`` chains like the TaskManager

    written: dict[str, dict[str, str]] = {}
    for name in names:
        for entry in leaf_entries(tm, name):
            if entry.yaml_path is None:
                raise BadSpec(f"lm-eval task {entry.name} has no YAML file; give local data with include_path")
            cfg = load_yaml(entry.yaml_path, resolve_func=False, recursive=True)
            eval_split = cfg.get("test_split") or cfg.get("validation_split")
            if not eval_split:
                raise BadSpec(f"lm-eval task {entry.name} names no test or validation split")
            fields = {"task": entry.name, "dataset_name": cfg.get("dataset_name") or ""}
            raw = data_files if isinstance(data_files, Mapping) else {eval_split: data_files}
            files = {}
            for split, pattern in raw.items():
                path = Path(str(pattern).format(**fields)).expanduser().resolve()
                if not path.is_file():
                    raise DatasetUnavailable(f"lm-eval task {entry.name}: local data file {path} does not exist")
                files[str(split)] = str(path)
            if eval_split not in files:
                raise BadSpec(f"lm-eval task {entry.name} evaluates split {eval_split!r}; data_files gives {sorted(files)}")
            override: dict[str, Any] = {
                "include": str(Path(entry.yaml_path).resolve()),
                "task": entry.name,
                "dataset_path": _format_of(files),
                "dataset_name": None,
                "dataset_kwargs": {"data_files": files},
            }
            for key in SPLIT_KEYS:
                if cfg.get(key) is not None and cfg[key] not in files:
                    override[key] = None
            import yaml

            (folder / f"{entry.name}.yaml").write_text(yaml.safe_dump(override, sort_keys=False))
            written[entry.name] = files
    return written


# -- rows ------------------------------------------------------------------------------------------
def _float(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _leaf_names(results: Mapping[str, Any], key: str) -> list[str]:
    subs = (results.get("group_subtasks") or {}).get(key)
    if not subs:
        return [key]
    out = []
    for s in subs:
        out += _leaf_names(results, s)
    return out


def results_to_rows(results: Mapping[str, Any], primary: list[str], model_bound: str, output_types: Mapping[str, str]) -> list[MetricValue]:
    """lm-eval's ``results`` dict → one :class:`MetricValue` per (task or group, metric, filter)."""
    table: dict[str, dict[str, Any]] = {}
    for part in ("results", "groups"):
        for k, v in (results.get(part) or {}).items():
            table.setdefault(k, {}).update(v)
    n_samples = results.get("n-samples") or {}
    hib = results.get("higher_is_better") or {}
    shots = results.get("n-shot") or {}
    versions = results.get("versions") or {}
    order = [k for k in primary if k in table] + sorted(k for k in table if k not in primary)
    single = len(primary) == 1
    rows: list[MetricValue] = []
    for key in order:
        vals = table[key]
        leaves = _leaf_names(results, key)
        n = sum(int((n_samples.get(t) or {}).get("effective", 0)) for t in leaves)
        types = {output_types.get(t) for t in leaves}
        otype = types.pop() if len(types) == 1 else None
        prefix = "" if (single and key == primary[0]) else f"{key}/"
        for full, value in vals.items():
            if "," not in full:
                continue
            metric, filt = full.split(",", 1)
            if metric in _SKIP_KEYS or metric.endswith("_stderr"):
                continue
            v = _float(value)
            if v is None:
                continue
            stderr = _float(vals.get(f"{metric}_stderr,{filt}"))
            higher = (hib.get(key) or {}).get(metric)
            if higher is None:
                higher = next(((hib.get(t) or {}).get(metric) for t in leaves if (hib.get(t) or {}).get(metric) is not None), True)
            bound, basis = metric_bound(model_bound, otype, metric)
            name = prefix + metric + ("" if filt == "none" else f",{filt}")
            settings = {
                "lm_eval_task": key,
                "output_type": otype,
                "num_fewshot": shots.get(key, shots.get(leaves[0]) if leaves else None),
                "lm_eval_task_version": versions.get(key),
                "score_basis": basis,
            }
            rows.append(MetricValue(name, v, stderr, n, bound, bool(higher), settings))
    return rows


def _json_safe(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


def samples_to_examples(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """lm-eval's per-document records → examples (scores and metric values, no document text)."""
    out: list[dict[str, Any]] = []
    for task, samples in sorted((results.get("samples") or {}).items()):
        for s in samples:
            ex: dict[str, Any] = {"index": len(out), "lm_eval_task": task, "doc_id": s.get("doc_id"), "target": s.get("target")}
            resps = s.get("filtered_resps")
            if isinstance(resps, list) and resps and all(isinstance(r, (list, tuple)) and len(r) == 2 for r in resps):
                ex["loglikelihoods"] = [float(r[0]) for r in resps]
                ex["is_greedy"] = [bool(r[1]) for r in resps]
            else:
                ex["response"] = resps
            if s.get("filter") not in (None, "none"):
                ex["filter"] = s["filter"]
            for m in s.get("metrics") or []:
                if m in s:
                    ex[m] = s[m]
            out.append(_json_safe(ex))
    return out


def _dataset_description(results: Mapping[str, Any], primary: list[str], local: dict[str, dict[str, str]]) -> tuple[str, str | None]:
    configs = results.get("configs") or {}
    parts, split = [], None
    for key in primary:
        leaves = _leaf_names(results, key)
        cfg = configs.get(key) or configs.get(leaves[0]) or {}
        if split is None:
            split = cfg.get("test_split") or cfg.get("validation_split")
        if any(t in local for t in leaves):
            files = sorted({f for t in leaves for f in local.get(t, {}).values()})
            parts.append("local:" + (files[0] if len(files) == 1 else f"{len(files)} files"))
        else:
            path = cfg.get("dataset_path", "?")
            src = "local" if path in _LOCAL_BUILDERS else "hf"
            name = cfg.get("dataset_name") if len(leaves) == 1 else None
            parts.append(f"{src}:{path}" + (f"/{name}" if name else ""))
    return ";".join(parts), split


# -- the task --------------------------------------------------------------------------------------
def run_lmeval(model: LanguageModel, task: TaskSpec, *, seed: int, limit: int | None) -> TaskOutput:
    try:
        import lm_eval
    except ImportError:  # pragma: no cover
        raise BadSpec("lmeval tasks need lm-eval: pip install 'dlmbench[lm-eval]'") from None
    from dlmbench.integrations.lmeval import DlmbenchLM

    st = task.typed_settings
    names = _names(st.lm_eval_task)
    if not names:
        raise BadSpec(f"task {task.name}: set lm_eval_task to an lm-eval task or group name")
    num_fewshot = st.num_fewshot
    include = _paths(st.include_path)
    include_defaults = st.include_defaults
    task_dir = st.lm_eval_task_dir
    fewshot_seed = st.fewshot_seed
    bootstrap = st.bootstrap_iters
    data_files = _data_files(task)

    with tempfile.TemporaryDirectory(prefix="dlmbench-lmeval-") as tmp:
        tm = task_manager(names, include_path=include, include_defaults=include_defaults, task_dir=task_dir)
        _check_known(tm, names)
        local: dict[str, dict[str, str]] = {}
        if data_files:
            local = local_override_yamls(tm, names, data_files, Path(tmp))
            tm = task_manager(names, include_path=[*include, tmp], include_defaults=include_defaults, task_dir=task_dir)
        leaves = {e.name: e for n in names for e in leaf_entries(tm, n)}
        try:
            loaded = [tm.load([n]) for n in names]
        except Exception as e:  # datasets offline, missing files, bad YAML
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DatasetUnavailable(
                f"task {task.name}: lm-eval could not build {', '.join(names)} ({type(e).__name__}: {msg}); offline, "
                "point it at a local copy with --set dataset.source=local --set dataset.path=FILE or --set include_path=DIR"
            ) from None
        tops: list[Any] = []
        objs: dict[str, Any] = {}
        for n, ld in zip(names, loaded):
            objs.update(ld["tasks"])
            if n in ld["groups"]:
                tops.append(ld["groups"][n])
            elif n in ld["tasks"]:
                tops.append(ld["tasks"][n])
            else:  # a tag: its tasks
                tops.extend(ld["tasks"].values())
        output_types = {t: o.get_config("output_type") for t, o in objs.items()}
        bridge = DlmbenchLM(model, seed=seed, greedy=st.greedy, prefix=st.prefix)
        bridge.skip_greedy_tasks = {
            t
            for t, o in objs.items()
            if output_types[t] == "multiple_choice"
            and not any(m.get("metric") == "exact_match" for m in (o.get_config("metric_list") or []))
        }
        results = lm_eval.simple_evaluate(
            model=bridge,
            tasks=tops,
            task_manager=tm,
            num_fewshot=num_fewshot,
            limit=limit,
            log_samples=True,
            bootstrap_iters=bootstrap,
            fewshot_random_seed=fewshot_seed,
        )
    if results is None:  # pragma: no cover - non-zero rank
        raise BadSpec("lm-eval returned no results (not rank 0)")
    rows = results_to_rows(results, names, model.bound, output_types)
    if not rows:
        raise DatasetUnavailable(f"task {task.name}: lm-eval produced no metrics for {', '.join(names)}")
    examples = samples_to_examples(results)
    dataset, split = _dataset_description(results, names, local)
    cfg = results.get("config") or {}
    settings = {
        "lm_eval_version": lm_eval_version(),
        "lm_eval_tasks": names,
        "lm_eval_leaf_tasks": sorted(leaves),
        "num_fewshot": {k: v for k, v in (results.get("n-shot") or {}).items()},
        "lm_eval_task_versions": _json_safe(results.get("versions") or {}),
        "include_path": include or None,
        "local_data_files": local or None,
        "fewshot_seed": fewshot_seed,
        "lm_eval_seeds": {k: cfg.get(k) for k in ("random_seed", "numpy_seed", "torch_seed", "fewshot_seed")},
        "bootstrap_iters": bootstrap,
        "greedy": bridge.greedy,
        "greedy_skipped_tasks": sorted(bridge.skip_greedy_tasks),
        "loglikelihood_kind": "exact" if model.bound == "exact" else "lower bound (negative of an MC upper bound on the NLL)",
        "requests": dict(bridge.counts),
        **_json_safe(bridge.provenance()),
        **_json_safe(bridge.score_info),
    }
    return TaskOutput(rows, examples, settings, dataset=dataset, split=split)
