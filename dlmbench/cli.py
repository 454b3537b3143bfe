"""``dlmbench`` command line: parses arguments, calls the library, prints. No logic of its own.

Every user mistake is a :class:`~dlmbench.errors.DlmbenchError`, printed as one line
(``error: ...``) with exit status 2. Unexpected failures print one line too (exit status 1); set
``DLMBENCH_DEBUG=1`` to see the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path
from collections.abc import Sequence

from dlmbench import __version__
from dlmbench.errors import BadSpec, DlmbenchError, ResultsError

EPILOG = """examples:
  dlmbench list models
  dlmbench show task kjv                 # the card and its settings: type, default, value, meaning
  dlmbench run --model smollm2-135m --task kjv --limit 200
  dlmbench run --model gpt2 --task wikitext2-sliding --set stride=512
  dlmbench results --format csv --out results/
  dlmbench run --suite zoo --out results/ && dlmbench report --out results/
  dlmbench regress --baseline results/baselines/zoo-smoke --candidate results
  dlmbench zoo list
  dlmbench lm-eval --model dlmbench --model_args model=smollm2-135m --tasks arc_easy --limit 20
"""


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line (exit 2) instead of a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="dlmbench",
        description="Evaluate diffusion and autoregressive language models on the same tasks, with honest error bars.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"dlmbench {__version__}")
    p.add_argument(
        "--specs",
        action="append",
        default=[],
        metavar="DIR",
        help="extra folder of model/task YAML cards (repeatable; also $DLMBENCH_SPECS)",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    ls = sub.add_parser("list", help="list the known models, tasks, model families or task types")
    ls.add_argument("what", choices=["models", "tasks", "suites", "families", "task-types"])

    show = sub.add_parser("show", help="print one model or task card, resolved, and its settings (type, default, value, meaning)")
    show.add_argument("what", choices=["model", "task"])
    show.add_argument("name")

    run = sub.add_parser(
        "run",
        help="evaluate model(s) on task(s) and write run folders",
        description="Evaluate each model on each task (comma-separated lists make a grid). Finished jobs "
        "with the same resolved spec are read back from the results folder unless --force.",
    )
    run.add_argument("--model", "-m", default=None, help="model name(s), alias(es) or YAML path(s), comma-separated")
    run.add_argument("--task", "-t", default=None, help="task name(s) or YAML path(s), comma-separated")
    run.add_argument("--suite", default=None, metavar="NAME|FILE", help="a suite: models × tasks × settings grid × seeds; a YAML file or the name of a shipped one (dlmbench list suites)")
    run.add_argument("--dry-run", action="store_true", help="list the jobs and which are cached, run nothing")
    run.add_argument("--limit", type=int, default=None, metavar="N", help="use only the first N documents/examples")
    run.add_argument("--seed", type=int, default=None, help="run seed for every Monte Carlo draw and sample (default 0, or the suite's seeds)")
    run.add_argument("--batch-size", default=None, metavar="B|auto", help="rows per forward pass, or auto: the largest that fits the device, probed once per model and sequence length and cached (does not change results)")
    run.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default cpu)")
    run.add_argument("--out", default="results", metavar="DIR", help="results root (default results/)")
    run.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any model/task setting (repeatable); prefix with model./task./packing. to pick a side",
    )
    run.add_argument("--force", action="store_true", help="recompute even if a finished run with the same spec exists")
    run.add_argument("--json", action="store_true", help="print the rows as JSON lines instead of a table")
    run.add_argument(
        "--checkpoint",
        default=None,
        metavar="PATH",
        help="score this checkpoint folder as the one --model card (same name, family and settings; new weights, "
        "and a tokenizer the card reads from its own folder); for CI checks of a new checkpoint",
    )
    run.add_argument(
        "--check",
        default=None,
        metavar="BASELINE",
        help="after running, compare this invocation's runs with BASELINE as `dlmbench regress` does and exit with its status (0/1/2)",
    )
    run.add_argument("--markdown", default=None, metavar="FILE", help="with --check: also write the comparison's markdown table to FILE")
    run.add_argument("--junit", default=None, metavar="FILE", help="with --check: write JUnit XML to FILE (one testcase per metric; failures are regressions)")
    run.add_argument(
        "--progress",
        choices=["auto", "on", "off"],
        default="auto",
        help="progress on stderr. auto: bars on a terminal, elsewhere (CI, nohup, Slurm) a line at least every 30 s "
        "with done/total, rate and ETA (DLMBENCH_PROGRESS_EVERY=SECONDS); on: bars always; off: only the per-job lines",
    )
    sc = run.add_argument_group(
        "where the jobs run",
        "local (default): one after another here; under `torchrun --nproc_per_node N -m dlmbench.cli run ...` each "
        "job is data-parallel over the N ranks. slurm: a Slurm job array through submitit (pip install "
        "'dlmbench[slurm]'). ray: Ray tasks (pip install 'dlmbench[ray]'). Remote workers must see --out.",
    )
    sc.add_argument("--backend", choices=["local", "slurm", "ray"], default="local", help="job-grid backend (default local)")
    sc.add_argument("--gpus", type=int, default=None, metavar="N", help="GPUs per job on slurm/ray (default 1 with a cuda --device, else 0)")
    sc.add_argument("--ranks", type=int, default=None, metavar="N", help="slurm: data-parallel processes per job (default one per GPU)")
    sc.add_argument("--slurm-partition", default=None, metavar="NAME", help="Slurm partition")
    sc.add_argument("--slurm-time", type=int, default=240, metavar="MIN", help="time limit per job in minutes (default 240)")
    sc.add_argument("--slurm-cpus", type=int, default=None, metavar="N", help="CPUs per task")
    sc.add_argument("--slurm-mem-gb", type=float, default=None, metavar="GB", help="memory per node in GB")
    sc.add_argument("--slurm-array-parallelism", type=int, default=None, metavar="N", help="at most N jobs of the array at once")
    sc.add_argument(
        "--slurm-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other submitit Slurm parameter, e.g. account=ABC, qos=high, constraint=a100 (repeatable)",
    )
    sc.add_argument("--slurm-logs", default=None, metavar="DIR", help="submitit's folder for job logs (default OUT/.slurm)")
    sc.add_argument(
        "--slurm-cluster",
        choices=["slurm", "local", "debug"],
        default="slurm",
        help="submitit executor: slurm (default); local runs the array as local processes (testing)",
    )
    sc.add_argument("--no-wait", action="store_true", help="slurm: submit and return; run the same command later to collect")
    sc.add_argument("--ray-address", default=None, metavar="ADDR", help="Ray cluster to use (default $RAY_ADDRESS, else a new local instance)")
    sc.add_argument("--ray-cpus", type=float, default=1, metavar="N", help="CPUs per Ray task (default 1)")

    res = sub.add_parser("results", help="print or export the tidy results table")
    res.add_argument("--out", default=None, metavar="DIR", help="results root to read (default results/)")
    res.add_argument("--out-dir", dest="old_out_dir", default=None, help=argparse.SUPPRESS)  # deprecated spelling
    res.add_argument("--format", choices=["table", "csv", "json"], default="table")
    res.add_argument("--model", default=None, help="only rows of this model")
    res.add_argument("--task", default=None, help="only rows of this task")
    res.add_argument("--export", default=None, metavar="FILE", help="also write the table to FILE (.csv, .parquet or .json)")
    pick = res.add_mutually_exclusive_group()
    pick.add_argument("--all", dest="runs", action="store_const", const="all",
                      help="every run (default: per model, task, settings and checkpoint the run the report shows: "
                      "largest n, at equal n a full run, then the newest)")
    pick.add_argument("--latest", dest="runs", action="store_const", const="latest",
                      help="per model, task, settings and checkpoint the newest run, whatever its n")
    rep = sub.add_parser("report", help="write leaderboard.md, leaderboard.html and plots from the tidy table")
    rep.add_argument("--out", default=None, metavar="DIR", help="results root to read (default results/)")
    rep.add_argument("--dest", default=None, metavar="DIR", help="where to write the report (default OUT/leaderboard)")
    rep.add_argument("old_results_dir", nargs="?", default=None, help=argparse.SUPPRESS)  # deprecated spelling
    reg = sub.add_parser(
        "regress",
        help="compare a candidate against a baseline with statistics; exit 1 on a real regression",
        description="Match rows by model/task/metric/settings and test each metric one-sided for a worsening "
        "(paired bootstrap on per-example values, z-test on stderr otherwise). Exit 0: no regression; 1: a "
        "regression; 2: cannot compare. See docs/regress.md.",
    )
    from dlmbench.regress.command import add_arguments as _regress_arguments

    _regress_arguments(reg)

    zoo = sub.add_parser("zoo", help="train the reference zoo of tiny models (every family, on CPU)")
    from dlmbench.zoo.command import add_arguments as _zoo_arguments

    _zoo_arguments(zoo)
    # only listed here for --help: main() hands everything after `lm-eval` to lm-eval untouched
    sub.add_parser(
        "lm-eval",
        help="lm-eval's own command line with the model `dlmbench` registered (every argument forwarded)",
        add_help=False,
    )
    return p


def _lm_eval_argv(argv: Sequence[str]) -> tuple[list[str], list[str]] | None:
    """``[--specs DIR]... lm-eval ARGS`` → (spec folders, ARGS); None when the command is not lm-eval."""
    folders: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--specs" and i + 1 < len(argv):
            folders.append(argv[i + 1])
            i += 2
        elif a.startswith("--specs="):
            folders.append(a.split("=", 1)[1])
            i += 1
        else:
            break
    if i < len(argv) and argv[i] == "lm-eval":
        return folders, list(argv[i + 1 :])
    return None


def cmd_lm_eval(folders: Sequence[str], args: Sequence[str]) -> int:
    """Run lm-eval's CLI (``lm_eval.__main__.cli_evaluate``) with :class:`DlmbenchLM` registered.

    lm-eval 0.4.13 finds models only in its own registry (no entry points or plugin hook), so a plain
    ``lm_eval --model dlmbench`` cannot see ours; this imports the bridge first. ``--specs`` folders
    reach the bridge through ``$DLMBENCH_SPECS``."""
    try:
        from dlmbench.integrations import lmeval as lmeval_bridge
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "lm_eval":
            raise
        raise BadSpec("`dlmbench lm-eval` needs lm-eval: pip install 'dlmbench[lm-eval]'") from None
    for d in folders:
        if not Path(d).expanduser().is_dir():
            raise BadSpec(f"specs folder {d} (from --specs) does not exist; give a folder holding models/ and tasks/ YAML cards")
    from dlmbench.registry import ENV_VAR

    saved = os.environ.get(ENV_VAR)
    if folders:
        old = [d for d in (saved or "").split(os.pathsep) if d.strip()]
        os.environ[ENV_VAR] = os.pathsep.join([*old, *(str(Path(d).expanduser().resolve()) for d in folders)])
    try:
        lmeval_bridge.main(list(args))
    except SystemExit as e:  # lm-eval's argparse and --help exit; keep their status
        code = e.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        if saved is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = saved
    return 0


def _parse_settings(items: Sequence[str], flag: str = "--set") -> dict:
    from dlmbench.specs import parse_value

    out = {}
    for item in items:
        if "=" not in item or item.startswith("="):
            raise BadSpec(f"{flag} expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = parse_value(value)
    return out


def _split(names: str) -> list[str]:
    out = [n.strip() for n in names.split(",") if n.strip()]
    if not out:
        raise BadSpec("empty --model/--task list")
    return out


def cmd_list(args) -> int:
    from dlmbench.registry import Registry

    if args.what == "families":  # the family table (built-ins, then entry-point plugins); no cards needed
        from dlmbench.plugins import families

        for f in families():
            origin = "" if f.origin == "dlmbench" else f"  [{f.origin}]"
            settings = f.settings.split(":")[-1] if f.settings else "-"
            print(_fit(f"{f.name:<8} {settings:<15} {', '.join(sorted(f.capabilities))}"))
            print(textwrap.fill(f"{f.description}{origin}", LIST_WIDTH, initial_indent=" " * 9, subsequent_indent=" " * 9,
                                break_on_hyphens=False))
        return 0
    if args.what == "suites":  # shipped with the package; run one with --suite NAME
        from dlmbench.runner.suite import packaged_suites
        from dlmbench.specs import load_yaml

        print(_fit(f"{'name':<22} {'jobs':<18} description"))
        for name, path in packaged_suites().items():
            data = load_yaml(path) or {}
            grid = f"{len(data.get('models') or [])} models × {len(data.get('tasks') or [])} tasks"
            head = next((ln.lstrip("# ").strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.startswith("#")), "")
            print(_fit(f"{name:<22} {grid:<18} {_summary(head)}"))
        print("(run one: dlmbench run --suite NAME; --dry-run lists its jobs)")
        return 0
    if args.what == "task-types":
        from dlmbench.specs.task_settings import TASK_SETTINGS_TYPES, user_fields

        for name, cls in TASK_SETTINGS_TYPES.items():
            print(f"{name:<11} {cls.__name__}")
            print(textwrap.fill(", ".join(user_fields(cls)), LIST_WIDTH, initial_indent="    settings: ", subsequent_indent=" " * 14))
        return 0
    from dlmbench.data.availability import checkpoint_offline, dataset_offline

    reg = Registry.default(args.specs)
    if args.what == "models":
        print(_fit(f"{'name':<22} {'family':<6} {'offline':<7} checkpoint"))
        for name in reg.model_names():
            s = reg.models[name]
            aliases = f" (alias: {', '.join(s.aliases)})" if s.aliases else ""
            print(_fit(f"{name:<22} {s.family:<6} {checkpoint_offline(s.checkpoint):<7} {s.checkpoint.describe()}{aliases}"))
    else:
        print(_fit(f"{'name':<22} {'type':<11} {'offline':<7} summary"))
        for name in reg.task_names():
            s = reg.tasks[name]
            print(_fit(f"{name:<22} {s.type:<11} {dataset_offline(s.dataset, s.type):<7} {_summary(s.description)}"))
    print(f"(offline: yes on disk, cached in a local cache, no needs network; more: dlmbench show {args.what[:-1]} NAME)")
    return 0


LIST_WIDTH = 100


def _summary(description: str) -> str:
    """A card description's first sentence without its parenthesised asides (the full text is in ``show``)."""
    import re

    text = " ".join(description.split())
    while True:  # innermost parentheses first, so nested ones go too
        shorter = re.sub(r"\s*\([^()]*\)", "", text)
        if shorter == text:
            break
        text = shorter
    m = re.search(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)[.;:](\s|$)", text)
    return text[: m.start() + 1].rstrip(";:") if m else text


