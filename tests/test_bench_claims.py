"""Tests of the claims report (bench/claims/): the experiments' logic on tiny networks, every
verdict rule on synthetic numbers, and the CLI end to end on a tiny profile. No timed assertion."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

import kernels
from bench.measure import load, timing
from bench.cli.main import main
from bench.claims import experiments, measure, plots, report, rules
from bench.claims.catalog import CLAIMS
from bench.claims.nets import ACTIVATIONS, Net, init_weights, numeric_grad, pick_backend

CPU_BACKENDS = ["numpy", "numba_cpu"]
FAST = timing.Sampling(min_samples=2, budget_s=0.01, warmup_s=0.0, min_sample_s=0.0)

TINY = dataclasses.replace(
    experiments.PROFILES["quick"], name="tiny", timing_sizes=(1024,), sampling=FAST, matmul_sampling=FAST,
    grid_points=2001, grad_depths=(2, 4, 8), grad_width=16, grad_batch=8, sparse_depth=2, sparse_width=16,
    train_steps=5, train_batch=8, eval_batch=32, matmul_shapes=((64, 32),), matmul_batches=(1, 4),
    sparsities=(0.0, 0.5, 0.9), dying_lrs=(0.01, 1.0), dying_steps=5, dying_width=8, blowup_depth=6,
    bn_depth=3, bn_width=8, bn_steps=6, bn_eval_every=2)


# ------------------------------------------------------------------------------- networks

@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("bn", [False, True])
def test_backprop_matches_finite_differences(backend, act, bn):
    net = Net(act, [5, 7, 6, 3], backend=backend, dtype="float64", bn=bn, seed=1)
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((9, 5)), rng.standard_normal((9, 3))
    _, dW, db, _, _ = net.loss_and_grads(x, t)
    for layer in range(3):
        for idx in [(0, 0), (2, 1), (4, 2)]:
            num = numeric_grad(net, x, t, layer, idx)
            assert dW[layer][idx] == pytest.approx(num, rel=1e-5, abs=1e-9)


def test_networks_run_on_the_projects_kernels(monkeypatch):
    """The forward and backward passes call kernels.get(op, backend), not a private activation."""
    seen = []
    real = kernels.get

    def spy(op, backend):
        seen.append((op, backend))
        return real(op, backend)

    monkeypatch.setattr(kernels, "get", spy)
    Net("sigmoid", [3, 4, 2], backend="numpy", dtype="float64")
    assert ("sigmoid", "numpy") in seen and ("sigmoid_grad", "numpy") in seen


def test_gradient_kernel_gets_x_or_y_as_the_op_table_says():
    """relu_grad takes the forward input, sigmoid_grad the forward output: a swapped argument would
    give a wrong gradient, which the finite-difference test catches; here the cached values."""
    for act, expect_output in (("relu", False), ("sigmoid", True), ("tanh", True), ("leaky_relu", False)):
        assert Net(act, [2, 2, 1], backend="numpy")._grad_of_output is expect_output


def test_init_scales():
    rng = np.random.default_rng(0)
    assert init_weights(rng, 400, 400, "he").std() == pytest.approx(math.sqrt(2 / 400), rel=0.02)
    assert init_weights(rng, 400, 400, "xavier").std() == pytest.approx(math.sqrt(2 / 800), rel=0.02)
    assert init_weights(rng, 400, 400, "he", gain=1.2).std() == pytest.approx(1.2 * math.sqrt(2 / 400), rel=0.02)
    with pytest.raises(ValueError):
        init_weights(rng, 2, 2, "orthogonal")


def test_sgd_lowers_the_loss_and_is_reproducible():
    def run():
        r = experiments.train("tanh", cfg=TINY, backend="numpy", depth=2, width=16, lr=0.05, steps=30, seed=3)
        return r["first_loss"], r["final_loss"]
    a, b = run(), run()
    assert a == b
    assert a[1] < a[0]


def test_pick_backend_prefers_the_fused_cpu_kernels_without_a_gpu():
    import kernels
    if any(b.available and b.device == "gpu" and not b.simulated for b in kernels.all_backends()):
        pytest.skip("a GPU backend is available here: the networks run on it")
    assert pick_backend() == "numba_cpu"
    assert pick_backend("numpy") == "numpy"
    with pytest.raises(RuntimeError, match="no backend runs every activation"):
        pick_backend("cupy_raw")


# ------------------------------------------------------------------------------- experiments

def test_sigmoid_derivative_peaks_at_a_quarter_relu_takes_0_and_1():
    d = experiments.derivatives(TINY, experiments.Context("numpy"))
    assert d["backends"]
    for b in d["backends"]:
        assert b["sigmoid_grad_max"] == 0.25
        lo, hi = b["sigmoid_grad_argmax_x"]
        assert lo <= 0.0 <= hi and hi - lo < 0.01           # the odd grid holds x = 0
        assert b["relu_grad_values"] == [0.0, 1.0]
        assert b["tanh_grad_max"] == 1.0
    assert rules.derivatives(d).verdict == rules.SUPPORTED


def test_vanishing_gradient_shapes_and_sigmoid_shrinks():
    d = experiments.vanishing(TINY, experiments.Context("numpy"))
    sig, relu = d["activations"]["sigmoid"], d["activations"]["relu"]
    assert len(sig["ratio_first_last"]) == len(TINY.grad_depths)
    assert sig["ratio_first_last"][-1] < sig["ratio_first_last"][0]
    assert sig["per_layer_factor"] < 0.5 < relu["per_layer_factor"]
    assert len(sig["grad_norm_by_layer_deepest"]) == max(TINY.grad_depths)


def test_fit_factor_recovers_a_geometric_rate():
    steps = [1, 2, 4, 8]
    assert experiments._fit_factor(steps, [3 * 0.25**s for s in steps]) == pytest.approx(0.25)
    assert math.isnan(experiments._fit_factor([1], [1.0]))


def test_relu_is_sparse_sigmoid_dense_at_init():
    d = experiments.sparsity(TINY, experiments.Context("numpy"))
    relu, sig = d["activations"]["relu"], d["activations"]["sigmoid"]
    assert all(0.2 < z < 0.8 for z in relu["zero_fraction_init"])
    assert all(z == 0 for z in sig["zero_fraction_init"] + sig["zero_fraction_trained"])


def test_relu_like_activations_hit_the_sparsity():
    rng = np.random.default_rng(0)
    for s in (0.0, 0.5, 0.9, 0.99):
        a = measure.relu_like_activations(8, 1000, s, rng)
        assert (a >= 0).all()
        assert (a == 0).mean() == pytest.approx(s, abs=2e-3)


def test_crossover_interpolates():
    assert experiments.crossover([0, 0.5, 0.9], [0.5, 0.8, 2.0], at=1) == pytest.approx(0.5 + 0.2 / 1.2 * 0.4)
    assert experiments.crossover([0, 0.5, 0.9], [0.5, 0.8, 2.0]) == pytest.approx(0.5 + 0.3 / 1.2 * 0.4)  # 1.1x
    assert experiments.crossover([0, 0.5], [1.2, 3]) == 0.0
    assert experiments.crossover([0, 0.5], [1.05, 3]) == pytest.approx(0.5 * 0.05 / 1.95)   # 1.05x: a tie
    assert experiments.crossover([0, 0.5], [0.2, 0.3]) is None


def test_sparse_matmul_experiment_uses_the_project_op():
    impls = measure.sparse_matmul_impls()
    assert impls[0][0] in measure.DENSE_MATMUL_BACKENDS and len(impls) > 1
    rng = np.random.default_rng(0)
    a, w = measure.relu_like_activations(3, 20, 0.5, rng), rng.standard_normal((20, 7)).astype(np.float32)
    for _name, fn, be in impls:
        got = kernels.asnumpy(fn(kernels.asarray(be.name, a), kernels.asarray(be.name, w)))
        np.testing.assert_allclose(got, a @ w, rtol=1e-5, atol=1e-5)


def test_sparse_matmul_experiment_says_which_backends_are_missing(monkeypatch):
    only_dense = [b for b in measure.timeable_backends(["sparse_matmul"]) if b.name in measure.DENSE_MATMUL_BACKENDS]
    monkeypatch.setattr(measure, "timeable_backends", lambda ops: only_dense)
    with pytest.raises(LookupError, match="dense and a sparse CPU backend"):
        measure.sparse_matmul_impls()


def test_dying_marks_units_negative_everywhere():
    d = experiments.dying(TINY, experiments.Context("numpy"))
    assert {r["optimiser"] for r in d["runs"]} == {"sgd", "sgd_clip1"}
    for r in d["runs"]:
        assert 0 <= r["dead"] <= 1 and len(r["dead_by_layer"]) == TINY.dying_depth


def test_blowup_grows_with_gain_for_relu_only():
    d = experiments.blowup(dataclasses.replace(TINY, blowup_depth=20, grad_width=64, grad_batch=32, blowup_gains=(1.0, 1.5)),
                           experiments.Context("numpy"))
    by = {(r["act"], r["gain"]): r for r in d["runs"]}
    assert by["relu", 1.5]["growth_per_layer"] > 1.3
    assert 0.8 < by["relu", 1.0]["growth_per_layer"] < 1.2
    assert max(by["sigmoid", 1.5]["max_abs_by_layer"]) <= 1.0


def test_every_experiment_and_rule_runs_on_a_tiny_profile():
    ctx = experiments.Context("numpy")
    for c in CLAIMS:
        with np.errstate(all="ignore"):
            ctx.done[c.id] = c.run(TINY, ctx)
        v = c.rule(ctx.done[c.id])
        assert v.verdict in (rules.SUPPORTED, rules.REFUTED, rules.DEPENDS, rules.UNDECIDED)
        assert v.numbers and v.would_change
        json.dumps(ctx.done[c.id])                                   # every number is JSON
    assert ctx.done[9]["memory_ratio_sigmoid_over_mask"] == 32
    # SiLU and GELU beside claims 1 and 9: measured on every backend that has them
    beside = ctx.done[1]["beside"]
    assert beside["columns"] == ["sigmoid", "silu", "gelu", "sigmoid_grad", "silu_grad", "gelu_grad"]
    numba_row = next(r for r in beside["rows"] if r["backend"] == "numba_cpu")
    assert all(v is not None and v > 0 for v in numba_row["values"].values())
    assert {"/ silu_grad", "/ gelu_grad"} <= set(ctx.done[9]["beside"]["columns"])
    assert ctx.done[9]["bytes_kept_per_activation"]["silu_grad (x, float32)"] == 4


def _cells(t: dict) -> tuple[dict, dict, dict]:
    """Recorded timings as the experiments key them: min_s, spread 0.1, CPU share None."""
    return t, {k: 0.1 for k in t}, {k: None for k in t}


def test_a_table_beside_a_verdict_divides_each_pair_and_dashes_a_missing_op():
    t = {("numpy", 8, "relu"): 1.0, ("numpy", 8, "silu"): 3.0, ("numpy", 8, "gelu"): 5.0,
         ("torch", 8, "relu"): 2.0, ("torch", 8, "gelu"): 3.0,
         ("scipy", 8, "other"): 1.0}                                  # no pair here: no row
    b = experiments._beside(*_cells(t), {"silu": ("silu", "relu"), "gelu": ("gelu", "relu")}, "T", "N")
    assert b["columns"] == ["silu", "gelu"] and b["pairs"]["gelu"] == ["gelu", "relu"]
    rows = {r["backend"]: r for r in b["rows"]}
    assert set(rows) == {"numpy", "torch"}
    assert rows["numpy"]["values"] == {"silu": 3.0, "gelu": 5.0}
    assert rows["torch"]["values"] == {"silu": None, "gelu": 1.5}
    assert not rules.unsteady(rows["numpy"])


def test_a_table_beside_a_verdict_marks_a_noisy_or_starved_row():
    t = {("numpy", 8, "relu"): 1.0, ("numpy", 8, "silu"): 3.0, ("x", 8, "relu"): 40.0, ("x", 8, "silu"): 90.0}
    _, spread, got = _cells(t)
    spread["numpy", 8, "silu"] = 1.5
    b = experiments._beside(t, spread, got, {"silu": ("silu", "relu")}, "T", "N")
    rows = {r["backend"]: r for r in b["rows"]}
    assert rules.unsteady(rows["numpy"])                              # spread over NOISY
    assert rows["x"]["starved"] and rules.unsteady(rows["x"])         # far slower than NumPy on both ops
    run = {"claims": [{"id": 1, "numbers": {"beside": b}}]}
    (table,) = report.beside_tables(run)
    assert [c.header for c in table.columns] == ["backend", "size", "silu"]
    md = "\n".join(report._beside_markdown(b))
    assert "| numpy | 2^3 | ~x3 |" in md and "~: noisy or starved" in md


def test_a_saved_run_without_a_table_beside_still_renders_and_plots():
    """Claims runs saved before SiLU and GELU were timed beside (reports/claims.json of 2026-11-29)."""
    d1 = {"ratios": [{"backend": "numpy", "device": "cpu", "size": 2**16, "forward": 2.0, "backward": 1.0}]}
    d9 = {"bytes_kept_per_activation": {"a": 4.0, "b": 0.125},
          "ratios": [{"backend": "numpy", "size": 2**16, "mask_over_sigmoid_grad": 2.0, "mask_over_relu_grad": 1.0}]}
    assert report.beside_tables({"claims": [{"id": 1, "numbers": d1}, {"id": 9, "numbers": d9}]}) == []
    assert plots.cost(d1) is not None and plots.mask_backward(d9) is not None


# ------------------------------------------------------------------------------- rules

def _cost(*cells):
    return {"ratios": [{"backend": b, "device": "cpu", "size": n, "forward": f, "backward": bw} for b, n, f, bw in cells]}


def test_rule_cost():
    assert rules.cost(_cost(("numpy", 2**20, 5, 2), ("numba_cpu", 2**20, 1.6, 1.5))).verdict == rules.SUPPORTED
    assert rules.cost(_cost(("numpy", 2**20, 1.0, 1.1), ("numba_cpu", 2**20, 0.9, 1.0))).verdict == rules.REFUTED
    v = rules.cost(_cost(("numpy", 2**20, 5, 1.0), ("numba_cpu", 2**20, 1.0, 1.0)))
    assert v.verdict == rules.DEPENDS and "forward numpy 2^20" in v.condition and "backward nowhere" in v.condition


def _deriv(mx, relu_vals):
    be = {"backend": "numpy", "sigmoid_grad_max": mx, "sigmoid_grad_argmax_x": [0.0, 0.0],
          "relu_grad_values": relu_vals, "sigmoid_grad_below_0.1": 0.5}
    return {"grid": {"from": -1, "to": 1}, "backends": [be]}


def test_rule_derivatives():
    assert rules.derivatives(_deriv(0.25, [0.0, 1.0])).verdict == rules.SUPPORTED
    assert rules.derivatives(_deriv(0.3, [0.0, 1.0])).verdict == rules.REFUTED
    assert rules.derivatives(_deriv(0.25, [0.0, 0.5, 1.0])).verdict == rules.REFUTED


def _van(f_sig, last_sig, f_relu, last_relu):
    a = lambda f, last: {"per_layer_factor": f, "ratio_first_last": [1.0, last]}  # noqa: E731
    return {"depths": [2, 64], "activations": {"sigmoid": a(f_sig, last_sig), "relu": a(f_relu, last_relu)}}


def test_rule_vanishing():
    assert rules.vanishing(_van(0.25, 1e-40, 1.0, 0.9)).verdict == rules.SUPPORTED
    assert rules.vanishing(_van(0.95, 0.5, 1.0, 0.9)).verdict == rules.REFUTED
    assert rules.vanishing(_van(0.25, 1e-40, 0.5, 1e-10)).verdict == rules.REFUTED


def _sp(relu0, relu1, sig):
    return {"activations": {"relu": {"zero_fraction_init": relu0, "zero_fraction_trained": relu1},
                            "sigmoid": {"zero_fraction_init": sig, "zero_fraction_trained": sig}}}


def test_rule_sparsity():
    assert rules.sparsity(_sp([0.5, 0.5], [0.5, 0.6], [0, 0])).verdict == rules.SUPPORTED
    assert rules.sparsity(_sp([0.01, 0.0], [0.0, 0.0], [0, 0])).verdict == rules.REFUTED
    assert rules.sparsity(_sp([0.5, 0.5], [0.5, 0.05], [0, 0])).verdict == rules.DEPENDS


def _mm(speedups_at_batch):
    cases, xos = [], []
    for batch, sp in speedups_at_batch.items():
        for s, v in zip((0.0, 0.5, 0.9), sp):
            cases.append({"shape": [64, 64], "batch": batch, "sparsity": s, "speedup": {"csr": v}})
        xos.append({"shape": [64, 64], "batch": batch, "impl": "csr", "crossover": experiments.crossover((0, 0.5, 0.9), sp)})
    return {"relu_zero_fraction": {"init": 0.5, "trained": 0.5}, "cases": cases, "crossovers": xos, "project_op": False}


def test_rule_sparse_matmul():
    assert rules.sparse_matmul(_mm({1: (1.0, 2.0, 9.0)})).verdict == rules.SUPPORTED
    assert rules.sparse_matmul(_mm({1: (0.1, 0.2, 0.5)})).verdict == rules.REFUTED
    v = rules.sparse_matmul(_mm({1: (0.3, 0.6, 3.0), 64: (0.1, 0.2, 0.5)}))
    assert v.verdict == rules.DEPENDS and v.condition.startswith("sparsity")
    assert "fallback" in v.numbers


def test_rule_sparse_matmul_without_relus_measured_sparsity():
    # `claims --only 5`: claim 4 did not run, so ReLU's sparsity is unknown; the grid still decides
    d = dict(_mm({1: (0.3, 0.6, 3.0), 64: (0.1, 0.2, 0.5)}), relu_zero_fraction={})
    v = rules.sparse_matmul(d)
    assert v.verdict == rules.DEPENDS and "n/a" in v.numbers and "n/a" in v.condition
    assert "batch 1 from s ~ 0.58" in v.condition and "batch 64 never" in v.condition   # the 1.1x crossovers
    # a grid where the sparse kernel wins everywhere is not "supported" without ReLU's sparsity,
    # and no speed-up "at" an unknown sparsity is printed
    v = rules.sparse_matmul(dict(_mm({1: (3.0, 6.0, 9.0)}), relu_zero_fraction={}))
    assert v.verdict == rules.DEPENDS and "from s ~ 0.00" in v.condition
    assert "nan" not in v.numbers + v.condition and "x0 " not in v.condition


def _dy(dead):
    runs = []
    for (opt, lr, act), (fr, div) in dead.items():
        runs.append({"optimiser": opt, "lr": lr, "act": act, "dead": fr, "final_loss": 1.0, "diverged_at": div})
    return {"runs": runs}


def test_rule_dying():
    base = {("sgd", 0.01, "relu"): (0.0, None), ("sgd", 0.01, "leaky_relu"): (0.0, None)}
    sup = _dy({**base, ("sgd", 1.0, "relu"): (0.5, None), ("sgd", 1.0, "leaky_relu"): (0.1, None)})
    assert rules.dying(sup).verdict == rules.SUPPORTED
    ref = _dy({**base, ("sgd", 1.0, "relu"): (0.1, None), ("sgd", 1.0, "leaky_relu"): (0.1, None)})
    assert rules.dying(ref).verdict == rules.REFUTED
    dep = _dy({**base, ("sgd", 1.0, "relu"): (0.5, None), ("sgd", 1.0, "leaky_relu"): (0.45, None)})
    assert rules.dying(dep).verdict == rules.DEPENDS
    # a leaky run that diverged does not count as avoiding
    div = _dy({**base, ("sgd", 1.0, "relu"): (0.5, None), ("sgd", 1.0, "leaky_relu"): (0.0, 3)})
    assert rules.dying(div).verdict == rules.DEPENDS
    # ReLU diverging is not dying
    diverged = _dy({**base, ("sgd", 1.0, "relu"): (0.9, 2), ("sgd", 1.0, "leaky_relu"): (0.0, 2)})
    assert rules.dying(diverged).verdict == rules.REFUTED


def _bu(relu_big, sig_max):
    mk = lambda act, g, ratio, mx: {"act": act, "gain": g, "rms_last_over_first": ratio, "growth_per_layer": 1.0,  # noqa: E731
                                    "max_abs_by_layer": [mx]}
    return {"depth": 64, "runs": [mk("relu", 1.0, 1.0, 3), mk("relu", 1.2, relu_big, 1e5), mk("sigmoid", 1.2, 1.0, sig_max)]}


def test_rule_blowup():
    assert rules.blowup(_bu(1e4, 0.99)).verdict == rules.SUPPORTED
    assert rules.blowup(_bu(2.0, 0.99)).verdict == rules.REFUTED


def _bnr(off, on, base=3.0):
    mk = lambda bn, v: {"lr": 0.1, "bn": bn, "curve": [(0, 4.0), (1, v), (2, v), (3, v)], "diverged_at": None,  # noqa: E731
                        "mean_predictor_loss": base}
    return {"depth": 20, "steps": 3, "runs": [mk(False, off), mk(True, on)]}


def test_rule_batchnorm():
    assert rules.batchnorm(_bnr(3.0, 0.5)).verdict == rules.SUPPORTED
    assert rules.batchnorm(_bnr(3.0, 2.9)).verdict == rules.REFUTED
    assert rules.batchnorm(_bnr(0.5, 0.4)).verdict == rules.DEPENDS


def _mask(mem, ratios):
    return {"memory_ratio_sigmoid_over_mask": mem,
            "bytes_kept_per_activation": {"relu_grad_mask (packed mask)": 4 / mem, "sigmoid_grad (y, float32)": 4},
            "ratios": [{"backend": b, "size": 2**20, "mask_over_sigmoid_grad": r} for b, r in ratios]}


def test_rule_mask_backward():
    assert rules.mask_backward(_mask(32, [("numba_cpu", 0.8)])).verdict == rules.SUPPORTED
    v = rules.mask_backward(_mask(32, [("numba_cpu", 0.8), ("numpy", 3.0)]))
    assert v.verdict == rules.DEPENDS and "numpy" in v.condition
    assert rules.mask_backward(_mask(1, [("numba_cpu", 0.8)])).verdict == rules.REFUTED


# ------------------------------------------------------------------------------- CLI

def test_cli_writes_json_markdown_and_plots(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(experiments.PROFILES, "quick", TINY)
    out = tmp_path / "claims.json"
    assert main(["claims", "--quick", "--out", str(out), "--only", "2,4,7"]) == 0
    run = json.loads(out.read_text())
    assert [c["id"] for c in run["claims"]] == [2, 4, 7]
    assert run["seed"] == 0 and run["config"]["name"] == "tiny" and "load" in run
    md = out.with_suffix(".md").read_text()
    assert "| 2 |" in md and "claims-plots/claim2-derivatives.png" in md
    assert (tmp_path / "claims-plots" / "claim7-blowup.png").stat().st_size > 1000


@pytest.mark.parametrize("argv", [["claims", "--only", "0"], ["claims", "--only", "x"], ["claims", "--bogus"]])
def test_cli_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_noisy_cells_never_decide_and_all_noisy_is_undecided():
    d = _cost(("numpy", 2**20, 5, 2), ("numba_cpu", 2**16, 1.0, 1.0))
    d["ratios"][1]["spread"] = 1.5
    v = rules.cost(d)
    assert v.verdict == rules.SUPPORTED and "~numba_cpu" in v.numbers
    d["ratios"][0]["spread"] = 1.5          # issue 17: a claim never decides on a marked cell
    v = rules.cost(d)
    assert v.verdict == rules.UNDECIDED and "none decides" in v.numbers


def test_a_starved_mask_cell_never_decides():
    cells = [{"backend": "numba_cpu", "size": 2**16, "mask_over_sigmoid_grad": 0.9, "spread": 0.0},
             {"backend": "torch", "size": 2**16, "mask_over_sigmoid_grad": 860.0, "spread": 0.0, "starved": True}]
    d = {"memory_ratio_sigmoid_over_mask": 32.0, "ratios": cells,
         "bytes_kept_per_activation": {"relu_grad_mask (packed mask)": 0.125, "sigmoid_grad (y, float32)": 4.0}}
    assert rules.mask_backward(d).verdict == rules.SUPPORTED
    cells[0]["starved"] = True
    assert rules.mask_backward(d).verdict == rules.UNDECIDED


def test_a_cell_whose_threads_waited_on_one_op_is_starved():
    """Claim 1's stalled cell of issue 17 (x860 forward, x0.00221 backward): not 10x slower than
    NumPy on every op, but relu's threads ran half the time they were ready: starved."""
    t = {("numpy", 8, "a"): 1.0, ("numpy", 8, "b"): 1.0, ("x", 8, "a"): 400.0, ("x", 8, "b"): 0.5}
    assert not experiments._starved(t, "x", 8, ["a", "b"])
    assert not experiments._starved(t, "x", 8, ["a", "b"], {("x", 8, "a"): 0.95, ("x", 8, "b"): None})
    assert experiments._starved(t, "x", 8, ["a", "b"], {("x", 8, "a"): 0.5, ("x", 8, "b"): 0.99})
    assert experiments.STARVED == load.STARVED_SLOWER          # one rule, bench/measure/load.py's


