"""The training step as one CUDA graph (``cuda_graphs: true``): captured once, replayed per batch.

A small multitask step on a GPU is bound by kernel launches, not arithmetic: captured whole
(forward, the losses, backward and ``Adam(capturable=True)``) in one ``torch.cuda.CUDAGraph`` it
is launched as one unit. What makes the step capturable is tested on the CPU
(``tests/nn/test_no_host_work.py``: no tensor made from host values, no copy, no read-back per
step once a batch layout is known); the replay itself needs a GPU (``tests/train/test_graphs.py``,
marked ``cuda``).

The first ``warm_up_steps`` steps run eagerly on a side stream (real training steps on real
batches, as CUDA graphs ask: lazy initialisation happens there), the next step is captured on
copies of its batch and replayed; every later batch is copied into those static inputs and the
graph replayed. The learning rates are baked into the graph, so the capture waits for the end of
``lr_warmup``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

#: Eager steps before the capture (at least; more while the learning rate still warms up).
WARM_UP_STEPS = 3

Batch = list[Tensor] | Tensor  # one batch per task, or one batch every task reads
Step = Callable[[Batch, list[Tensor]], Tensor]


def _flat(xs: Batch) -> list[Tensor]:
    return [xs] if isinstance(xs, Tensor) else list(xs)


def _clone(xs: Batch) -> Batch:
    return xs.clone() if isinstance(xs, Tensor) else [x.clone() for x in xs]


class GraphedStep:
    """``step(xs, ys) -> losses`` (forward, backward and optimiser step) run eagerly for
    ``warm_up_steps`` calls, each after ``zero_grad()``, then captured with the gradients unset (so
    that the captured backward writes them afresh at every replay) and replayed. Returns the step's
    losses (after the capture, the graph's static output: read or clone it before the next call)."""

    def __init__(self, step: Step, zero_grad: Callable[[], None], warm_up_steps: int = WARM_UP_STEPS,
                 device: torch.device | None = None) -> None:
        """``device``: the CUDA device the step runs on (default: the current one); streams, the
        capture and the replays are made on it."""
        self.step, self.zero_grad, self.warm_up_steps, self.calls = step, zero_grad, warm_up_steps, 0
        self.device = device
        self.graph: torch.cuda.CUDAGraph | None = None
        self._xs: Batch = []
        self._ys: list[Tensor] = []
        self._losses: Tensor | None = None

    def __call__(self, xs: Batch, ys: list[Tensor]) -> Tensor:
        with torch.cuda.device(self.device):
            return self._call(xs, ys)

    def _call(self, xs: Batch, ys: list[Tensor]) -> Tensor:
        self.calls += 1
        if self.graph is None and self.calls <= self.warm_up_steps:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.zero_grad()
                losses = self.step(xs, ys)
            torch.cuda.current_stream().wait_stream(side)
            return losses
        if self.graph is None:
            self._capture(xs, ys)
        else:
            self._check_layout(xs, ys)
            for static, new in zip([*_flat(self._xs), *self._ys], [*_flat(xs), *ys]):
                static.copy_(new, non_blocking=True)
        assert self.graph is not None and self._losses is not None
        self.graph.replay()
        return self._losses

    def _capture(self, xs: Batch, ys: list[Tensor]) -> None:
        self._xs, self._ys = _clone(xs), [y.clone() for y in ys]
        torch.cuda.synchronize()
        self.zero_grad()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._losses = self.step(self._xs, self._ys)
        self.graph = graph

    def _check_layout(self, xs: Batch, ys: list[Tensor]) -> None:
        got = [(t.shape, t.dtype) for t in [*_flat(xs), *ys]]
        want = [(t.shape, t.dtype) for t in [*_flat(self._xs), *self._ys]]
        if got != want:
            raise ValueError(
                "cuda_graphs: a batch of another shape than the captured one "
                f"({[tuple(s) for s, _ in got]} vs {[tuple(s) for s, _ in want]}); CUDA graphs need "
                "every training batch the same size: drop --set cuda_graphs=true"
            )