def _fit(line: str, width: int = LIST_WIDTH) -> str:
    """``line`` cut to ``width`` columns, with an ellipsis where it was cut."""
    return line if len(line) <= width else line[: width - 1].rstrip() + "…"


def cmd_show(args) -> int:
    """The card as resolved, then its settings: name, type, default, the value in effect, meaning."""
    import yaml

    from dlmbench.registry import Registry
    from dlmbench.specs.docs import setting_rows, text_table

    reg = Registry.default(args.specs)
    spec = reg.model(args.name) if args.what == "model" else reg.task(args.name)
    if spec.source_file:
        print(f"# from {spec.source_file}")
    print(yaml.safe_dump(spec.to_dict(), sort_keys=False, allow_unicode=True), end="")
    print()
    if args.what == "model":
        from dlmbench.runner.resolve import family_settings_type, model_settings

        cls = family_settings_type(spec.family)
        if cls is None:
            print(f"settings: family {spec.family} declares no settings type; its adapter checks them when it loads")
            return 0
        model_settings(spec)  # the card's own values must validate
        print(f"settings (family {spec.family}, {cls.__module__}.{cls.__qualname__}; --set KEY=VALUE or model.KEY=VALUE):")
        print(text_table(setting_rows(cls, spec.settings, "card")), end="")
        return 0
    from dlmbench.specs.task_settings import PackingSettings, expand_preset, task_settings_type

    cls = task_settings_type(spec.type)
    spec.typed_settings  # the card's own values must validate  # noqa: B018
    print(f"settings (task type {spec.type}, {cls.__module__}.{cls.__qualname__}; --set KEY=VALUE or task.KEY=VALUE):")
    print(text_table(setting_rows(cls, spec.settings, "card")), end="")
    if spec.type == "perplexity" or spec.packing:
        print("\npacking (--set packing.KEY=VALUE):")
        print(text_table(setting_rows(PackingSettings, expand_preset(spec.packing), "card")), end="")
    return 0