def test_a_backend_far_slower_than_numpy_everywhere_is_starved():
    t = {("numpy", 8, "a"): 1.0, ("numpy", 8, "b"): 1.0, ("x", 8, "a"): 50.0, ("x", 8, "b"): 20.0, ("y", 8, "a"): 50.0,
         ("y", 8, "b"): 2.0}
    assert experiments._starved(t, "x", 8, ["a", "b"])
    assert not experiments._starved(t, "y", 8, ["a", "b"])
    assert not experiments._starved(t, "numpy", 8, ["a", "b"])
    d = _cost(("numpy", 2**20, 5, 2), ("numba_cpu", 2**16, 1.0, 1.0))
    d["ratios"][1]["starved"] = True
    assert rules.cost(d).verdict == rules.SUPPORTED


# ------------------------------------------------------------------------------- measurement wiring

class _Be:
    def __init__(self, name, device="cpu", library="numpy"):
        self.name, self.device, self.library = name, device, library


def _logging(order, tag):
    def fn(*args, out=None):
        order.append(tag)
        return np.zeros(1) if out is None else out
    return fn


def test_interleaved_timing_takes_samples_in_turns():
    order = []
    sampling = timing.Sampling(min_samples=4, max_samples=4, min_sample_s=0.0, warmup_s=0.0)
    rows = measure.time_interleaved([(_logging(order, "a"), (), {}, _Be("x")), (_logging(order, "b"), (), {}, _Be("x"))],
                                    sampling)
    assert [r["n"] for r in rows] == [4, 4]
    assert all(r["min_s"] <= r["median_s"] and r["timer"] == "perf_counter_ns" for r in rows)
    timed = order[-8:]                               # after each call's set-up and warm-up calls
    assert all(sorted(timed[i:i + 2]) == ["a", "b"] for i in range(0, 8, 2))


