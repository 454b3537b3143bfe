"""Regression checks for CI: compare a candidate's results against a baseline with statistics.

``dlmbench regress --baseline results/baselines/X --candidate results`` matches rows by
model/task/metric/seed/settings (:mod:`.matching`), tests each metric one-sided in the "worse" direction
(paired bootstrap or McNemar on per-example values where both runs scored the same examples, a z-test
from the rows' stderr otherwise; :mod:`.stats`, :mod:`.recipes`), corrects for the number of metrics
(Holm), applies tolerances (:mod:`.compare`), and prints a markdown table / writes JUnit XML
(:mod:`.render`). Exit status 0 (no regression), 1 (regression), 2 (cannot compare). See docs/regress.md.

Entry points for the CLI: :func:`add_arguments` and :func:`run_from_args` (:mod:`.command`); :func:`main`
runs it standalone (``python -m dlmbench.regress``).
"""

from dlmbench.regress.command import add_arguments, main, options_from_args, run_from_args
from dlmbench.regress.compare import Report, Result, StatOptions, compare
from dlmbench.regress.inputs import Entry, load_side
from dlmbench.regress.matching import DEFAULT_IGNORED, Options, Problem, match
from dlmbench.regress.render import junit_xml, markdown

__all__ = [
    "DEFAULT_IGNORED",
    "Entry",
    "Options",
    "Problem",
    "Report",
    "Result",
    "StatOptions",
    "add_arguments",
    "compare",
    "junit_xml",
    "load_side",
    "main",
    "markdown",
    "match",
    "options_from_args",
    "run_from_args",
]
