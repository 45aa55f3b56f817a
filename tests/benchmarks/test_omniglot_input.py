"""Omniglot's input_norm=rms: the zero-padded input gets the unit mean square He init assumes."""

from __future__ import annotations

import torch

from softorder.benchmarks import build_net
from softorder.benchmarks.omniglot import input_scale
from softorder.data.tasks import TaskData
from softorder.nn.heads import pad_channels
from softorder.train.config import Config
from softorder.train.metrics import as_input


def _tasks() -> list[TaskData]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for t in range(2):
        x = (torch.rand(12, 1, 16, 16, generator=gen) > 0.8).to(torch.uint8) * 255
        y = torch.arange(12) % 3
        out.append(TaskData(f"a{t}", 3, x, y, x[:3], y[:3], x[:3], y[:3]))
    return out


def test_rms_input_has_unit_mean_square_over_the_padded_channels() -> None:
    tasks = _tasks()
    cfg = Config(benchmark="omniglot", tasks=2, channels=6, padding=1, input_norm="rms", image_size=16)
    net = build_net(cfg, tasks)
    x = torch.cat([as_input(t.x_train) for t in tasks])
    y0 = net.encoders.encode(0, x)  # one channel: the conv core takes it as zero-padded to 6
    assert y0.shape[1] == 1 and net.core.bank.row_features(y0) == 6 * 16 * 16
    padded = pad_channels(y0, 6)
    assert abs(float(padded.pow(2).mean()) - 1.0) < 1e-5
    assert abs(net.encoders.scale - input_scale(tasks, 6)) < 1e-12
    plain = build_net(cfg.replace(input_norm="none"), tasks)
    assert plain.encoders.scale == 1.0 and torch.equal(plain.encoders.encode(0, x)[:, :1], x)
