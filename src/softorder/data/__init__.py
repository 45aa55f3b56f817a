"""Benchmark data: one module per benchmark, plus verified downloads (``download``)."""

from softorder.data.tasks import TaskData

__all__ = ["TaskData"]
