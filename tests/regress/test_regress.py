"""`dlmbench regress`: statistics against independent computations, decisions in simulation, CLI exits.

Ground truths: scipy's binomial test and normal tail (written independently of dlmbench.regress.stats),
Holm's procedure written as the step-down rule, a finite population whose true metric difference is
known exactly (bootstrap CI coverage), and seeded simulations of the null (false-positive rate) and of
a clear effect (power).
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from scipy import stats as sps

from dlmbench import metrics
from dlmbench.regress import Entry, Options, StatOptions, compare, junit_xml, main, markdown
from dlmbench.regress import stats as rs
from dlmbench.regress.matching import compared_settings
from dlmbench.regress.recipes import RECIPES
from dlmbench.store import MetricRow, export_table, load_table, run_folder, write_run

# ---------------------------------------------------------------------------------------------- helpers


def _row(model, task, metric, est, *, hib=False, bound="exact", seed=0, settings=None, run_id="r", family="ar",
         started_at="2024-01-01T00:00:00"):
    return MetricRow(
        run_id=run_id, model=model, family=family, checkpoint="local:/x", task=task, metric=metric,
        value=float(est.value), stderr=None if est.stderr is None else float(est.stderr), n=int(est.n),
        bound=bound, higher_is_better=hib, seed=seed, settings=dict(settings or {"limit": None, "packing": {"block_size": 64}}),
        dataset="d", split="test", dlmbench_version="0", git_commit="abc", torch_version="2",
        versions={}, device="cpu", started_at=started_at, duration_s=1.0,
    )


def ppl_examples(nll, ntok, nbytes):
    return [
        {"index": i, "doc_index": i, "nll": float(nll[i]), "n_tokens": int(ntok[i]), "n_bytes": int(nbytes[i]), "stderr": None}
        for i in range(len(nll))
    ]


def ppl_rows(model, nll, ntok, nbytes, **kw):
    return [
        _row(model, "toy", "nll_per_token", metrics.per_token_nll(nll, ntok), **kw),
        _row(model, "toy", "perplexity", metrics.perplexity(nll, ntok), **kw),
        _row(model, "toy", "bits_per_byte", metrics.bits_per_byte(nll, nbytes), **kw),
    ]


def write_ppl_run(root, model, nll, ntok, nbytes, run_id, **kw):
    folder = run_folder(root, model, "toy", run_id)
    rows = ppl_rows(model, nll, ntok, nbytes, run_id=run_id, **kw)
    write_run(folder, {"run_id": run_id, "task": {"name": "toy", "type": "perplexity"}}, rows, ppl_examples(nll, ntok, nbytes))
    return folder


def lambada_run(root, model, correct, nll, run_id, **kw):
    folder = run_folder(root, model, "lam", run_id)
    acc = metrics.accuracy(correct)
    ppl = metrics.example_perplexity(nll)
    rows = [
        _row(model, "lam", "acc", acc, hib=True, run_id=run_id, **kw),
        _row(model, "lam", "perplexity", ppl, run_id=run_id, **kw),
    ]
    ex = [
        {"index": i, "doc_index": i, "target": f" w{i}", "nll": float(nll[i]), "n_tokens": 2, "correct": bool(correct[i])}
        for i in range(len(correct))
    ]
    write_run(folder, {"run_id": run_id, "task": {"name": "lam", "type": "lambada"}}, rows, ex)
    return folder


def toy_data(rng, m=200, shift=0.0, noise=0.3, difficulty=None):
    """Per-request tokens/bytes/difficulty (shared between two runs) and one noisy draw of the NLLs."""
    if difficulty is None:
        ntok = rng.integers(20, 80, m)
        nbytes = (ntok * rng.uniform(3.5, 4.5, m)).astype(int)
        difficulty = rng.uniform(2.5, 4.0, m)
    else:
        ntok, nbytes, difficulty = difficulty
    per_tok = difficulty + shift + noise * rng.standard_normal(m)
    return ntok * per_tok, ntok, nbytes, (ntok, nbytes, difficulty)


def mem_entries(rows, examples=None, task_type="perplexity"):
    return [Entry(r.to_json(), f"mem:{r.run_id}", task_type, (lambda: examples) if examples is not None else None) for r in rows]


def run_cli(tmp_path, *args):
    return main([*map(str, args)])


# ---------------------------------------------------------------------------------------------- pure statistics


@pytest.mark.parametrize("worse,better", [(0, 0), (3, 0), (0, 4), (7, 3), (12, 30), (40, 18), (260, 210), (1500, 1420)])
def test_mcnemar_matches_scipy_binomtest(worse, better):
    # build paired outcomes with `worse` (base right, cand wrong) and `better` discordant pairs
    base = [True] * worse + [False] * better + [True] * 5 + [False] * 2
    cand = [False] * worse + [True] * better + [True] * 5 + [False] * 2
    res = rs.mcnemar_exact_worse(base, cand, worse_sign=-1)
    n = worse + better
    expected = 1.0 if n == 0 else sps.binomtest(worse, n, 0.5, alternative="greater").pvalue
    assert math.isclose(res.p, expected, rel_tol=1e-9, abs_tol=1e-300)
    # swapping the roles tests the other direction
    res2 = rs.mcnemar_exact_worse(cand, base, worse_sign=-1)
    expected2 = 1.0 if n == 0 else sps.binomtest(better, n, 0.5, alternative="greater").pvalue
    assert math.isclose(res2.p, expected2, rel_tol=1e-9, abs_tol=1e-300)


def test_z_test_matches_normal_tail():
    for base, se_b, cand, se_c, hib in [(10.0, 0.3, 10.9, 0.4, False), (0.45, 0.01, 0.43, 0.012, True), (5.0, 0.1, 4.0, 0.1, False)]:
        s = -1 if hib else 1
        res = rs.z_test_worse(base, se_b, cand, se_c, s)
        z = s * (cand - base) / math.hypot(se_b, se_c)
        assert math.isclose(res.p, sps.norm.sf(z), rel_tol=1e-12)
    assert rs.z_test_worse(1.0, 0.0, 1.5, 0.0, 1).p == 0.0
    assert rs.z_test_worse(1.0, 0.0, 1.0, 0.0, 1).p == 1.0


def _holm_rejections(p, alpha):
    """Holm's step-down rule as published: walk the sorted p-values, stop at the first p_(i) > α/(k−i)."""
    k = len(p)
    rejected = set()
    for i, j in enumerate(np.argsort(p, kind="stable")):
        if p[j] > alpha / (k - i):
            break
        rejected.add(int(j))
    return rejected