def _scheduler_options(args):
    from dlmbench.runner.backends import RayOptions, SlurmOptions

    for name in ("gpus", "ranks", "slurm_cpus", "slurm_array_parallelism"):
        v = getattr(args, name)
        if v is not None and v < (0 if name == "gpus" else 1):
            raise BadSpec(f"--{name.replace('_', '-')} must be {'≥ 0' if name == 'gpus' else 'a positive integer'}, not {v}")
    gpus = args.gpus if args.gpus is not None else (1 if str(args.device).startswith("cuda") else 0)
    slurm = SlurmOptions(
        partition=args.slurm_partition,
        time_min=args.slurm_time,
        gpus=gpus,
        ranks=args.ranks or max(gpus, 1),
        cpus=args.slurm_cpus,
        mem_gb=args.slurm_mem_gb,
        array_parallelism=args.slurm_array_parallelism,
        extra=_parse_settings(args.slurm_opt, "--slurm-opt"),
        cluster=args.slurm_cluster,
        logs=args.slurm_logs,
        wait=not args.no_wait,
    )
    return slurm, RayOptions(address=args.ray_address, gpus=gpus, cpus=args.ray_cpus)


def _check(jobs, baseline: str, markdown_file: str | None = None, junit_file: str | None = None) -> int:
    """``--check``: this invocation's runs as the candidate of a regress comparison (default options), against
    the baseline's rows of the same models and tasks."""
    from dlmbench.regress.compare import StatOptions, compare
    from dlmbench.regress.inputs import load_side
    from dlmbench.regress.matching import Options
    from dlmbench.regress.render import markdown
    from dlmbench.store import is_finished

    ran = {(job.run.model.name, job.run.task.name) for job in jobs}
    # the baseline may hold more models and tasks than this invocation ran (a suite's baseline checked one model)
    base = [e for e in load_side(baseline, "baseline") if (e.row.get("model"), e.row.get("task")) in ran]
    cand = [e for job in jobs if is_finished(job.folder) for e in load_side(job.folder, "candidate")]
    if not cand:
        raise BadSpec("--check: no finished run to compare")
    if not base:
        names = ", ".join(f"{m} × {t}" for m, t in sorted(ran))
        raise BadSpec(f"--check: baseline {baseline} has no rows for {names}")
    report = compare(base, cand, Options(), StatOptions())
    md = markdown(report, str(baseline), "this run")
    print(md, end="")
    from dlmbench.regress.render import junit_xml

    for path, text in ((markdown_file, md), (junit_file, None)):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text if text is not None else junit_xml(report), encoding="utf-8")
    for p in report.blocking_problems:
        print(f"error: cannot compare {p.line()}", file=sys.stderr)
    if report.regressions:
        print("regression: " + ", ".join(f"{r.model}/{r.task}/{r.metric}" for r in report.regressions), file=sys.stderr)
    return report.exit_code


