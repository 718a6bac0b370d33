"""One figure per claim, from the numbers its experiment returned (matplotlib's object API, Agg:
no window, no global state). Each function takes the claim's numbers and returns a Figure."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:      # matplotlib is imported where a figure is drawn: `bench claims` alone needs it
    from matplotlib.figure import Figure

ACT_STYLE = {"sigmoid": ("C0", "o"), "tanh": ("C1", "s"), "relu": ("C2", "D"), "leaky_relu": ("C3", "^")}


def _fig(ncols: int = 1, w: float = 6.4, h: float = 4.0):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(w * ncols, h), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _ratio_bars(ax, ratios: list[dict], *series: tuple[str, str], **tick_kw) -> None:
    """Time ratios per (backend, size) as groups of bars on a log axis with 1 marked; each series
    is (the ratio's key in a row, or in its "values", its label); a missing ratio leaves a gap."""
    labels = [f"{r['backend']}\n2^{int(np.log2(r['size']))}" for r in ratios]
    x = np.arange(len(labels))
    width = 0.8 / len(series)
    for i, (key, label) in enumerate(series):
        got = [r.get(key, (r.get("values") or {}).get(key)) for r in ratios]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, [np.nan if v is None else v for v in got], width, label=label)
    ax.axhline(1, color="k", lw=0.8)
    ax.set_xticks(x, labels, **tick_kw)
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter
    plain = FuncFormatter(lambda v, _: f"{v:g}")       # 0.5, 2 rather than 5x10^-1, 2x10^0
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.set_ylabel("time ratio (min of samples)")


def cost(d: dict) -> Figure:
    beside = d.get("beside") or {}
    if not beside.get("rows"):             # a run saved before SiLU and GELU were timed beside
        fig, (ax,) = _fig(w=8)
        _ratio_bars(ax, d["ratios"], ("forward", "forward: sigmoid / relu"),
                    ("backward", "backward: sigmoid_grad / relu_grad"))
        ax.set_title("1. Is sigmoid costlier than ReLU? (float32)")
        ax.legend()
        return fig
    fig, axes = _fig(2, w=6)
    cols = beside["columns"]
    for ax, way, ref in zip(axes, ("forward", "backward"), ("relu", "relu_grad")):
        series = [(c, f"{c} / {ref}") for c in cols if beside["pairs"][c][1] == ref]
        _ratio_bars(ax, beside["rows"], *series, fontsize=8)
        ax.set_title(f"1. {way}: time over ReLU's (float32)")
        ax.legend(fontsize=8)
    fig.suptitle("Is sigmoid costlier than ReLU? SiLU and GELU beside it (not judged)")
    return fig


def derivatives(d: dict) -> Figure:
    fig, (ax,) = _fig()
    c = d["curves"]
    for act in ("sigmoid", "tanh", "relu", "leaky_relu"):
        col, _ = ACT_STYLE[act]
        ax.plot(c["x"], c[act], color=col, label=f"{act}'")
    ax.axhline(0.25, color="C0", ls=":", lw=0.8)
    ax.set(xlabel="x", ylabel="derivative (gradient kernel, dy = 1)",
           title="2. Derivatives: sigmoid' <= 0.25, relu' in {0, 1}")
    ax.legend()
    return fig


def vanishing(d: dict) -> Figure:
    fig, (a1, a2) = _fig(2)
    for act, v in d["activations"].items():
        col, m = ACT_STYLE[act]
        a1.plot(d["depths"], v["ratio_first_last"], color=col, marker=m,
                label=f"{act} ({v['init']}), x{v['per_layer_factor']:.3g}/layer")
        a2.plot(range(1, len(v["grad_norm_by_layer_deepest"]) + 1), v["grad_norm_by_layer_deepest"], color=col, label=act)
    for a in (a1, a2):
        a.set_yscale("log")
        a.legend(fontsize=8)
    a1.set(xlabel="depth (hidden layers)", ylabel="|dL/dW first| / |dL/dW last|",
           title=f"3. Gradient ratio, width {d['width']}, batch {d['batch']}")
    a2.set(xlabel="layer", ylabel="|dL/dW|", title=f"per layer, depth {d['depths'][-1]}")
    return fig


def sparsity(d: dict) -> Figure:
    fig, (ax,) = _fig()
    acts = list(d["activations"])
    n = len(d["activations"][acts[0]]["zero_fraction_init"])
    x = np.arange(n)
    wd = 0.8 / (2 * len(acts))
    for i, act in enumerate(acts):
        col, _ = ACT_STYLE[act]
        v = d["activations"][act]
        ax.bar(x + (2 * i) * wd - 0.4, v["zero_fraction_init"], wd, color=col, alpha=0.45, label=f"{act} init")
        ax.bar(x + (2 * i + 1) * wd - 0.4, v["zero_fraction_trained"], wd, color=col, label=f"{act} trained")
    ax.set_xticks(x, [f"layer {i + 1}" for i in range(n)])
    ax.set(ylabel="fraction of exact zeros", ylim=(0, 1), title="4. Exact zeros per hidden layer")
    ax.legend(fontsize=7, ncols=2)
    return fig


