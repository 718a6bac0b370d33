"""The nine claims: each tied to its experiment, its verdict rule and its plot (the one list)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bench.claims import experiments, plots, rules


@dataclass(frozen=True)
class Claim:
    id: int
    claim: str
    experiment: str
    run: Callable[[experiments.Config, experiments.Context], dict]
    rule: Callable[[dict], rules.Verdict]
    plot: Callable[[dict], object]
    slug: str


def _claim(id: int, key: str, claim: str, experiment: str) -> Claim:
    """Claim `id`: its experiment, rule and plot are the functions named `key` in experiments.py,
    rules.py and plots.py; its slug (file names, JSON) is `key` with hyphens."""
    return Claim(id, claim, experiment, getattr(experiments, key), getattr(rules, key), getattr(plots, key),
                 key.replace("_", "-"))


CLAIMS: tuple[Claim, ...] = (
    _claim(1, "cost", "ReLU is cheaper to compute than sigmoid (no exp), forward and backward",
           "time sigmoid/relu and sigmoid_grad/relu_grad per backend, in cache and beyond it (float32)"),
    _claim(2, "derivatives", "sigmoid's derivative is at most 0.25; ReLU's is 0 or 1",
           "the gradient kernels with dy = 1 on a fine float32 grid, on every backend"),
    _claim(3, "vanishing", "gradients vanish geometrically with depth in sigmoid networks, not with ReLU",
           "|dL/dW first| / |dL/dW last| for depth 2-64, width 256; Xavier (sigmoid, tanh), He (relu, leaky)"),
    _claim(4, "sparsity", "ReLU gives sparse representations, sigmoid dense ones",
           "fraction of exact zeros per hidden layer at init and after training (SGD, synthetic regression)"),
    _claim(5, "sparse_matmul", "sparse representations can be exploited by sparse matrix operations",
           "sparse matmul speed-up over dense BLAS (one thread each) against sparsity, at ReLU's measured sparsity; crossover"),
    _claim(6, "dying", "with a large learning rate ReLU units die; leaky ReLU avoids it",
           "SGD (plain, and clipped to norm 1) on a small MLP at several learning rates: dead units, final loss"),
    _claim(7, "blowup", "ReLU activations can blow up (unbounded); sigmoid's cannot",
           "RMS activation per layer, depth 64, init at 1.0x and 1.2x the standard scale"),
    _claim(8, "batchnorm", "with normalisation (batch norm) a deep sigmoid network trains after all",
           "depth-20 sigmoid MLP with and without per-layer standardisation, SGD loss curves"),
    _claim(9, "mask_backward", "ReLU's backward needs 1 bit per activation, sigmoid's the full output",
           "bytes kept per activation; time of relu_grad_mask against sigmoid_grad (float32)"),
)
