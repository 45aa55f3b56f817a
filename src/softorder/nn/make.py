"""Every ordering by name: what the network builders and the config's ``ordering`` key use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from softorder.nn.banks import LayerBank
from softorder.nn.learned import Anneal, GatedOrdering, RoutedOrdering
from softorder.nn.orderings import (
    ORDERINGS,
    Ordering,
    ParallelOrdering,
    PermutedOrdering,
    SingleTaskOrdering,
    SoftOrdering,
)

ORDERING_CLASSES: dict[str, type[Ordering]] = {
    cls.name: cls
    for cls in (SingleTaskOrdering, ParallelOrdering, PermutedOrdering, SoftOrdering, GatedOrdering,
                RoutedOrdering)
}


def ordering_class(name: str) -> type[Ordering]:
    """The class of the ordering a config's ``ordering`` key names."""
    if name not in ORDERING_CLASSES:
        raise ValueError(f"unknown ordering {name!r}; choose one of {', '.join(ORDERINGS)}")
    return ORDERING_CLASSES[name]


def make_ordering(
    name: str,
    bank_factory: Callable[[int], LayerBank],
    num_tasks: int,
    num_layers: int,
    depth: int | None = None,
    seed: int = 0,
    temperature: float = 1.0,
    norm: str = "none",
    *,
    channels_last: bool = False,
    orders_on_device: bool = False,
    depth_norm: str = "none",
    gate_hidden: int = 0,
    gate_features: int | None = None,
    anneal: Anneal | None = None,
) -> Ordering:
    """Build one of :data:`~softorder.nn.orderings.ORDERINGS` by name: the four of Sec. 3 and the
    learned ``gated`` and ``routed`` (:mod:`softorder.nn.learned`); ``bank_factory(n)`` must return
    a bank of ``n`` layers. ``orders_on_device`` applies to the hard orderings (the learned ones read
    nothing from the host: vmap-safe as they are); ``depth_norm`` to every ordering; ``temperature``
    and ``norm`` to soft and gated; ``gate_hidden`` and ``gate_features`` to gated, ``anneal`` to routed."""
    ordering_class(name)  # an unknown name: the one error that lists them
    common: dict[str, Any] = {"channels_last": channels_last, "depth_norm": depth_norm}
    if name == "soft":
        return SoftOrdering(bank_factory(num_layers), num_tasks, depth, temperature, norm, **common)
    if name == "gated":
        return GatedOrdering(bank_factory(num_layers), num_tasks, depth, temperature, norm,
                             gate_hidden=gate_hidden, gate_features=gate_features, **common)
    if name == "routed":
        if temperature != 1.0 or norm != "none":
            raise ValueError(
                f"routed ordering takes no temperature or norm (got temperature={temperature}, "
                f"norm={norm!r}): its Gumbel-softmax temperature is annealed (anneal=Anneal(start, end, "
                "steps); config keys route_tau_start, route_tau_end, route_anneal)"
            )
        return RoutedOrdering(bank_factory(num_layers), num_tasks, depth, anneal, **common)
    hard = {**common, "orders_on_device": orders_on_device}
    if name == "parallel":
        return ParallelOrdering(bank_factory(num_layers), num_tasks, depth, **hard)
    if name == "permuted":
        return PermutedOrdering(bank_factory(num_layers), num_tasks, depth, seed=seed, **hard)
    return SingleTaskOrdering(bank_factory(num_tasks * num_layers), num_tasks, depth, **hard)  # "single"