def test_holm_adjusted_pvalues_reproduce_the_step_down_rule():
    rng = np.random.default_rng(3)
    for _ in range(200):
        k = int(rng.integers(1, 12))
        p = list(rng.uniform(0, 0.05, k) ** rng.uniform(0.5, 3))
        adj = rs.holm_adjust(p)
        for alpha in (0.001, 0.01, 0.05, 0.1):
            assert {i for i, a in enumerate(adj) if a <= alpha} == _holm_rejections(p, alpha)
    assert rs.bonferroni_adjust([0.01, 0.5]) == [0.02, 1.0]


def test_recipes_reproduce_dlmbench_metrics():
    rng = np.random.default_rng(0)
    nll, ntok, nbytes, _ = toy_data(rng, 50)
    cols = {"nll": nll, "n_tokens": ntok.astype(float), "n_bytes": nbytes.astype(float)}
    assert math.isclose(RECIPES["perplexity", "perplexity"].statistic(cols), metrics.perplexity(nll, ntok).value, rel_tol=1e-12)
    assert math.isclose(RECIPES["perplexity", "bits_per_byte"].statistic(cols), metrics.bits_per_byte(nll, nbytes).value, rel_tol=1e-12)
    assert math.isclose(RECIPES["lambada", "perplexity"].statistic({"nll": nll}), metrics.example_perplexity(nll).value, rel_tol=1e-12)


