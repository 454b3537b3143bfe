"""``dlmbench regress``: arguments, reading both sides, printing the table, writing JUnit, exit status.

Exit status: 0 no regression, 1 at least one regression, 2 cannot compare (missing rows, mismatched
settings, exact vs bound, ambiguous rows — each named), which takes precedence over 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dlmbench.errors import BadSpec, DlmbenchError
from dlmbench.regress.compare import CORRECTIONS, StatOptions, compare
from dlmbench.regress.inputs import load_side
from dlmbench.regress.matching import DEFAULT_IGNORED, MODEL_MATCH, Options
from dlmbench.regress.render import junit_xml, markdown


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``regress`` subcommand's arguments (the CLI calls this on its subparser)."""
    parser.add_argument("--baseline", required=True, metavar="PATH", help="results root, run folder, or .csv/.parquet export of the baseline")
    parser.add_argument("--candidate", required=True, metavar="PATH", help="results root, run folder, or .csv/.parquet export of the candidate")
    g = parser.add_argument_group("matching")
    g.add_argument(
        "--match-model-by",
        choices=MODEL_MATCH,
        default="name",
        help="pair rows by model name (default), by family (a new checkpoint vs the baseline model of its family), or ignore the model",
    )
    g.add_argument("--baseline-model", default=None, metavar="NAME", help="use only this model's baseline rows and compare them with --candidate-model's")
    g.add_argument("--candidate-model", default=None, metavar="NAME", help="use only this model's candidate rows (a new checkpoint with a new name)")
    g.add_argument("--task", default=None, help="only these tasks (comma-separated)")
    g.add_argument("--metric", default=None, help="only these metrics (comma-separated)")
    g.add_argument("--skip-metric", default=None, metavar="METRIC", help="leave these metrics out (comma-separated), e.g. seconds_per_sample")
    g.add_argument(
        "--ignore-setting",
        action="append",
        default=[],
        metavar="KEY",
        help=f"a settings key (dotted, e.g. mc_samples or packing.block_size) not to compare; repeatable. Always ignored: {', '.join(DEFAULT_IGNORED)} and timings",
    )
    g.add_argument("--ignore-seed", action="store_true", help="pair rows whatever their run seed (default: seed must match)")
    g.add_argument("--latest", action="store_true", help="where one side holds several runs with the same settings (re-runs), use the newest")
    g.add_argument("--allow-missing", action="store_true", help="rows without a counterpart are listed but do not make the exit status 2")
    s = parser.add_argument_group("statistics")
    s.add_argument("--alpha", type=float, default=0.01, help="family-wise significance level (default 0.01)")
    s.add_argument("--correction", choices=CORRECTIONS, default="holm", help="multiple-comparison correction over the tested metrics (default holm)")
    s.add_argument("--abs-tol", type=float, default=None, metavar="X", help="tolerated absolute worsening (task cards' regress.tolerance override it per metric)")
    s.add_argument("--rel-tol", type=float, default=None, metavar="X", help="tolerated worsening relative to the baseline value, e.g. 0.01 = 1%%")
    s.add_argument("--bootstrap", type=int, default=10_000, metavar="B", help="paired bootstrap resamples (raised automatically when needed for the corrected level; default 10000)")
    s.add_argument("--seed", type=int, default=0, help="seed of the paired bootstrap (default 0)")
    s.add_argument("--no-paired", action="store_true", help="use only the stderr-based z-test, even where per-example values pair up")
    o = parser.add_argument_group("output")
    o.add_argument("--markdown", default=None, metavar="FILE", help="also write the markdown table to FILE (e.g. $GITHUB_STEP_SUMMARY is appended to with --append)")
    o.add_argument("--append", action="store_true", help="append to the --markdown file instead of replacing it")
    o.add_argument("--junit", default=None, metavar="FILE", help="write JUnit XML (one testcase per metric; failures are regressions)")


def _csv(s: str | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in s.split(",") if x.strip()) if s else ()


def options_from_args(args: argparse.Namespace) -> tuple[Options, StatOptions]:
    if not 0.0 < args.alpha < 1.0:
        raise BadSpec(f"--alpha must be between 0 and 1, not {args.alpha}")
    for name in ("abs_tol", "rel_tol"):
        v = getattr(args, name)
        if v is not None and v < 0:
            raise BadSpec(f"--{name.replace('_', '-')} must be ≥ 0, not {v}")
    if args.bootstrap < 100:
        raise BadSpec(f"--bootstrap must be at least 100, not {args.bootstrap}")
    if (args.baseline_model is None) != (args.candidate_model is None):
        raise BadSpec("give --baseline-model and --candidate-model together (or neither)")
    opts = Options(
        match_model_by=args.match_model_by,
        baseline_model=args.baseline_model,
        candidate_model=args.candidate_model,
        ignore_seed=args.ignore_seed,
        ignore_settings=tuple(args.ignore_setting),
        allow_missing=args.allow_missing,
        latest=args.latest,
        tasks=_csv(args.task),
        metrics=_csv(args.metric),
        skip_metrics=_csv(args.skip_metric),
    )
    stat = StatOptions(
        alpha=args.alpha,
        correction=args.correction,
        abs_tol=args.abs_tol,
        rel_tol=args.rel_tol,
        n_boot=args.bootstrap,
        seed=args.seed,
        paired=not args.no_paired,
    )
    return opts, stat


def run_from_args(args: argparse.Namespace) -> int:
    """Compare, print the markdown table to stdout and problems to stderr; return the exit status."""
    opts, stat = options_from_args(args)
    base = load_side(args.baseline, "baseline")
    cand = load_side(args.candidate, "candidate")
    for side, model, entries in (("baseline", opts.baseline_model, base), ("candidate", opts.candidate_model, cand)):
        if model is not None and not any(e.row.get("model") == model for e in entries):
            present = sorted({str(e.row.get("model")) for e in entries})
            raise BadSpec(f"no {side} rows for model {model!r} (models there: {', '.join(present)})")
    report = compare(base, cand, opts, stat)
    if not report.results and not report.problems:
        raise BadSpec("nothing to compare after the --task/--metric filters")
    md = markdown(report, str(args.baseline), str(args.candidate))
    print(md, end="")
    if args.markdown:
        path = Path(args.markdown)
        if path.parent != Path(""):
            path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a" if args.append else "w", encoding="utf-8") as f:
            f.write(md)
    if args.junit:
        path = Path(args.junit)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(junit_xml(report), encoding="utf-8")
    for p in report.blocking_problems:
        print(f"error: cannot compare {p.line()}", file=sys.stderr)
    if report.regressions:
        names = ", ".join(f"{r.model}/{r.task}/{r.metric}" for r in report.regressions)
        print(f"regression: {names}", file=sys.stderr)
    return report.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry (``python -m dlmbench.regress``); the ``dlmbench regress`` subcommand is the same."""
    parser = argparse.ArgumentParser(prog="dlmbench regress", description="Compare a candidate against a baseline; exit 0/1/2.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except DlmbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - one line unless asked for the traceback, as the CLI
        if os.environ.get("DLMBENCH_DEBUG"):
            raise
        print(f"internal error: {type(e).__name__}: {e} (set DLMBENCH_DEBUG=1 for the traceback)", file=sys.stderr)
        return 2
