"""The paper's benchmarks as (data, model) builders driven by a :class:`Config`.

=========  ============================================================  ===========
benchmark  tasks                                                         paper
=========  ============================================================  ===========
mnist      T digit-pair classifiers; frozen random 64-unit encoders      Sec. 4.1
uci        ten UCI datasets; learned 32-unit encoders                    Sec. 4.2
omniglot   50 alphabets; identity encoder, 4 conv 3×3 53 filters         Sec. 4.3
synthetic  random related teacher tasks (no download; tests and demos)   —
=========  ============================================================  ===========
"""

from __future__ import annotations

from collections.abc import Callable

from softorder.data.tasks import TaskData
from softorder.nn.network import MultiTaskNet, conv_net, dense_net
from softorder.train.config import Config


def _mnist(cfg: Config) -> list[TaskData]:
    from softorder.data.mnist import load_mnist

    return load_mnist(
        cfg.data_dir,
        num_tasks=cfg.tasks or 10,
        seed=cfg.seed,
        max_train_per_task=cfg.max_train_per_task,
        max_eval_per_task=cfg.max_eval_per_task,
    )


def _uci(cfg: Config) -> list[TaskData]:
    from softorder.data.uci import UCI_DATASETS, load_uci

    names = UCI_DATASETS[: cfg.tasks] if cfg.tasks else UCI_DATASETS
    return load_uci(cfg.data_dir, seed=cfg.seed, fractions=tuple(cfg.fractions), datasets=names)


def _omniglot(cfg: Config) -> list[TaskData]:
    from softorder.data.download import resolve_data_dir
    from softorder.data.omniglot import ALPHABET_SETS, load_omniglot

    return load_omniglot(
        resolve_data_dir(cfg.data_dir),
        num_tasks=cfg.tasks or len(ALPHABET_SETS[cfg.alphabet_set]),
        test_fraction=cfg.test_fraction,
        seed=cfg.seed,
        image_size=cfg.image_size,
        alphabet_set=cfg.alphabet_set,
    )


def _synthetic(cfg: Config) -> list[TaskData]:
    from softorder.data.synthetic import make_synthetic

    return make_synthetic(num_tasks=cfg.tasks or 4, seed=cfg.seed)


LOADERS: dict[str, Callable[[Config], list[TaskData]]] = {
    "synthetic": _synthetic,
    "mnist": _mnist,
    "uci": _uci,
    "omniglot": _omniglot,
}


def load_tasks(cfg: Config) -> list[TaskData]:
    if cfg.benchmark not in LOADERS:
        raise ValueError(f"unknown benchmark {cfg.benchmark!r}; choose one of {', '.join(LOADERS)}")
    return LOADERS[cfg.benchmark](cfg)


def build_net(cfg: Config, tasks: list[TaskData]) -> MultiTaskNet:
    """The model of ``cfg`` for these tasks: images get the conv net, vectors the dense net."""
    classes = [t.num_classes for t in tasks]
    common = dict(
        num_layers=cfg.num_layers,
        depth=cfg.depth,
        ordering=cfg.ordering,
        dropout=cfg.dropout,
        seed=cfg.seed,
        init=cfg.init,
        temperature=cfg.temperature,
        soft_norm=cfg.soft_norm,
    )
    if len(tasks[0].input_shape) == 3:
        return conv_net(
            classes, image_shape=tasks[0].input_shape, channels=cfg.channels, padding=cfg.padding, **common
        )  # type: ignore[arg-type]
    return dense_net(
        [t.in_features for t in tasks],
        classes,
        width=cfg.width,
        encoder=cfg.encoder,
        binary=[t.binary for t in tasks],
        **common,  # type: ignore[arg-type]
    )