def test_paired_bootstrap_ci_covers_true_difference():
    """A finite population with a known metric difference; 90% basic-bootstrap CIs of samples cover it."""
    rng = np.random.default_rng(11)
    N = 20000
    ntok = rng.integers(10, 100, N).astype(float)
    diff = rng.uniform(2.0, 4.0, N)
    base_nll = ntok * (diff + 0.4 * rng.standard_normal(N))
    cand_nll = ntok * (diff + 0.03 + 0.4 * rng.standard_normal(N))
    recipe = RECIPES["perplexity", "perplexity"]
    truth = float(recipe.statistic({"nll": cand_nll, "n_tokens": ntok}) - recipe.statistic({"nll": base_nll, "n_tokens": ntok}))
    sims, covered, m = 200, 0, 200
    for s in range(sims):
        idx = rng.integers(0, N, m)
        b = {"nll": base_nll[idx], "n_tokens": ntok[idx]}
        c = {"nll": cand_nll[idx], "n_tokens": ntok[idx]}
        res = rs.paired_bootstrap(recipe.statistic, b, c, worse_sign=1, n_boot=1000, rng=np.random.default_rng(s), ci_level=0.9)
        covered += res.ci[0] <= truth <= res.ci[1]
    # Binomial(200, 0.9): sd 4.2; accept within 4 sd (bootstrap CIs are approximate at m=200)
    assert abs(covered - 0.9 * sims) <= 4 * math.sqrt(sims * 0.09), covered


# ---------------------------------------------------------------------------------------------- decisions in simulation


def _decide_once(base_rows, base_ex, cand_rows, cand_ex, task_type, *, alpha, paired=True, n_boot=500):
    rep = compare(
        mem_entries(base_rows, base_ex, task_type),
        mem_entries(cand_rows, cand_ex, task_type),
        Options(),
        StatOptions(alpha=alpha, correction="none", n_boot=n_boot, paired=paired),
    )
    assert not rep.problems
    return rep


def _sim_ppl(seed, shift, paired, alpha):
    rng = np.random.default_rng(seed)
    nll_b, ntok, nbytes, shared = toy_data(rng, 100)
    nll_c, ntok_c, nbytes_c, _ = toy_data(rng, 100, shift=shift, difficulty=shared if paired else None)
    if not paired:  # independent example sets: only the stderr z-test applies
        rb = [r for r in ppl_rows("m", nll_b, ntok, nbytes, run_id="b") if r.metric == "perplexity"]
        rc = [r for r in ppl_rows("m", nll_c, ntok_c, nbytes_c, run_id="c") if r.metric == "perplexity"]
        return _decide_once(rb, None, rc, None, "perplexity", alpha=alpha)
    rb = [r for r in ppl_rows("m", nll_b, ntok, nbytes, run_id="b") if r.metric == "perplexity"]
    rc = [r for r in ppl_rows("m", nll_c, ntok, nbytes, run_id="c") if r.metric == "perplexity"]
    return _decide_once(rb, ppl_examples(nll_b, ntok, nbytes), rc, ppl_examples(nll_c, ntok, nbytes), "perplexity", alpha=alpha)


def _sim_acc(seed, p_b, p_c, alpha, m=300):
    rng = np.random.default_rng(seed)
    skill = rng.uniform(0, 1, m)  # per-example ease, shared: paired outcomes are correlated
    corr_b = (rng.uniform(0, 1, m) < np.clip(p_b + 0.5 * (skill - 0.5), 0, 1)).astype(float)
    corr_c = (rng.uniform(0, 1, m) < np.clip(p_c + 0.5 * (skill - 0.5), 0, 1)).astype(float)

    def rows(c, rid):
        return [_row("m", "lam", "acc", metrics.accuracy(c), hib=True, run_id=rid)]

    def ex(c):
        return [{"index": i, "doc_index": i, "target": "x", "nll": 1.0, "n_tokens": 1, "correct": bool(c[i])} for i in range(m)]

    return _decide_once(rows(corr_b, "b"), ex(corr_b), rows(corr_c, "c"), ex(corr_c), "lambada", alpha=alpha)


