"""The leaderboard from a synthetic tidy table: markdown, self-contained HTML, plots, and a real
headless browser loading the page without console errors."""

import os
import shutil
import subprocess

import pytest

from dlmbench.report.leaderboard import write_report
from dlmbench.store import MetricRow, load_table, run_folder, write_run


def _row(run_id, model, family, task, metric, value, stderr, bound, settings=None, hib=False):
    return MetricRow(
        run_id=run_id, model=model, family=family, checkpoint="local:/x", task=task, metric=metric, value=value,
        stderr=stderr, n=100, bound=bound, higher_is_better=hib, seed=0, settings=settings or {}, dataset="d",
        split="test", dlmbench_version="0.1.0", git_commit="abcdef123456", torch_version="2.13.0",
        versions={}, device="cpu", started_at="2026-11-24T00:00:00", duration_s=1.0,
    )


@pytest.fixture()
def results(tmp_path):
    root = tmp_path / "results"
    runs = {
        "a1": [_row("a1", "tiny-ar", "ar", "kjv", "perplexity", 20.5, 0.4, "exact"), _row("a1", "tiny-ar", "ar", "kjv", "bits_per_byte", 1.21, 0.01, "exact")],
        "m1": [_row("m1", "tiny-mdlm", "mdlm", "kjv", "perplexity", 31.2, 0.9, "upper"), _row("m1", "tiny-mdlm", "mdlm", "kjv", "bits_per_byte", 1.43, 0.02, "upper")],
    }
    for steps, acc in ((16, 0.2), (64, 0.35), (256, 0.41)):
        rid = f"s{steps}"
        runs[rid] = [_row(rid, "tiny-mdlm", "mdlm", "countdown-cd3", "acc", acc, 0.02, "exact", {"steps": steps}, hib=True)]
    for steps, ppl, ent, nfe in ((32, 110.0, 5.4, 32), (128, 60.0, 5.3, 128), (1024, 25.0, 4.1, 1024)):
        rid = f"g{steps}"
        runs[rid] = [
            _row(rid, "tiny-mdlm", "mdlm", "genppl-kjv", "gen_ppl", ppl, 3.0, "exact", {"steps": steps}),
            _row(rid, "tiny-mdlm", "mdlm", "genppl-kjv", "entropy", ent, 0.05, "exact", {"steps": steps}, hib=True),
            _row(rid, "tiny-mdlm", "mdlm", "genppl-kjv", "reference_entropy", 5.35, 0.05, "exact", {"steps": steps}, hib=True),
            _row(rid, "tiny-mdlm", "mdlm", "genppl-kjv", "nfe", nfe, None, "exact", {"steps": steps}),
        ]
    for rid, rows in runs.items():
        write_run(run_folder(root, rows[0].model, rows[0].task, rid), {}, rows)
    return root


def test_markdown_and_html_written_with_bounds_and_plots(results, tmp_path):
    out = tmp_path / "report"
    written = write_report(load_table(results), out)
    md = written["markdown"].read_text()
    assert "## kjv" in md and "## countdown-cd3" in md
    assert "≤ 31.2 ± 0.9" in md and "20.5 ± 0.4" in md and "≤ 20.5" not in md
    # AR (lower perplexity) ranks above the diffusion bound
    assert md.index("tiny-ar") < md.index("| tiny-mdlm | mdlm | ≤ 31.2")
    page = written["html"].read_text()
    assert page.count("<table") == 3 and "data:image/png;base64," in page
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert {"intervals_kjv.png", "intervals_kjv.svg", "intervals_countdown-cd3.png", "frontier_genppl-kjv.png",
            "frontier_genppl-kjv.svg"} <= set(plots)
    # the three countdown runs differ in steps: three rows, none hidden as a re-run
    assert md.count("| tiny-mdlm | mdlm | 0.") == 3 and "Runs not shown" not in md


