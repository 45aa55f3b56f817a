"""Omniglot (Sec. 4.3): each of the 50 alphabets is a task whose classes are its characters.
Identity encoder (channels zero-padded 1 -> C), shared 3×3 conv layers with max-pool, a dense
softmax decoder per alphabet; the Yang & Hospedales splits at ``test_fraction``."""

from __future__ import annotations

from typing import Any, ClassVar

from softorder.benchmarks.base import Benchmark, register
from softorder.data.download import resolve_data_dir
from softorder.data.omniglot import ALPHABET_SETS, load_omniglot
from softorder.data.tasks import TaskData
from softorder.train.config import Config


@register
class Omniglot(Benchmark):
    name = "omniglot"
    summary = "50 alphabets; identity encoder, 4 conv 3×3 53 filters (Sec. 4.3)"
    data_keys: ClassVar[tuple[str, ...]] = (
        *Benchmark.data_keys, "image_size", "test_fraction", "alphabet_set",
    )
    adaptable = True

    def max_tasks(self, cfg: Config) -> int:
        return len(ALPHABET_SETS[cfg.alphabet_set])

    def load_tasks(self, cfg: Config) -> list[TaskData]:
        return load_omniglot(
            resolve_data_dir(cfg.data_dir),
            num_tasks=cfg.tasks or len(ALPHABET_SETS[cfg.alphabet_set]),
            test_fraction=cfg.test_fraction,
            seed=cfg.seed,
            image_size=cfg.image_size,
            alphabet_set=cfg.alphabet_set,
        )

    def new_tasks(self, source: Config, num_new: int, skip: int = 0, data_dir: str | None = None,
                  seed: int = 0) -> list[TaskData]:
        """For a run on the ``background`` alphabets, the first ``num_new`` ``evaluation``
        alphabets after ``skip`` (the official split; and the other way round); otherwise the
        ``num_new`` alphabets after the run's first ``tasks`` (plus ``skip``) in the fixed task order."""
        other = new_alphabet_set(source)
        pool = len(ALPHABET_SETS[other or "all"])
        used = (0 if other else source.tasks or pool) + skip
        if used + num_new > pool:
            what = f"the {pool} {other} alphabets" if other else f"the {pool} alphabets after the run's"
            raise ValueError(
                f"{what} (+{skip} skipped) leave at most {max(0, pool - used)} new ones; "
                "lower --new-tasks or --skip"
            )
        tasks = load_omniglot(
            resolve_data_dir(data_dir or source.data_dir), num_tasks=used + num_new,
            test_fraction=source.test_fraction, seed=seed, image_size=source.image_size,
            alphabet_set=other or "all",
        )
        return tasks[used:]

    def adapt_overrides(self, source: Config) -> dict[str, Any]:
        """The adapted runs' configs name the alphabet set their tasks came from."""
        other = new_alphabet_set(source)
        return {"alphabet_set": other} if other else {}


def new_alphabet_set(source: Config) -> str | None:
    """The Omniglot alphabet set new tasks come from: the other half of the official split for a
    run on ``background`` or ``evaluation`` alphabets, None for a run on all 50."""
    return {"background": "evaluation", "evaluation": "background"}.get(source.alphabet_set)
