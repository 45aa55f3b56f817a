"""Omniglot (Sec. 4.3): each of the 50 alphabets is a task whose classes are its characters.
Identity encoder (channels zero-padded 1 -> C), shared 3×3 conv layers with max-pool, a dense
softmax decoder per alphabet; the Yang & Hospedales splits at ``test_fraction``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from softorder.benchmarks.base import Benchmark, core_options, register
from softorder.data.download import resolve_data_dir
from softorder.data.omniglot import ALPHABET_SETS, load_omniglot
from softorder.data.tasks import TaskData
from softorder.nn.network import MultiTaskNet, conv_net
from softorder.train.config import Config, DataConfig, ModelConfig, key
from softorder.train.metrics import as_input


@dataclass
class OmniglotModel(ModelConfig):
    channels: int = key(53, "int", ge=1)  # filters of every conv layer (the paper: 53)
    padding: int = key(0, "int", ge=0)  # conv padding (1 keeps 28x28 inputs alive through 4 pools)
    input_norm: str = key("none", "str", choices=("none", "rms"))  # rms: see input_scale()


@dataclass
class OmniglotData(DataConfig):
    image_size: int = key(105, "int", ge=1)  # images resized to this (native 105x105)
    test_fraction: float = key(0.2, "float", gt=0, lt=1)  # drawings per character held out for test
    alphabet_set: str = key("all", "str", choices=tuple(ALPHABET_SETS))  # 50 | 30 background | 20 evaluation


def data(cfg: Config) -> OmniglotData:
    assert isinstance(cfg.data, OmniglotData), f"not an omniglot config: {cfg.benchmark}"
    return cfg.data


@register
class Omniglot(Benchmark):
    name = "omniglot"
    summary = "50 alphabets; identity encoder, 4 conv 3×3 53 filters (Sec. 4.3)"
    model_section = OmniglotModel
    data_section = OmniglotData
    adaptable = True

    def max_tasks(self, cfg: Config) -> int:
        return len(ALPHABET_SETS[data(cfg).alphabet_set])

    def load_tasks(self, cfg: Config) -> list[TaskData]:
        d = data(cfg)
        return load_omniglot(
            resolve_data_dir(d.data_dir),
            num_tasks=d.tasks or len(ALPHABET_SETS[d.alphabet_set]),
            test_fraction=d.test_fraction,
            seed=cfg.seed,
            image_size=d.image_size,
            alphabet_set=d.alphabet_set,
        )

    def build_net(self, cfg: Config, tasks: Sequence[TaskData]) -> MultiTaskNet:
        """The identity encoder zero-padding 1 -> C channels, the conv core, dense decoders."""
        m = cfg.model
        assert isinstance(m, OmniglotModel)
        scale = input_scale(tasks, m.channels) if m.input_norm == "rms" else 1.0
        return conv_net([t.num_classes for t in tasks], image_shape=tasks[0].input_shape, channels=m.channels,
                        padding=m.padding, input_scale=scale, **core_options(cfg))

    def new_tasks(self, source: Config, num_new: int, skip: int = 0, data_dir: str | None = None,
                  seed: int = 0) -> list[TaskData]:
        """For a run on the ``background`` alphabets, the first ``num_new`` ``evaluation``
        alphabets after ``skip`` (the official split; and the other way round); otherwise the
        ``num_new`` alphabets after the run's first ``tasks`` (plus ``skip``) in the fixed task order."""
        other = new_alphabet_set(source)
        pool = len(ALPHABET_SETS[other or "all"])
        used = (0 if other else source.data.tasks or pool) + skip
        if used + num_new > pool:
            what = f"the {pool} {other} alphabets" if other else f"the {pool} alphabets after the run's"
            raise ValueError(
                f"{what} (+{skip} skipped) leave at most {max(0, pool - used)} new ones; "
                "lower --new-tasks or --skip"
            )
        d = data(source)
        tasks = load_omniglot(
            resolve_data_dir(data_dir or d.data_dir), num_tasks=used + num_new,
            test_fraction=d.test_fraction, seed=seed, image_size=d.image_size,
            alphabet_set=other or "all",
        )
        return tasks[used:]

    def adapt_overrides(self, source: Config) -> dict[str, Any]:
        """The adapted runs' configs name the alphabet set their tasks came from."""
        other = new_alphabet_set(source)
        return {"alphabet_set": other} if other else {}


def input_scale(tasks: Sequence[TaskData], channels: int) -> float:
    """The factor that gives the zero-padded input unit mean square over its ``channels``
    channels: ``sqrt(channels / c) / rms`` for ``c`` image channels of RMS ``rms`` (the tasks'
    training images in [0, 1]).

    He initialisation keeps a layer's output scale when its input has unit mean square over all C
    input channels. The identity encoder fills 1 of C channels, and ink images have an RMS of
    about 0.23, so without this the first depth's pre-activations are ~sqrt(C)/0.23 (about 20 for
    C = 24) times smaller than He's, and every depth inherits that: Adam then moves biases by about
    ``lr`` per step, which is large next to the signal, and with 50 tasks pulling on every layer at
    every depth soft ordering's last depth dies within 100 steps (docs/results.md, "Run health")."""
    total, count = 0.0, 0
    for t in tasks:
        x = as_input(t.x_train)
        total += float(x.double().pow(2).sum())
        count += x.numel()
    rms = math.sqrt(total / max(count, 1))
    if rms == 0.0:
        raise ValueError("the training images are all zero: input_norm=rms has nothing to scale")
    return math.sqrt(channels / tasks[0].input_shape[0]) / rms


def new_alphabet_set(source: Config) -> str | None:
    """The Omniglot alphabet set new tasks come from: the other half of the official split for a
    run on ``background`` or ``evaluation`` alphabets, None for a run on all 50."""
    return {"background": "evaluation", "evaluation": "background"}.get(data(source).alphabet_set)