def cmd_run(args) -> int:
    from dlmbench import api
    from dlmbench import progress as bars
    from dlmbench.report.table import render
    from dlmbench.runner.distributed import is_main_process
    from dlmbench.store import is_finished

    if args.limit is not None and args.limit < 1:
        raise BadSpec(f"--limit must be a positive integer, not {args.limit}")
    if args.batch_size is not None:
        from dlmbench.specs.settings import check_batch_size

        args.batch_size = check_batch_size(args.batch_size, "--batch-size")
    if args.suite and (args.model or args.task):
        raise BadSpec("give either --suite or --model/--task, not both")
    if not args.suite and not (args.model and args.task):
        raise BadSpec("give --model and --task (comma-separated lists make a grid), or --suite FILE")
    if (args.markdown or args.junit) and not args.check:
        raise BadSpec("--markdown and --junit write the --check comparison; give --check BASELINE too")
    if args.check and not Path(args.check).exists():
        raise BadSpec(f"--check: baseline {args.check} does not exist (give a results folder, run folder or .csv/.parquet export)")
    settings = _parse_settings(args.settings)
    slurm, ray = _scheduler_options(args)
    suite = args.suite or {"models": _split(args.model), "tasks": _split(args.task)}
    # resolve the whole grid first, so a typo fails before any work
    jobs = api.plan_suite(
        suite, out=args.out, settings=settings, limit=args.limit,
        seeds=None if args.seed is None else [args.seed], specs=args.specs,
        where=None if args.suite else "command line", checkpoint=args.checkpoint,
    )
    if args.dry_run:
        cached = [not args.force and is_finished(job.folder) for job in jobs]
        for job, c in zip(jobs, cached):
            print(f"{'cached' if c else 'to run':<7} {job.run_id}  {job.label}")
        print(f"{len(jobs)} jobs: {len(jobs) - sum(cached)} to run, {sum(cached)} cached")
        return 0
    main_rank = is_main_process()
    if args.progress == "off":
        os.environ[bars.ENV_VAR] = "1"  # the adapters' per-job bars too
    quiet = None if main_rank else (lambda msg: None)
    done = api.run_suite(
        jobs, out=args.out, backend=args.backend, device=args.device, batch_size=args.batch_size,
        force=args.force, progress=args.progress, slurm=slurm, ray=ray, log=quiet,
    )
    summary = done.summary
    if not main_rank:  # other torchrun ranks: rank 0 prints and checks
        return 1 if summary.failed else 0
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    if len(jobs) == 1 and not summary.failed and not summary.submitted:
        note = " (cached: this exact spec already finished; --force recomputes)" if summary.cached else ""
        log(f"wrote {jobs[0].folder}{note}")
    elif len(jobs) == 1 and summary.failed:  # one job, one line
        job, msg = summary.failed[0]
        log(f"error: {job.label}: {msg} (recorded in {job.failure_path(args.out)})")
    else:
        log(f"summary: {summary.line()}" + (f" (errors under {Path(args.out) / 'failures'})" if summary.failed else ""))
        for job, msg in summary.failed:
            log(f"  failed: {job.label}: {msg}")
        if summary.failed:
            log(f"error: {len(summary.failed)} of {len(jobs)} jobs failed (listed above)")
    # rows of the jobs that finished now or earlier; a failed job shows none (not even an earlier run's)
    failed = {job.run_id for job, _ in summary.failed}
    all_rows = [r.to_json() for r in done.rows() if r.run_id not in failed]
    if args.json:
        from dlmbench.store import dumps

        for r in all_rows:
            print(dumps(r))
    elif all_rows:
        print(render(all_rows))
        r0 = all_rows[0]
        st = r0["settings"]
        print(
            f"\nseed {r0['seed']}, limit {st.get('limit')}, dtype {st.get('dtype', '?')}, "
            f"dlmbench {r0['dlmbench_version']} (git {r0['git_commit'][:12]}), torch {r0['torch_version']}, {r0['device']}"
        )
        if any(r["bound"] == "upper" for r in all_rows):
            print("≤: diffusion likelihoods are Monte Carlo upper bounds on the NLL (stderr includes the MC error).")
    if args.check:
        print()
        status = _check(jobs, args.check, args.markdown, args.junit)
        if status == 0 and (summary.failed or summary.submitted):
            log("check incomplete: some jobs failed or are still running, so their rows were not compared")
            return 2
        return status
    return 1 if summary.failed else 0


