"""SEDD tau-leaping (Euler, analytic) with an exact score computed by enumeration of p_t."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import sys
from pathlib import Path

# the exact-law oracle lives beside the masked samplers' tests (tests/diffusion/); import it from there whatever
# subset of the suite runs
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "diffusion"))
from test_samplers_oracle import ScoreOracle, ancestral_law, chi2_pvalue, counts_of, law_vector, random_joint, tv

from dlmbench.families.sedd.estimator import AbsorbingGraph, UniformGraph
from dlmbench.diffusion.schedules import GeometricNoise, LogLinearNoise
from dlmbench.diffusion.sampling import masked_canvas
from dlmbench.families.sedd.samplers import sedd_analytic, sedd_euler
from dlmbench.seeding import generator

V, L, N = 3, 3, 20_000


@pytest.fixture(scope="module")
def joint():
    return random_joint(V, L, seed=20)


def _unmask_probs(schedule, steps: int, eps: float = 1e-5) -> list[float]:
    """Exact-score absorbing analytic step: (e^{dsigma} - 1)/(e^{sigma_t} - 1) = 1 - m_s/m_t."""
    t = torch.linspace(1.0, eps, steps + 1, dtype=torch.float64)
    m = schedule.mask_prob(t)
    return [float(1 - m[i + 1] / m[i]) for i in range(steps)]


@pytest.mark.parametrize("sampler", [sedd_analytic, sedd_euler])
def test_absorbing_tau_leaping_matches_exact_law_at_few_steps(joint, sampler):
    # for the log-linear schedule the exact-score Euler rate dt*sigma'/(e^sigma - 1) = dt/t equals the
    # analytic (Tweedie) probability 1 - m_s/m_t, so both follow the same exact dynamic program
    sched = LogLinearNoise()
    so = ScoreOracle(joint, "absorbing")
    steps = 4
    out = sampler(so, masked_canvas(N, L, V), graph=AbsorbingGraph(V), schedule=sched, steps=steps, generator=generator(1))
    assert out.nfe == steps + 1
    law = law_vector(ancestral_law(joint, _unmask_probs(sched, steps), final="sample"), V, L)
    assert tv(law, joint.reshape(-1).numpy()) > 0.02  # the few-step law really differs from the joint
    assert chi2_pvalue(counts_of(out.tokens, V), law) > 1e-3


def test_absorbing_analytic_approaches_joint_with_many_steps(joint):
    so = ScoreOracle(joint, "absorbing")
    out = sedd_analytic(so, masked_canvas(N, L, V), graph=AbsorbingGraph(V), schedule=GeometricNoise(1e-4, 20.0), steps=256, generator=generator(2))
    assert chi2_pvalue(counts_of(out.tokens, V), joint.reshape(-1).numpy()) > 1e-3


def test_absorbing_infilling_keeps_fixed_tokens(joint):
    so = ScoreOracle(joint, "absorbing")
    x = masked_canvas(N, L, V, fixed={0: 1})
    sched = LogLinearNoise()
    out = sedd_analytic(so, x, graph=AbsorbingGraph(V), schedule=sched, steps=8, generator=generator(3))
    assert (out.tokens[:, 0] == 1).all()
    law = law_vector(ancestral_law(joint, _unmask_probs(sched, 8), final="sample", canvas=(1, V, V)), V, L)
    want = law.reshape(V, V, V)[1].reshape(-1)
    assert chi2_pvalue(np.bincount((out.tokens[:, 1] * V + out.tokens[:, 2]).numpy(), minlength=V * V), want) > 1e-3


@pytest.mark.parametrize("sampler", [sedd_analytic, sedd_euler])
def test_uniform_graph_approaches_joint_with_many_steps(sampler):
    joint = random_joint(3, 2, seed=21)
    so = ScoreOracle(joint, "uniform")
    sched = GeometricNoise(1e-4, 20.0)
    x = torch.zeros(N, 2, dtype=torch.long)
    few = sampler(so, x, graph=UniformGraph(3), schedule=sched, steps=2, generator=generator(4))
    many = sampler(so, x, graph=UniformGraph(3), schedule=sched, steps=300, generator=generator(4))
    p = joint.reshape(-1).numpy()
    assert chi2_pvalue(counts_of(many.tokens, 3), p) > 1e-3
    tv_few = tv(counts_of(few.tokens, 3) / N, p)
    tv_many = tv(counts_of(many.tokens, 3) / N, p)
    assert tv_many < tv_few


def test_uniform_graph_fixed_positions_never_change():
    joint = random_joint(3, 2, seed=22)
    so = ScoreOracle(joint, "uniform", clean=[0])  # the conditional process: position 0 is never noised
    x = torch.tensor([[2, 0]] * 2000)
    fixed = torch.tensor([[True, False]] * 2000)
    out = sedd_euler(so, x, graph=UniformGraph(3), schedule=GeometricNoise(1e-4, 20.0), steps=200, fixed=fixed, generator=generator(5))
    assert (out.tokens[:, 0] == 2).all()
    j = joint.numpy()[2]
    assert chi2_pvalue(np.bincount(out.tokens[:, 1].numpy(), minlength=3), j / j.sum()) > 1e-3
