"""Small synthetic multitask data that needs no download: for tests, demos and smoke runs.

Each task labels Gaussian inputs with its own random two-layer teacher network; teachers share a
common first layer, so the tasks are related and sharing can help.
"""

from __future__ import annotations

import torch

from softorder.data.tasks import TaskData


def make_synthetic(
    num_tasks: int = 4,
    in_features: int = 16,
    num_classes: int = 3,
    samples: tuple[int, int, int] = (400, 200, 200),
    seed: int = 0,
) -> list[TaskData]:
    """``num_tasks`` classification tasks with ``samples`` (train, val, test) rows each."""
    if num_tasks < 1 or in_features < 1 or num_classes < 2:
        raise ValueError(
            f"need num_tasks >= 1, in_features >= 1 and num_classes >= 2; got {num_tasks}, "
            f"{in_features}, {num_classes}"
        )
    gen = torch.Generator().manual_seed(seed)
    shared = torch.randn(in_features, 32, generator=gen) / in_features**0.5
    tasks = []
    for t in range(num_tasks):
        head = torch.randn(32, num_classes, generator=gen)
        mix = torch.randn(in_features, 32, generator=gen) / in_features**0.5
        n = sum(samples)
        x = torch.randn(n, in_features, generator=gen)
        y = (torch.relu(x @ (shared + 0.5 * mix)) @ head).argmax(1)
        a, b = samples[0], samples[0] + samples[1]
        tasks.append(TaskData(f"synthetic{t}", num_classes, x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:]))
    return tasks
