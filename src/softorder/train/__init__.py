"""Training: the loop, metrics, checkpoints and run configuration."""

from softorder.train.config import Config, load_config
from softorder.train.loop import Trainer, TrainingDiverged, train
from softorder.train.metrics import evaluate, mean_ci95, paired_test

__all__ = [
    "Config",
    "Trainer",
    "TrainingDiverged",
    "evaluate",
    "load_config",
    "mean_ci95",
    "paired_test",
    "train",
]
