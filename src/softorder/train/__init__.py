"""Training: the loop, metrics, checkpoints and run configuration."""

from softorder.stats import mean_ci95, paired_test
from softorder.train.config import Config, load_config
from softorder.train.loop import Trainer, TrainingDiverged, train
from softorder.train.metrics import evaluate

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