@pytest.mark.parametrize("kind", ["bootstrap", "z-test", "mcnemar"])
def test_noise_level_change_false_positive_rate(kind):
    """Candidate = same distribution, fresh noise: regressions flagged at most at the nominal rate."""
    alpha, sims = 0.05, 200
    flagged, tests = 0, set()
    for s in range(sims):
        if kind == "mcnemar":
            rep = _sim_acc(s, 0.6, 0.6, alpha)
        else:
            rep = _sim_ppl(s, 0.0, paired=(kind == "bootstrap"), alpha=alpha)
        (r,) = rep.results
        tests.add(r.test.test.split(" (")[0])
        flagged += r.verdict == "regression"
        assert rep.exit_code == (1 if r.verdict == "regression" else 0)
    assert tests == {"bootstrap": {"paired bootstrap"}, "z-test": {"z-test"}, "mcnemar": {"McNemar exact"}}[kind]
    # expected ≤ 10 of 200; Binomial(200, 0.05) exceeds 20 with probability ≈ 0.001
    assert flagged <= 20, flagged


@pytest.mark.parametrize("kind", ["bootstrap", "z-test", "mcnemar"])
def test_real_regression_is_detected_with_high_power(kind):
    alpha, sims, flagged = 0.01, 40, 0
    for s in range(sims):
        if kind == "mcnemar":
            rep = _sim_acc(1000 + s, 0.6, 0.45, alpha)
        else:
            # unpaired runs see the spread of example difficulty too, so the same power needs a larger shift
            rep = _sim_ppl(1000 + s, 0.25 if kind == "bootstrap" else 0.5, paired=(kind == "bootstrap"), alpha=alpha)
        flagged += rep.exit_code == 1
    assert flagged >= 0.9 * sims, flagged


# ---------------------------------------------------------------------------------------------- end to end (run folders, CLI)


def _two_runs(tmp_path, shift, seed=0, cand_model="m", **kw):
    rng = np.random.default_rng(seed)
    nll_b, ntok, nbytes, shared = toy_data(rng, 150)
    nll_c, *_ = toy_data(rng, 150, shift=shift, difficulty=shared)
    write_ppl_run(tmp_path / "base", "m", nll_b, ntok, nbytes, "rb", **kw)
    write_ppl_run(tmp_path / "cand", cand_model, nll_c, ntok, nbytes, "rc", **kw)
    return tmp_path / "base", tmp_path / "cand"


def test_improvement_exits_0(tmp_path, capsys):
    base, cand = _two_runs(tmp_path, shift=-0.3)
    assert main(["--baseline", str(base), "--candidate", str(cand)]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("| m |")]
    assert len(table) == 3
    assert all("✅" in line and "| -" in line for line in table)
    assert ": paired bootstrap" in out.split("tests: ")[1]  # the test behind each p, under its table


def test_regression_exits_1_with_junit_failures(tmp_path, capsys):
    base, cand = _two_runs(tmp_path, shift=0.3)
    junit = tmp_path / "out" / "regress.xml"
    md = tmp_path / "out" / "summary.md"
    code = main(["--baseline", str(base), "--candidate", str(cand), "--junit", str(junit), "--markdown", str(md)])
    assert code == 1
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == 3 and int(suite.get("tests")) == 3
    assert int(suite.get("failures")) == 3 == sum(tc.find("failure") is not None for tc in cases)
    text = md.read_text(encoding="utf-8")
    regressions_first = text.split("<details>")[0]  # the regressions' own table, before the collapsed full one
    assert sum("❌ regression" in line for line in regressions_first.splitlines() if line.startswith("| m |")) == 3
    assert "<summary>All 3 compared metrics</summary>" in text
    assert max(len(line) for line in text.splitlines()) <= 100  # fits a PR comment
    assert "regression:" in capsys.readouterr().err


