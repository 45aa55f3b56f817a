"""softorder: deep multitask learning through soft layer ordering (Meyerson & Miikkulainen, 2018).

``softorder.load_run(RUN_DIR)`` (imported on first use) predicts with a finished run of your own
tasks: see ``softorder.experiments.predict``.
"""

from typing import TYPE_CHECKING, Any

from softorder.nn import (
    ORDERINGS,
    MultiTaskNet,
    SoftOrder,
    conv_net,
    dense_net,
    reference_forward,
    shared_encoder_net,
)

if TYPE_CHECKING:
    from softorder.experiments.predict import load_run

__version__ = "0.1.0"

__all__ = [
    "ORDERINGS",
    "MultiTaskNet",
    "SoftOrder",
    "__version__",
    "conv_net",
    "dense_net",
    "load_run",
    "reference_forward",
    "shared_encoder_net",
]


def __getattr__(name: str) -> Any:
    """``softorder.load_run`` is :func:`softorder.experiments.predict.load_run`, imported on first
    use: ``import softorder`` stays as light as the model code (the import contract in
    pyproject.toml names this one edge from the package to the experiments)."""
    if name == "load_run":
        from softorder.experiments.predict import load_run

        return load_run
    raise AttributeError(f"module 'softorder' has no attribute {name!r}")