def test_html_loads_in_headless_chromium(results, tmp_path):
    if shutil.which("chromium") is None:
        if os.environ.get("CI"):
            pytest.fail("chromium missing in CI: .ci/run must install Debian's chromium")
        pytest.skip("Debian chromium not installed (apt-get install chromium; .ci/run installs it)")
    out = tmp_path / "report"
    page = write_report(load_table(results), out)["html"]
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]

    def load(uri):
        proc = subprocess.run(["chromium", *flags, "--enable-logging=stderr", "--v=0", "--dump-dom", uri],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        # every console message (log, error, uncaught exception) is a ":CONSOLE" line on stderr
        return proc.stdout, [l for l in proc.stderr.splitlines() if ":CONSOLE" in l]

    # the check is not vacuous: a broken page is caught
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    assert any("Uncaught" in l for l in load(broken.as_uri())[1])

    dom, console = load(page.as_uri())
    assert "<table class=\"sortable\">" in dom and "<img" in dom
    assert console == []
    subprocess.run(["chromium", *flags, f"--screenshot={shot}", "--window-size=1200,900", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000


def _chromium_flags(tmp_path):
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}"]


def _dump(uri, tmp_path):
    proc = subprocess.run(["chromium", *_chromium_flags(tmp_path), "--dump-dom", uri], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _kjv_models(dom):
    """The model column of the kjv table, top to bottom, as the browser left it."""
    import re

    table = dom.split("id=\"task-kjv\"")[1].split("</table>")[0]
    return [(m.group(2), "display: none" in m.group(1)) for m in re.finditer(r"<tr([^>]*)><td>([^<]*)</td>", table)]


def test_clicking_a_header_sorts_and_the_filter_hides_rows_in_chromium(results, tmp_path):
    """The page's own click handler, driven by its ``#sort=COLUMN[:desc]`` hook (it calls ``th.click()``), reorders
    the rows in a real browser; ``#filter=TEXT`` hides the rows without the text."""
    if shutil.which("chromium") is None:
        if os.environ.get("CI"):
            pytest.fail("chromium missing in CI: .ci/run must install Debian's chromium")
        pytest.skip("Debian chromium not installed")
    page = write_report(load_table(results), tmp_path / "report", results_root=results)["html"]
    # as written: best (lowest perplexity) first
    assert [m for m, _ in _kjv_models(_dump(page.as_uri(), tmp_path))] == ["tiny-ar", "tiny-mdlm"]
    # one click: ascending (same order); two clicks: descending — the order flips
    assert [m for m, _ in _kjv_models(_dump(page.as_uri() + "#sort=perplexity", tmp_path))] == ["tiny-ar", "tiny-mdlm"]
    dom = _dump(page.as_uri() + "#sort=perplexity:desc", tmp_path)
    assert [m for m, _ in _kjv_models(dom)] == ["tiny-mdlm", "tiny-ar"]
    assert 'data-col="perplexity" data-order="desc"' in dom
    assert _kjv_models(_dump(page.as_uri() + "#filter=tiny-ar", tmp_path)) == [("tiny-ar", False), ("tiny-mdlm", True)]


def test_cells_carry_provenance_and_rows_link_to_their_run_folder(results, tmp_path):
    out = tmp_path / "report"
    page = write_report(load_table(results), out, results_root=results)["html"].read_text()
    assert "title='perplexity = 31.2 ± 0.9 (bound: upper), n=100, full run&#10;" in page or \
        "title='perplexity = 31.2 ± 0.9 (bound: upper), n=100, full run\nrun m1" in page
    href = "../results/runs/tiny-mdlm/kjv/m1/"
    assert f"href='{href}'" in page and (out / href).resolve().is_dir()


def test_bound_markers_point_the_right_way():
    from dlmbench.report.table import format_value

    # perplexity from an NLL upper bound is an upper bound; a log-probability −(NLL bound) is a lower bound
    assert format_value(31.2, 0.9, "upper", higher_is_better=False) == "≤ 31.2 ± 0.9"
    assert format_value(-15.1, 0.5, "upper", higher_is_better=True) == "≥ -15.1 ± 0.5"
    assert format_value(0.45, 0.02, "exact", higher_is_better=True) == "0.45 ± 0.02"


def test_settings_column_shows_the_task_sampler_over_the_card_default(tmp_path):
    """A reasoning run decodes greedily (task ``sampler: {temperature: 0}``) with a card whose default is 1.0:
    the leaderboard must show the temperature actually used."""
    from dlmbench.report.leaderboard import markdown

    root = tmp_path / "results"
    settings = {"temperature": 1.0, "steps": 128, "sampler": {"temperature": 0}, "task_settings": {"sampler": {"temperature": 0}}}
    rows = [_row("r1", "tiny-mdlm", "mdlm", "countdown-cd3", "strict_acc", 0.5, 0.05, "exact", settings, hib=True)]
    write_run(run_folder(root, "tiny-mdlm", "countdown-cd3", "r1"), {}, rows)
    md = markdown(load_table(root))
    line = next(l for l in md.splitlines() if l.startswith("| tiny-mdlm"))
    assert "temperature=0" in line and "temperature=1.0" not in line and "steps=128" in line
