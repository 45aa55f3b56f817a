"""Training: the one trainer, batch sources, metrics, checkpoints, run folders and configuration.
(A benchmark's run, with its data and net, is started by ``softorder.benchmarks.train``; a
``Config`` names a benchmark, so ``import softorder.benchmarks`` first, which registers them.)"""

from softorder.train.config import Config
from softorder.train.config_files import load_config
from softorder.train.metrics import evaluate
from softorder.train.net_learner import NetLearner
from softorder.train.run import Setup, train_run
from softorder.train.trainer import Learner, Trainer, TrainingDiverged

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
