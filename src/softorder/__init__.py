"""softorder: deep multitask learning through soft layer ordering (Meyerson & Miikkulainen, 2018)."""

from softorder.nn import (
    ORDERINGS,
    MultiTaskNet,
    SoftOrder,
    conv_net,
    dense_net,
    reference_forward,
    shared_encoder_net,
)

__version__ = "0.1.0"

__all__ = [
    "ORDERINGS",
    "MultiTaskNet",
    "SoftOrder",
    "__version__",
    "conv_net",
    "dense_net",
    "reference_forward",
    "shared_encoder_net",
]