def sparse_matmul(d: dict) -> Figure:
    keys = sorted({(tuple(c["shape"]), c["batch"]) for c in d["cases"]})
    fig, (ax,) = _fig()
    s = np.linspace(0, 0.99, 100)
    ax.plot(s, 1 / (1 - s), color="k", ls=":", lw=0.8, label="ideal 1/(1-s)")
    for i, (shape, batch) in enumerate(keys):
        cs = sorted((c for c in d["cases"] if tuple(c["shape"]) == shape and c["batch"] == batch), key=lambda c: c["sparsity"])
        for j, impl in enumerate(d["sparse_impls"]):
            ax.plot([c["sparsity"] for c in cs], [c["speedup"][impl] for c in cs], marker="o", color=f"C{i}",
                    ls=["-", "--", "-.", ":"][j % 4], label=f"{impl}, {shape[0]}x{shape[1]}, batch {batch}")
    for k, v in d["relu_zero_fraction"].items():
        ax.axvline(v, color="C2", ls="--", lw=0.8)
        ax.annotate(f"ReLU {k}", (v, 1), rotation=90, fontsize=7, va="bottom")
    ax.axhline(1, color="k", lw=0.8)
    ax.set(yscale="log", xlabel="sparsity s (fraction of exact zeros in the activations)",
           ylabel=f"speed-up over dense {d['dense']}", title="5. Sparse matmul speed-up")
    ax.legend(fontsize=7)
    return fig


def dying(d: dict) -> Figure:
    opts = sorted({r["optimiser"] for r in d["runs"]})
    fig, axes = _fig(len(opts))
    for ax, opt in zip(axes, opts):
        for act in ("relu", "leaky_relu"):
            rs = sorted((r for r in d["runs"] if r["optimiser"] == opt and r["act"] == act), key=lambda r: r["lr"])
            col, m = ACT_STYLE[act]
            ax.plot([r["lr"] for r in rs], [r["dead"] for r in rs], color=col, marker=m, label=f"{act} dead")
            for r in rs:
                if r["diverged_at"] is not None:
                    ax.annotate("diverged", (r["lr"], r["dead"]), fontsize=7, color=col)
        ax.set(xscale="log", ylim=(-0.02, 1), xlabel="learning rate",
               ylabel="fraction of units negative on every input",
               title=f"6. Dead units after {d['steps']} steps, {opt}")
        ax.legend()
    return fig


def blowup(d: dict) -> Figure:
    fig, (ax,) = _fig()
    for r in d["runs"]:
        col, _ = ACT_STYLE[r["act"]]
        ax.plot(range(1, len(r["rms_by_layer"]) + 1), r["rms_by_layer"], color=col,
                ls="-" if r["gain"] != 1.0 else ":", label=f"{r['act']} gain {r['gain']:g}")
    ax.set(yscale="log", xlabel="layer", ylabel="RMS activation",
           title=f"7. Activations with depth (init x gain), width {d['width']}")
    ax.legend(fontsize=7, ncols=2)
    return fig


def batchnorm(d: dict) -> Figure:
    fig, (ax,) = _fig()
    for i, r in enumerate(d["runs"]):
        st, v = zip(*r["curve"])
        ax.plot(st, v, color=f"C{i // 2}", ls="-" if r["bn"] else ":",
                label=f"lr {r['lr']:g} {'with' if r['bn'] else 'without'} standardisation")
    ax.axhline(d["runs"][0]["mean_predictor_loss"], color="k", lw=0.8, ls="--", label="predict the mean")
    ax.set(yscale="log", xlabel="SGD step", ylabel="loss (evaluation batch)",
           title=f"8. Depth-{d['depth']} sigmoid MLP")
    ax.legend(fontsize=8)
    return fig


def mask_backward(d: dict) -> Figure:
    fig, (a1, a2) = _fig(2)
    kept = d["bytes_kept_per_activation"]
    a1.bar(range(len(kept)), list(kept.values()), color=[f"C{i}" for i in range(len(kept))])
    a1.set_xticks(range(len(kept)), [k.replace(" (", "\n(") for k in kept], fontsize=8)
    a1.set(ylabel="bytes kept per activation for the backward", title="9. Memory kept for the backward")
    beside = d.get("beside") or {}
    if beside.get("rows"):
        _ratio_bars(a2, beside["rows"], *((c, " / ".join(beside["pairs"][c])) for c in beside["columns"]),
                    fontsize=8)
    else:                                  # a run saved before SiLU and GELU were timed beside
        _ratio_bars(a2, d["ratios"], ("mask_over_sigmoid_grad", "relu_grad_mask / sigmoid_grad"),
                    ("mask_over_relu_grad", "relu_grad_mask / relu_grad"), fontsize=8)
    a2.set_title("backward time")
    a2.legend(fontsize=8)
    return fig


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path