def test_tolerance_turns_small_significant_worsening_into_a_warning(tmp_path):
    base, cand = _two_runs(tmp_path, shift=0.3)
    assert main(["--baseline", str(base), "--candidate", str(cand), "--rel-tol", "0.5"]) == 0
    # per-task tolerance from the task card (row settings.task_settings.regress.tolerance)
    settings = {"limit": None, "packing": {"block_size": 64}, "task_settings": {"regress": {"tolerance": {"perplexity": {"rel": 0.5}}}}}
    base2, cand2 = _two_runs(tmp_path / "t", shift=0.3, settings=settings)
    rep = compare(_load(base2), _load(cand2), Options(), StatOptions())
    verdicts = {r.metric: r.verdict for r in rep.results}
    assert verdicts == {"perplexity": "warn", "nll_per_token": "regression", "bits_per_byte": "regression"}


def _load(p):
    from dlmbench.regress import load_side

    return load_side(p, "x")


def test_missing_rows_exit_2_naming_them(tmp_path, capsys):
    base, cand = _two_runs(tmp_path, shift=0.0)
    # an extra baseline task the candidate never ran
    rng = np.random.default_rng(5)
    correct = (rng.uniform(size=50) < 0.5).astype(float)
    lambada_run(base, "m", correct, rng.uniform(1, 3, 50), "rl")
    junit = tmp_path / "j.xml"
    assert main(["--baseline", str(base), "--candidate", str(cand), "--junit", str(junit)]) == 2
    err = capsys.readouterr().err
    assert "m / lam / acc" in err and "m / lam / perplexity" in err and "no candidate row" in err
    suite = ET.parse(junit).getroot().find("testsuite")
    assert int(suite.get("errors")) == 2 and int(suite.get("failures")) == 0
    # allowed explicitly: compared rows decide
    assert main(["--baseline", str(base), "--candidate", str(cand), "--allow-missing"]) == 0