def test_interleaved_timing_keeps_sampling_until_stable_or_out_of_budget():
    """The stop rule of bench run --interleave: past min_samples while the medians are unstable
    (rel_tol 0 is never met), up to max_samples."""
    sampling = timing.Sampling(min_samples=3, max_samples=9, rel_tol=0.0, budget_s=1e9,
                               min_sample_s=0.0, warmup_s=0.0)
    rows = measure.time_interleaved([(_logging([], "a"), (), {}, _Be("x")), (_logging([], "b"), (), {}, None)], sampling)
    assert [r["n"] for r in rows] == [9, 9]


def test_gpu_calls_go_through_the_backends_device_adapter(monkeypatch):
    from bench.measure import devices
    seen = {}

    class FakeAdapter:
        def close(self):
            seen["closed"] = True

    def fake_gpu_sampler(fn, args, kwargs, device):
        seen["device"], seen["kwargs"] = device, kwargs
        samples = iter([1e-3, 2e-3] * 100)
        return lambda: (seen.setdefault("open_while_sampled", "closed" not in seen), next(samples))[1]

    monkeypatch.setattr(devices, "adapter_for", lambda be: FakeAdapter())
    monkeypatch.setattr(measure.timing, "gpu_sampler", fake_gpu_sampler)
    rows = measure.time_interleaved([(lambda out=None: np.zeros(1), (), {"out": np.zeros(1)}, _Be("g", "gpu", "cupy"))],
                                    FAST)
    assert isinstance(seen["device"], FakeAdapter) and seen["open_while_sampled"] and seen["closed"]
    assert "out" in seen["kwargs"]
    assert rows[0]["min_s"] == 1e-3 and rows[0]["timer"] == "cuda_event"


def test_the_command_line_imports_no_matplotlib_or_threadpoolctl():
    """gpu_check runs `python -m bench` where neither is installed: building the parser must not
    import them (they load when `claims` runs)."""
    import subprocess
    import sys
    code = ("import sys; from bench.cli.main import _parser; _parser(); "
            "bad = [m for m in ('matplotlib', 'threadpoolctl') if m in sys.modules]; "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_one_thread_restores_numba_threads():
    import numba
    before = numba.get_num_threads()
    with measure.one_thread():
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