def _deprecated(old: str, new: str) -> None:
    """One line on stderr: an old spelling still works, and which one to use instead."""
    print(f"warning: {old} is deprecated; use {new}", file=sys.stderr)


def _results_root(args) -> str:
    """``results``: the results root is ``--out`` (``--out-dir`` still works, with a notice)."""
    if args.old_out_dir is not None:
        if args.out is not None and args.out != args.old_out_dir:
            raise BadSpec("give the results folder once: --out DIR (--out-dir is its deprecated spelling)")
        _deprecated("--out-dir DIR", "--out DIR")
        return args.old_out_dir
    return args.out or "results"


def _report_folders(args) -> tuple[str, str]:
    """``report``: (results root, where to write). New: ``--out RESULTS [--dest DIR]``. Old, still working
    with a notice: ``report RESULTS [--out DIR]`` (the positional was the results root, ``--out`` the report)."""
    if args.old_results_dir is None:
        root = args.out or "results"
        return root, args.dest or str(Path(root) / "leaderboard")
    root = args.old_results_dir
    if args.out is not None:
        if args.dest is not None:
            raise BadSpec("give either --out RESULTS --dest DIR or the old RESULTS --out DIR, not a mix")
        _deprecated(f"`report {root} --out {args.out}`", f"`report --out {root} --dest {args.out}`")
        return root, args.out
    _deprecated(f"`report {root}` (a positional results folder)", f"`report --out {root}`")
    return root, args.dest or str(Path(root) / "leaderboard")


