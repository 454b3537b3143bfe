"""A non-finite number is a failure, never a result (docs/architecture.md, Conventions): the guard where results are
built, and `dlmbench run` on a checkpoint whose weights are NaN (before the guard it exited 0 with
`value: null` rows)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_zoo import make_zoo

from dlmbench.cli import main
from dlmbench.errors import DlmbenchError, NonFiniteResult
from dlmbench.interface import NLLResult, require_finite


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nll_result_refuses_a_non_finite_value_in_one_line(bad):
    with pytest.raises(NonFiniteResult) as info:
        NLLResult(np.array([1.5, bad, 2.0]), np.array([2, 3, 1]), np.array([0.1, 0.2, 0.3]), "upper", 4)
    msg = str(info.value)
    assert "\n" not in msg and "1 of 3 values are NaN or infinite" in msg
    assert isinstance(info.value, DlmbenchError) and info.value.exit_code == 1  # a run-time failure, not a user mistake


def test_nan_stderr_of_a_single_draw_stays_legitimate():
    res = NLLResult(np.array([1.5, 2.0]), np.array([2, 3]), np.array([np.nan, np.nan]), "upper", 1)
    assert np.isnan(res.stderr).all() and res.nll.tolist() == [1.5, 2.0]


def test_require_finite_checks_tensors_on_their_device_and_passes_finite_ones_through():
    x = torch.tensor([[0.0, -1e30], [3.0, 4.0]])
    assert require_finite(x, "logits") is x
    x[1, 0] = float("inf")
    with pytest.raises(NonFiniteResult, match="^logits: 1 of 4 values"):
        require_finite(x, "logits")


def test_run_with_nan_weights_fails_the_job_and_writes_no_result(tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    specs = make_zoo(tmp_path, llada=False)
    weights = tmp_path / "gpt2" / "model" / "model.safetensors"
    state = load_file(str(weights))
    save_file({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()},
              str(weights), metadata={"format": "pt"})
    out = tmp_path / "res"
    code = main(["--specs", str(specs), "run", "--model", "tiny-gpt2", "--task", "tiny-ppl", "--out", str(out),
                 "--progress", "off"])
    err = capsys.readouterr().err
    assert code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # one job: one error line
    # found when the weights load, naming the tensor, before any forward pass (the forward guard is checked by
    # the contract suite, which poisons weights after loading)
    assert len(errors) == 1 and errors[0].startswith("error: tiny-gpt2 × tiny-ppl (seed 0): tiny-gpt2: checkpoint tensor "), err
    assert "NaN or infinite" in errors[0]
    assert not list(out.rglob("metrics.jsonl"))  # no row with value: null
    (failure,) = [json.loads(p.read_text()) for p in (out / "failures").rglob("*.json")]
    assert failure["error"].startswith("NonFiniteResult: tiny-gpt2: checkpoint tensor ")
    assert "\n" not in failure["error"]
