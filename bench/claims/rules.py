"""Verdict rules: each claim's numbers -> supported, refuted, or "depends on" a condition.

A rule reads only the numbers its experiment returned (plain dicts, so the tests feed it synthetic
ones) and compares them with the thresholds below, named so that the report can say what would
change the verdict. No verdict is written by hand.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

SUPPORTED, REFUTED, DEPENDS = "supported", "refuted", "depends on"
UNDECIDED = "undecided"     # every cell that could decide was marked: measure again on a quieter machine

# Claim 1: sigmoid "costs more" when it takes at least this many times ReLU's time; "the same" below EQUAL.
COST_HOLDS = 1.5
# Claim 3: a per-layer factor below VANISH shrinks the gradient geometrically; ReLU "keeps" it when
# the first-to-last ratio at the deepest depth stays above KEEP_RATIO.
VANISH, KEEP_RATIO = 0.8, 0.1
# Claim 4: a representation is sparse with at least SPARSE exact zeros per layer, dense with at most DENSE.
SPARSE, DENSE = 0.2, 0.01
# Claim 5: a speed-up counts from FASTER.
FASTER = 1.1
# Claim 6: "many" dead units: at least MANY of them; "avoids": at most half of ReLU's.
MANY, FEW = 0.2, 0.05
# Claim 7: blow-up: the RMS activation grows at least BLOWUP-fold over the depth; bounded: at most BOUNDED-fold.
BLOWUP, BOUNDED = 10.0, 2.0
# Claim 8: a network "trains" when its final loss is at most TRAINS x the loss of predicting the mean.
TRAINS = 0.5
# Claims 1 and 9: a time ratio whose timings spread more than NOISY (IQR / median of the samples),
# or whose backend was starved (bench/measure/load.py's rule, as bench run marks cases: its threads waited
# for a core while an op was timed, or it was far slower than NumPy on every op), is shown (marked ~)
# but never decides; when every cell is like that the claim is UNDECIDED.
NOISY = 1.0
# Claim 9: the 1-bit backward is "not slower" up to NOT_SLOWER x sigmoid_grad's time.
NOT_SLOWER = 1.1


@dataclass(frozen=True)
class Verdict:
    verdict: str            # supported / refuted / depends on
    condition: str          # for "depends on": on what; else ""
    numbers: str            # the key numbers, one line
    would_change: str       # what measurement would flip it

    def label(self) -> str:
        return f"{self.verdict} {self.condition}".strip()

    def as_dict(self) -> dict:
        return asdict(self)


def times(v: float) -> str:
    """A ratio as the report writes it: x1.65."""
    return "x" + (f"{v:.3g}" if math.isfinite(v) else str(v))


def size_label(n: int) -> str:
    """A size as the report writes it: 2^16 for a power of two."""
    return f"2^{int(math.log2(n))}" if n > 0 and n & (n - 1) == 0 else str(n)




def _steady(ratios: list[dict]) -> list[dict]:
    """The cells that decide: those neither noisy nor starved (none may)."""
    return [r for r in ratios if not unsteady(r)]


def unsteady(r: dict) -> bool:
    """Whether a cell (or a row of a table beside a verdict) is marked ~: noisy or starved."""
    return r.get("spread", 0.0) > NOISY or r.get("starved", False)


def _decided(steady: list, ratios: list) -> str:
    n = len([r for r in ratios if not unsteady(r)])
    if n == len(ratios):
        return ""
    return f" ({n} of {len(ratios)} cells decide)" if n else " (every cell marked ~: none decides)"


def _tilde(r: dict) -> str:
    return "~" if unsteady(r) else ""


def _undecided(numbers: str, change: str) -> Verdict:
    return Verdict(UNDECIDED, "every cell marked ~ (noisy or starved): run it again on a quieter machine",
                   numbers, change)


def cost(d: dict) -> Verdict:
    steady = _steady(d["ratios"])
    cells = [(r["backend"], r["size"], way, r[way]) for r in steady for way in ("forward", "backward")]
    holds = [c for c in cells if c[3] >= COST_HOLDS]
    numbers = "sigmoid/relu time, fwd and bwd: " + ", ".join(
        f"{_tilde(r)}{r['backend']} {size_label(r['size'])} {times(r['forward'])} {times(r['backward'])}" for r in d["ratios"]) \
        + _decided(steady, d["ratios"])
    change = (f"a cell counts as 'sigmoid costs more' at >= {COST_HOLDS}x ReLU's time (min of the samples); "
              "supported if every backend, size and direction does, refuted if none does; cells marked ~ "
              f"(timings spread over {NOISY:.0%}, or a backend starved of cores) do not decide")
    if not steady:
        return _undecided(numbers, change)
    if len(holds) == len(cells):
        return Verdict(SUPPORTED, "", numbers, change)
    if not holds:
        return Verdict(REFUTED, "", numbers, change)
    parts = []
    for way in ("forward", "backward"):
        where = {}
        for be, n, w, _ in holds:
            if w == way:
                where.setdefault(be, []).append(size_label(n))
        n_way = sum(1 for c in cells if c[2] == way)
        if len([c for c in holds if c[2] == way]) == n_way:
            parts.append(f"{way} everywhere")
        else:
            parts.append(f"{way} " + (", ".join(f"{be} {'/'.join(ns)}" for be, ns in where.items()) or "nowhere"))
    return Verdict(DEPENDS, f"the implementation: sigmoid costs >= {COST_HOLDS}x " + "; ".join(parts), numbers, change)


def derivatives(d: dict) -> Verdict:
    bes = d["backends"]
    sig = max(b["sigmoid_grad_max"] for b in bes)
    relu_vals = sorted({v for b in bes for v in b["relu_grad_values"]})
    lo, hi = bes[0]["sigmoid_grad_argmax_x"]
    numbers = (f"max sigmoid' = {sig:.6g} for x in [{lo:.2g}, {hi:.2g}] ({', '.join(b['backend'] for b in bes)}); "
               f"relu' takes {relu_vals}; sigmoid' < 0.1 on {bes[0]['sigmoid_grad_below_0.1']:.0%} of "
               f"[{d['grid']['from']:g}, {d['grid']['to']:g}]")
    change = "a kernel whose sigmoid' exceeds 0.25 (+1e-6) or whose relu' takes a value other than 0 and 1"
    ok = all(abs(b["sigmoid_grad_max"] - 0.25) <= 1e-6 for b in bes) and set(relu_vals) <= {0.0, 1.0}
    return Verdict(SUPPORTED if ok else REFUTED, "", numbers, change)


def vanishing(d: dict) -> Verdict:
    a = d["activations"]
    deepest = d["depths"][-1]
    f = {k: v["per_layer_factor"] for k, v in a.items()}
    last = {k: v["ratio_first_last"][-1] for k, v in a.items()}
    numbers = "per-layer factor " + ", ".join(f"{k} {f[k]:.3g}" for k in a) + \
              f"; first/last at depth {deepest}: " + ", ".join(f"{k} {last[k]:.2g}" for k in a)
    change = (f"sigmoid's per-layer factor rising above {VANISH}, or ReLU's first/last ratio at depth {deepest} "
              f"falling below {KEEP_RATIO} (a different init or loss would move them)")
    sig_vanishes = f["sigmoid"] < VANISH
    relu_keeps = last["relu"] >= KEEP_RATIO and not f["relu"] < VANISH
    return Verdict(SUPPORTED if sig_vanishes and relu_keeps else REFUTED, "", numbers, change)


def sparsity(d: dict) -> Verdict:
    a = d["activations"]
    r0, r1 = a["relu"]["zero_fraction_init"], a["relu"]["zero_fraction_trained"]
    s0, s1 = a["sigmoid"]["zero_fraction_init"], a["sigmoid"]["zero_fraction_trained"]
    numbers = (f"exact zeros per layer: relu init {_fracs(r0)}, trained {_fracs(r1)}; "
               f"sigmoid init {_fracs(s0)}, trained {_fracs(s1)}")
    change = f"a ReLU layer under {SPARSE:.0%} exact zeros, or a sigmoid layer over {DENSE:.0%}"
    relu_sparse = min(r0 + r1) >= SPARSE
    sig_dense = max(s0 + s1) <= DENSE
    if relu_sparse and sig_dense:
        return Verdict(SUPPORTED, "", numbers, change)
    if max(r0 + r1) < SPARSE or not sig_dense:
        return Verdict(REFUTED, "", numbers, change)
    return Verdict(DEPENDS, "the layer: some ReLU layers are not sparse", numbers, change)


def _fracs(v) -> str:
    return "/".join(f"{x:.0%}" for x in v)


def sparse_matmul(d: dict) -> Verdict:
    s_relu = d["relu_zero_fraction"].get("trained", d["relu_zero_fraction"].get("init"))
    at_relu = f"{s_relu:.2f}" if s_relu is not None else "n/a (claim 4 did not run)"
    parts = []
    best: dict[tuple, tuple] = {}        # (shape, batch) -> (speed-up at ReLU's sparsity, impl, lowest crossover)
    for c in d["crossovers"]:
        at = [x for x in d["cases"] if x["shape"] == c["shape"] and x["batch"] == c["batch"]]
        near = min(at, key=lambda x: abs(x["sparsity"] - s_relu)) if s_relu is not None else None
        sp = near["speedup"][c["impl"]] if near else float("nan")
        key = (tuple(c["shape"]), c["batch"])
        old = best.get(key, (0.0, "", None))
        xs = [x for x in (old[2], c["crossover"]) if x is not None]
        best[key] = (sp, c["impl"], min(xs) if xs else None) if sp > old[0] else (old[0], old[1], min(xs) if xs else None)
        xo = "never" if c["crossover"] is None else f"{c['crossover']:.2f}"
        at_s = f"{times(sp)} at s={at_relu}, " if s_relu is not None else ""
        parts.append(f"{c['impl']} {c['shape'][0]}x{c['shape'][1]} batch {c['batch']}: {at_s}crossover {xo}")
    src = "" if d["project_op"] else " [project's sparse_matmul not available yet: scipy CSR fallback]"
    numbers = "; ".join(parts) + src + ("" if s_relu is not None else f"; ReLU's sparsity {at_relu}")
    change = (f"a speed-up of at least {FASTER}x at ReLU's measured sparsity ({at_relu}) in every shape and batch "
              "(supported), or no crossover anywhere (refuted); a faster sparse kernel moves the crossover")
    if s_relu is not None and all(v[0] >= FASTER for v in best.values()):
        return Verdict(SUPPORTED, "", numbers, change)
    if all(v[2] is None for v in best.values()):
        return Verdict(REFUTED, "", numbers, change)

    def where(k):
        shape, batch = k
        return f"batch {batch}" + (f" {shape[0]}x{shape[1]}" if len({s for s, _ in best}) > 1 else "")
    if s_relu is None:                   # only the crossovers can speak: where sparsity pays
        pays = [f"{where(k)} from s ~ {v[2]:.2f}" if v[2] is not None else f"{where(k)} never"
                for k, v in best.items()]
        return Verdict(DEPENDS, f"sparsity: ReLU's s={at_relu}; it pays at " + ", ".join(pays), numbers, change)
    yes = [f"{where(k)} ({times(v[0])} {v[1]})" for k, v in best.items() if v[0] >= FASTER]
    no = [f"{where(k)} ({times(v[0])}; pays from s ~ {v[2]:.2f})" if v[2] is not None else f"{where(k)} (never)"
          for k, v in best.items() if v[0] < FASTER]
    cond = f"sparsity and batch: ReLU's s={at_relu} pays at " + (", ".join(yes) or "no batch") + \
        "; not at " + ", ".join(no)
    return Verdict(DEPENDS, cond, numbers, change)


def dying(d: dict) -> Verdict:
    runs = d["runs"]
    by = {(r["optimiser"], r["lr"], r["act"]): r for r in runs}
    lrs = sorted({r["lr"] for r in runs})
    dying_cases = [k for k, r in by.items() if k[2] == "relu" and r["diverged_at"] is None and r["dead"] >= MANY]
    low = [by[k] for k in by if k[2] == "relu" and k[1] == lrs[0]]
    parts = []
    for opt in dict.fromkeys(k[0] for k in by):
        ok = [lr for lr in lrs if (opt, lr, "relu") in by and by[opt, lr, "relu"]["diverged_at"] is None]
        div = [lr for lr in lrs if (opt, lr, "relu") in by and lr not in ok]
        if not ok:
            parts.append(f"{opt}: diverges at every lr")
            continue
        worst = max(ok, key=lambda lr: by[opt, lr, "relu"]["dead"])
        r, lk = by[opt, worst, "relu"], by[opt, worst, "leaky_relu"]
        parts.append(f"{opt} lr {worst:g}: dead relu {r['dead']:.0%} (loss {r['final_loss']:.3g}), leaky {lk['dead']:.0%} "
                     f"(loss {lk['final_loss']:.3g}); lr {lrs[0]:g}: relu {by[opt, lrs[0], 'relu']['dead']:.0%}"
                     + (f"; diverges from lr {min(div):g}" if div else ""))
    numbers = "; ".join(parts)
    change = (f"'many dead' means >= {MANY:.0%} of hidden units negative on every input, without divergence; "
              f"'avoids' means leaky has at most half ReLU's fraction; at the smallest lr ReLU must stay under {FEW:.0%}")
    if not dying_cases:
        return Verdict(REFUTED, "", numbers, change)
    small_lr_ok = all(r["dead"] <= FEW for r in low)
    avoided = [k for k in dying_cases if by[k[0], k[1], "leaky_relu"]["diverged_at"] is None
               and by[k[0], k[1], "leaky_relu"]["dead"] <= 0.5 * by[k]["dead"]]
    if small_lr_ok and len(avoided) == len(dying_cases):
        return Verdict(SUPPORTED, "", numbers, change)
    cond = []
    if avoided:
        cond.append("leaky avoids it with " + ", ".join(f"{o} lr {lr:g}" for o, lr, _ in avoided))
    rest = [k for k in dying_cases if k not in avoided]
    if rest:
        cond.append("not with " + ", ".join(f"{o} lr {lr:g}" for o, lr, _ in rest))
    if not small_lr_ok:
        cond.append("ReLU units die even at the smallest lr")
    return Verdict(DEPENDS, "the optimiser and learning rate: " + "; ".join(cond), numbers, change)


def blowup(d: dict) -> Verdict:
    by = {(r["act"], r["gain"]): r for r in d["runs"]}
    big = max(g for _, g in by)
    one = min(by, key=lambda k: abs(k[1] - 1.0))[1]
    relu_big, relu_one, sig = by["relu", big], by["relu", one], by["sigmoid", big]
    sig_max = max(sig["max_abs_by_layer"])
    numbers = (f"depth {d['depth']}, RMS last/first: relu gain {big:g} {times(relu_big['rms_last_over_first'])} "
               f"(x{relu_big['growth_per_layer']:.3g}/layer), relu gain {one:g} {times(relu_one['rms_last_over_first'])}; "
               f"sigmoid gain {big:g} {times(sig['rms_last_over_first'])}, max |h| {sig_max:.3g}")
    change = (f"ReLU's RMS growing less than {BLOWUP:g}x over the depth at gain {big:g} (refuted), or sigmoid's more "
              f"than {BOUNDED:g}x; at gain {one:g} (He) ReLU's growth per layer is the control")
    relu_blows = relu_big["rms_last_over_first"] >= BLOWUP
    sig_bounded = sig_max <= 1.0 and sig["rms_last_over_first"] <= BOUNDED
    if relu_blows and sig_bounded:
        return Verdict(SUPPORTED, "", numbers, change)
    return Verdict(REFUTED, "", numbers, change)


def batchnorm(d: dict) -> Verdict:
    parts, verdicts = [], []
    for lr in sorted({r["lr"] for r in d["runs"]}):
        off = next(r for r in d["runs"] if r["lr"] == lr and not r["bn"])
        on = next(r for r in d["runs"] if r["lr"] == lr and r["bn"])
        lo, ln = _final(off), _final(on)
        base = on["mean_predictor_loss"]
        parts.append(f"lr {lr:g}: loss/mean-predictor without {lo / base:.2f}, with {ln / base:.2f}")
        verdicts.append((lr, lo <= TRAINS * base, ln <= TRAINS * base))
    numbers = f"depth {d['depth']} sigmoid, {d['steps']} steps; " + "; ".join(parts)
    change = (f"'trains' means a final loss (median of the last 3 evaluations) at most {TRAINS} x the loss of "
              "predicting the mean target; more steps or another optimiser could let the plain network train too")
    if any(on and not off for _, off, on in verdicts):
        return Verdict(SUPPORTED, "", numbers, change)
    if not any(on for _, _, on in verdicts):
        return Verdict(REFUTED, "", numbers, change)
    return Verdict(DEPENDS, "the step budget: the plain network trains too", numbers, change)


def _final(run: dict) -> float:
    if run["diverged_at"] is not None:
        return float("inf")
    tail = [v for _, v in run["curve"][-3:]]
    return float(sorted(tail)[len(tail) // 2])


def mask_backward(d: dict) -> Verdict:
    mem = d["memory_ratio_sigmoid_over_mask"]
    cells = _steady(d["ratios"])
    numbers = (f"kept per activation: {d['bytes_kept_per_activation']['relu_grad_mask (packed mask)']:g} B vs "
               f"{d['bytes_kept_per_activation']['sigmoid_grad (y, float32)']:g} B ({mem:g}x less); "
               "relu_grad_mask / sigmoid_grad time: "
               + ", ".join(f"{_tilde(c)}{c['backend']} {size_label(c['size'])} {times(c['mask_over_sigmoid_grad'])}"
                           for c in d["ratios"]) + _decided(cells, d["ratios"]))
    change = (f"the mask backward taking more than {NOT_SLOWER}x sigmoid_grad's time on a backend (min of the samples); "
              f"cells marked ~ (timings spread over {NOISY:.0%}, or a backend starved of cores) do not decide")
    if mem < 8:
        return Verdict(REFUTED, "", numbers, change)
    if not cells:
        return _undecided(numbers, change)
    slow = [c for c in cells if c["mask_over_sigmoid_grad"] > NOT_SLOWER]
    if not slow:
        return Verdict(SUPPORTED, "", numbers, change)
    fast = sorted({c["backend"] for c in cells} - {c["backend"] for c in slow})
    cond = "the kernel for time (memory holds everywhere): slower on " + \
           ", ".join(f"{c['backend']} {size_label(c['size'])}" for c in slow)
    if fast:
        cond += "; not slower on " + ", ".join(fast)
    return Verdict(DEPENDS, cond, numbers, change)