def cmd_results(args) -> int:
    from dlmbench.report.selection import select_runs
    from dlmbench.report.table import render
    from dlmbench.store import export_table, load_table, wide_table

    root = _results_root(args)
    df = load_table(root)
    if args.model:
        df = df[df["model"] == args.model]
    if args.task:
        df = df[df["task"] == args.task]
    policy = args.runs or "largest_n"
    if policy != "all":
        df, unused = select_runs(df, policy)
        if not unused.empty:
            print(f"{len(unused)} run(s) superseded by a run of the same settings not shown (--all shows every run)", file=sys.stderr)
    if args.export:
        path = export_table(df, args.export)
        print(f"wrote {path}", file=sys.stderr)
    if args.format == "table":
        if df.empty:
            print(f"no results under {root}")
        else:
            recs = [{**r, "limit": "full" if r["limit"] is None or str(r["limit"]) == "<NA>" else r["limit"]} for r in df.to_dict("records")]
            print(render(recs, ("model", "task", "metric", "value", "n", "limit", "bound", "seed", "run_id")))
    elif args.format == "csv":
        print(wide_table(df).to_csv(index=False), end="")
    else:  # strict JSON lines: null for a missing or non-finite number, never NaN
        from dlmbench.store import dumps

        for rec, orig in zip(wide_table(df).to_dict("records"), df.to_dict("records")):
            rec = {k: (None if not isinstance(v, (dict, list, str)) and _isna(v) else v) for k, v in rec.items()}
            rec["settings"], rec["versions"] = orig["settings"], orig["versions"]  # nested objects in JSON
            print(dumps(rec))
    return 0


