"""The nine claims: each tied to its experiment, its verdict rule and its plot (the one list)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import experiments, plots, rules


@dataclass(frozen=True)
class Claim:
    id: int
    claim: str
    experiment: str
    run: Callable[[experiments.Config, experiments.Context], dict]
    rule: Callable[[dict], rules.Verdict]
    plot: Callable[[dict], object]
    slug: str


CLAIMS: tuple[Claim, ...] = (
    Claim(1, "ReLU is cheaper to compute than sigmoid (no exp), forward and backward",
          "time sigmoid/relu and sigmoid_grad/relu_grad per backend, in cache and beyond it (float32)",
          experiments.cost, rules.cost, plots.cost, "cost"),
    Claim(2, "sigmoid's derivative is at most 0.25; ReLU's is 0 or 1",
          "the gradient kernels with dy = 1 on a fine float32 grid, on every backend",
          experiments.derivatives, rules.derivatives, plots.derivatives, "derivatives"),
    Claim(3, "gradients vanish geometrically with depth in sigmoid networks, not with ReLU",
          "|dL/dW first| / |dL/dW last| for depth 2-64, width 256; Xavier (sigmoid, tanh), He (relu, leaky)",
          experiments.vanishing, rules.vanishing, plots.vanishing, "vanishing"),
    Claim(4, "ReLU gives sparse representations, sigmoid dense ones",
          "fraction of exact zeros per hidden layer at init and after training (SGD, synthetic regression)",
          experiments.sparsity, rules.sparsity, plots.sparsity, "sparsity"),
    Claim(5, "sparse representations can be exploited by sparse matrix operations",
          "sparse matmul speed-up over dense BLAS (one thread each) against sparsity, at ReLU's measured sparsity; crossover",
          experiments.sparse_matmul, rules.sparse_matmul, plots.sparse_matmul, "sparse-matmul"),
    Claim(6, "with a large learning rate ReLU units die; leaky ReLU avoids it",
          "SGD (plain, and clipped to norm 1) on a small MLP at several learning rates: dead units, final loss",
          experiments.dying, rules.dying, plots.dying, "dying"),
    Claim(7, "ReLU activations can blow up (unbounded); sigmoid's cannot",
          "RMS activation per layer, depth 64, init at 1.0x and 1.2x the standard scale",
          experiments.blowup, rules.blowup, plots.blowup, "blowup"),
    Claim(8, "with normalisation (batch norm) a deep sigmoid network trains after all",
          "depth-20 sigmoid MLP with and without per-layer standardisation, SGD loss curves",
          experiments.batchnorm, rules.batchnorm, plots.batchnorm, "batchnorm"),
    Claim(9, "ReLU's backward needs 1 bit per activation, sigmoid's the full output",
          "bytes kept per activation; time of relu_grad_mask against sigmoid_grad (float32)",
          experiments.mask_backward, rules.mask_backward, plots.mask_backward, "mask-backward"),
)
