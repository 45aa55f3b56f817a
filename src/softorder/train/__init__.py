"""Training: the one trainer, batch sources, metrics, checkpoints, run folders and configuration.
(A benchmark's run, with its data and net, is started by ``softorder.benchmarks.train``.)"""

from softorder.train.config import Config, load_config
from softorder.train.metrics import evaluate
from softorder.train.run import Setup, train_run
from softorder.train.trainer import Learner, NetLearner, Trainer, TrainingDiverged

__all__ = [
    "Config",
    "Learner",
    "NetLearner",
    "Setup",
    "Trainer",
    "TrainingDiverged",
    "evaluate",
    "load_config",
    "train_run",
]