def _isna(v) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def cmd_report(args) -> int:
    from dlmbench.report.leaderboard import write_report
    from dlmbench.store import load_table

    root, dest = _report_folders(args)
    if not Path(root).exists() and args.old_results_dir is None and args.out is not None:
        raise ResultsError(
            f"results folder {root} does not exist; `report --out` names the results folder to read "
            "(write the report elsewhere with --dest DIR)"
        )
    df = load_table(root)
    written = write_report(df, dest, results_root=root)
    print(f"wrote {written['markdown']} and {written['html']} ({len(df)} rows)", file=sys.stderr)
    return 0


def cmd_zoo(args) -> int:
    from dlmbench.zoo.command import run

    return run(args)


def cmd_regress(args) -> int:
    from dlmbench.regress.command import run_from_args

    return run_from_args(args)


COMMANDS = {
    "list": cmd_list,
    "show": cmd_show,
    "run": cmd_run,
    "results": cmd_results,
    "report": cmd_report,
    "regress": cmd_regress,
    "zoo": cmd_zoo,
}


def main(argv: Sequence[str] | None = None) -> int:
    lm_eval_args = _lm_eval_argv(sys.argv[1:] if argv is None else list(argv))
    if lm_eval_args is not None:
        command, call = "lm-eval", (lambda: cmd_lm_eval(*lm_eval_args))
    else:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # a usage mistake (one line already printed), --help or --version
            return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        if not args.command:
            parser.print_help()
            return 0
        command, call = args.command, (lambda: COMMANDS[args.command](args))
    try:
        return call()
    except DlmbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished runs are saved; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # an internal error: still one line unless asked for the traceback
        if os.environ.get("DLMBENCH_DEBUG"):
            raise
        if command == "lm-eval":  # raised inside lm-eval (unknown task, bad task YAML, ...): its message, one line
            first = (str(e).strip().splitlines() or [""])[0]
            print(f"error: lm-eval: {type(e).__name__}: {first} (set DLMBENCH_DEBUG=1 for the traceback)", file=sys.stderr)
            return 1
        print(f"internal error: {type(e).__name__}: {e} (set DLMBENCH_DEBUG=1 for the traceback and report it)", file=sys.stderr)
        # regress: 1 means "a regression was found", so a failure to compare must not look like one
        return 2 if command == "regress" else 1


if __name__ == "__main__":
    sys.exit(main())
