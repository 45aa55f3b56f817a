"""The paper's benchmarks, and your own tasks, as plugins: one module per benchmark (its loader,
net, config YAML and ``adapt`` task source) registered by name.

===========  ===========================================================  ===========
benchmark    tasks                                                        paper
===========  ===========================================================  ===========
mnist        T digit-pair classifiers; frozen random 64-unit encoders     Sec. 4.1
uci          ten UCI datasets; learned 32-unit encoders                   Sec. 4.2
omniglot     50 alphabets; identity encoder, 4 conv 3×3 53 filters        Sec. 4.3
celeba       40 attributes; ResNet-50 + 4 dense layers of 256             Sec. 4.4
synthetic    random related teacher tasks (no download; tests and demos)  —
tabular      your own CSV files, one per task; learned dense encoders     —
imagefolder  your own DIR/<task>/<class>/ images; the Omniglot conv net   —
===========  ===========================================================  ===========

Adding a benchmark: a module with a :class:`Benchmark` subclass decorated with :func:`register`
(and its ``<name>.yaml`` beside it), imported below.
"""

from softorder.benchmarks import celeba, mnist, omniglot, synthetic, uci  # noqa: F401  (they register)

# isort: split
from softorder.benchmarks import imagefolder, tabular  # noqa: F401  (your own tasks, after the paper's)
from softorder.benchmarks.api import (
    benchmark_config,
    build_net,
    check,
    load_config,
    load_tasks,
    train,
    train_trials,
)
from softorder.benchmarks.base import Benchmark, adaptable, get, names, predictable, register

__all__ = [
    "Benchmark",
    "adaptable",
    "benchmark_config",
    "build_net",
    "check",
    "get",
    "load_config",
    "load_tasks",
    "names",
    "predictable",
    "register",
    "train",
    "train_trials",
]
