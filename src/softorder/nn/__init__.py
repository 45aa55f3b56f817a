"""Networks: layer banks (the built-in ones and :class:`ModuleBank` of any blocks), orderings, the
multitask net, the drop-in :class:`SoftOrder` layer, their readable references, and modern blocks
(:mod:`softorder.nn.blocks`)."""

from softorder.nn import blocks
from softorder.nn.banks import ConvBank, DenseBank, LayerBank
from softorder.nn.heads import (
    Decoders,
    DenseEncoders,
    Encoders,
    PadChannels,
    SharedEncoder,
    TaskHeads,
)
from softorder.nn.learned import Anneal, GatedOrdering, RoutedOrdering, pool_rows
from softorder.nn.make import make_ordering
from softorder.nn.module_bank import ModuleBank
from softorder.nn.network import MultiTaskNet, conv_net, dense_net, shared_encoder_net
from softorder.nn.orderings import (
    DEPTH_NORMS,
    ORDERINGS,
    PAPER_ORDERINGS,
    Ordering,
    ParallelOrdering,
    PermutedOrdering,
    Rows,
    SingleTaskOrdering,
    SoftOrdering,
    rms_normalise,
    soft_order_step,
)
from softorder.nn.reference import reference_forward, reference_soft_order
from softorder.nn.soft_order import SoftOrder

__all__ = [
    "DEPTH_NORMS",
    "ORDERINGS",
    "PAPER_ORDERINGS",
    "Anneal",
    "ConvBank",
    "Decoders",
    "DenseBank",
    "DenseEncoders",
    "Encoders",
    "GatedOrdering",
    "LayerBank",
    "ModuleBank",
    "MultiTaskNet",
    "Ordering",
    "PadChannels",
    "ParallelOrdering",
    "PermutedOrdering",
    "RoutedOrdering",
    "Rows",
    "SharedEncoder",
    "SingleTaskOrdering",
    "SoftOrder",
    "SoftOrdering",
    "TaskHeads",
    "blocks",
    "conv_net",
    "dense_net",
    "make_ordering",
    "pool_rows",
    "reference_forward",
    "reference_soft_order",
    "rms_normalise",
    "shared_encoder_net",
    "soft_order_step",
]