def test_mismatched_settings_exit_2_naming_the_key(tmp_path, capsys):
    rng = np.random.default_rng(1)
    nll, ntok, nbytes, _ = toy_data(rng, 40)
    write_ppl_run(tmp_path / "b", "m", nll, ntok, nbytes, "rb", settings={"packing": {"block_size": 1024}, "n_requests": 40, "limit": 10})
    write_ppl_run(tmp_path / "c", "m", nll, ntok, nbytes, "rc", settings={"packing": {"block_size": 512}, "n_requests": 41, "limit": 10})
    assert main(["--baseline", str(tmp_path / "b"), "--candidate", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "packing.block_size baseline=1024 candidate=512" in err
    assert "n_requests" not in err  # bookkeeping is not compared
    # the user may declare the key irrelevant
    assert main(["--baseline", str(tmp_path / "b"), "--candidate", str(tmp_path / "c"), "--ignore-setting", "packing.block_size"]) == 0


def test_bound_vs_exact_exit_2(tmp_path, capsys):
    rng = np.random.default_rng(2)
    nll, ntok, nbytes, _ = toy_data(rng, 40)
    write_ppl_run(tmp_path / "b", "m", nll, ntok, nbytes, "rb", bound="exact")
    write_ppl_run(tmp_path / "c", "m", nll, ntok, nbytes, "rc", bound="upper")
    assert main(["--baseline", str(tmp_path / "b"), "--candidate", str(tmp_path / "c")]) == 2
    assert "bound differs: baseline exact vs candidate upper" in capsys.readouterr().err


def test_new_checkpoint_against_baseline_model(tmp_path):
    base, cand = _two_runs(tmp_path, shift=0.3, cand_model="m-step2000")
    args = ["--baseline", str(base), "--candidate", str(cand)]
    assert main(args) == 2  # by name: nothing pairs
    assert main(args + ["--match-model-by", "family"]) == 1
    assert main(args + ["--baseline-model", "m", "--candidate-model", "m-step2000"]) == 1
    assert main(args + ["--baseline-model", "m", "--candidate-model", "nope"]) == 2  # BadSpec, one line


def test_lambada_mcnemar_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(9)
    m = 400
    corr_b = (rng.uniform(size=m) < 0.6).astype(float)
    corr_c = corr_b.copy()
    flip = rng.choice(np.flatnonzero(corr_b == 1), 60, replace=False)
    corr_c[flip] = 0.0  # 60 examples lost, none gained
    nll = rng.uniform(1, 3, m)
    lambada_run(tmp_path / "b", "m", corr_b, nll, "rb")
    lambada_run(tmp_path / "c", "m", corr_c, nll, "rc")
    assert main(["--baseline", str(tmp_path / "b"), "--candidate", str(tmp_path / "c")]) == 1
    out = capsys.readouterr().out
    acc_line = next(line for line in out.splitlines() if "| acc" in line)
    assert "❌" in acc_line and "acc: McNemar exact" in out
    ppl_line = next(line for line in out.splitlines() if "| perplexity" in line)
    assert "✅" in ppl_line and "perplexity: paired bootstrap" in out


def test_csv_export_uses_stderr_test_and_markdown_shows_bounds(tmp_path):
    base, cand = _two_runs(tmp_path, shift=0.0, bound="upper")
    csv_b = export_table(load_table(base), tmp_path / "b.csv")
    pq_c = export_table(load_table(cand), tmp_path / "c.parquet")
    rep = compare(_load(csv_b), _load(pq_c), Options(), StatOptions())
    assert not rep.problems and {r.test.test for r in rep.results} == {"z-test"}
    md = markdown(rep)
    for line in md.splitlines():
        if line.startswith("| m |"):
            assert line.count("≤ ") == 2  # baseline and candidate cells
    assert "upper bounds" in md
    # JUnit of a passing report: parses, no failures
    suite = ET.fromstring(junit_xml(rep).split("\n", 1)[1]).find("testsuite")
    assert suite.get("failures") == "0" and len(suite.findall("testcase")) == 3


def test_duplicate_rows_are_ambiguous(tmp_path, capsys):
    base, cand = _two_runs(tmp_path, shift=0.0)
    rng = np.random.default_rng(4)
    nll, ntok, nbytes, _ = toy_data(rng, 150)
    write_ppl_run(cand, "m", nll, ntok, nbytes, "rc2")
    assert main(["--baseline", str(base), "--candidate", str(cand)]) == 2
    assert "2 candidate rows with the same settings" in capsys.readouterr().err
    # --latest keeps the newest re-run (started_at)
    write_ppl_run(cand, "m", nll + 0.5 * ntok, ntok, nbytes, "rc2", started_at="2025-06-01T00:00:00")
    assert main(["--baseline", str(base), "--candidate", str(cand), "--latest"]) == 1  # the newer, worse run


def test_seed_is_matched_unless_ignored(tmp_path):
    base, cand = _two_runs(tmp_path, shift=0.0)
    rng = np.random.default_rng(0)
    nll, ntok, nbytes, _ = toy_data(rng, 150)
    write_ppl_run(tmp_path / "cand1", "m", nll, ntok, nbytes, "rs1", seed=1)
    assert main(["--baseline", str(base), "--candidate", str(tmp_path / "cand1")]) == 2
    assert main(["--baseline", str(base), "--candidate", str(tmp_path / "cand1"), "--ignore-seed"]) == 0


def test_compared_settings_drop_bookkeeping_and_normalise_numbers():
    row = {
        "settings": {"n_requests": 5, "n_tokens": 9, "batch_size": 8, "mc_samples": 1.0, "gen_duration_s": 3.2,
                     "n_skipped": 1, "skipped": {"empty": 1, "missing_field": 0},
                     "task_settings": {"regress": {"tolerance": {}}, "strip_punctuation": True}},
        "dataset": "d", "split": None,
    }
    s = compared_settings(row, Options().ignored)
    assert s == {"mc_samples": "1", "task_settings.strip_punctuation": "true", "dataset": '"d"', "split": "null"}


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["--baseline", str(tmp_path / "nope"), "--candidate", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: baseline") and "does not exist" in err[0]
    base, cand = _two_runs(tmp_path, shift=0.0)
    assert main(["--baseline", str(base), "--candidate", str(cand), "--alpha", "2"]) == 2
    assert "--alpha" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- broken candidates


def _rewrite_candidate_rows(folder, edit):
    """Apply ``edit(row) -> row | None`` to every row of the run folder's metrics.jsonl (None drops the row)."""
    path = folder / "metrics.jsonl"
    rows = [edit(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows if r is not None))


@pytest.mark.parametrize("bad", [None, "NaN", "Infinity"])
def test_a_non_finite_or_null_candidate_value_is_a_regression(tmp_path, capsys, bad):
    base, cand = _two_runs(tmp_path, shift=-0.3)  # otherwise an improvement: exit 0
    (folder,) = [p for p in (cand / "runs" / "m" / "toy").iterdir() if not p.name.startswith(".")]  # not the job lock

    def edit(r):
        if r["metric"] == "perplexity":
            r["value"] = None if bad is None else float(bad)
        return r

    _rewrite_candidate_rows(folder, edit)
    junit, md = tmp_path / "j.xml", tmp_path / "s.md"
    assert main(["--baseline", str(base), "--candidate", str(cand), "--junit", str(junit), "--markdown", str(md)]) == 1
    captured = capsys.readouterr()
    assert "regression: m/toy/perplexity" in captured.err
    line = [x for x in md.read_text(encoding="utf-8").splitlines() if x.startswith("| m | perplexity")][0]  # regressions table
    assert "❌ regression" in line and "not a finite number" in line
    suite = ET.parse(junit).getroot().find("testsuite")
    assert int(suite.get("failures")) == 1 and int(suite.get("errors")) == 0 and int(suite.get("skipped")) == 0
    (failed,) = [tc for tc in suite.findall("testcase") if tc.find("failure") is not None]
    assert failed.get("name") == "perplexity" and "not a finite number" in failed.find("failure").text


def test_a_metric_missing_from_an_existing_candidate_run_is_a_regression(tmp_path, capsys):
    base, cand = _two_runs(tmp_path, shift=-0.3)
    (folder,) = [p for p in (cand / "runs" / "m" / "toy").iterdir() if not p.name.startswith(".")]  # not the job lock
    _rewrite_candidate_rows(folder, lambda r: None if r["metric"] == "bits_per_byte" else r)
    junit, md = tmp_path / "j.xml", tmp_path / "s.md"
    assert main(["--baseline", str(base), "--candidate", str(cand), "--junit", str(junit), "--markdown", str(md)]) == 1
    assert "regression: m/toy/bits_per_byte" in capsys.readouterr().err
    line = [x for x in md.read_text(encoding="utf-8").splitlines() if x.startswith("| m | bits_per_byte")][0]
    assert "❌ regression" in line and "missing from the candidate" in line
    suite = ET.parse(junit).getroot().find("testsuite")
    assert int(suite.get("failures")) == 1 and int(suite.get("errors")) == 0
    # a task the candidate never ran at all is still "cannot compare" (exit 2), not a regression
    rng = np.random.default_rng(5)
    lambada_run(base, "m", (rng.uniform(size=50) < 0.5).astype(float), rng.uniform(1, 3, 50), "rl")
    assert main(["--baseline", str(base), "--candidate", str(cand)]) == 2
