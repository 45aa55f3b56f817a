"""Run configuration: one flat, typed record loaded from YAML, with ``--set key=value`` overrides.

Unknown keys are an error that names the key and lists the valid ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from softorder.nn.orderings import ORDERINGS


@dataclass
class Config:
    """Every setting of a run. Benchmark-specific keys are ignored by other benchmarks."""

    # what to learn
    benchmark: str = "mnist"
    data_dir: str | None = None
    tasks: int | None = None  # number of tasks (mnist, omniglot); None = the benchmark's default
    seed: int = 0
    # model (Sec. 3.3)
    ordering: str = "soft"
    width: int = 64
    num_layers: int = 4
    depth: int | None = None  # soft ordering only; None = num_layers
    encoder: str = "learned"  # learned | frozen
    dropout: float = 0.5
    init: str = "torch"  # torch | he
    temperature: float = 1.0
    soft_norm: str = "none"  # none | l2: rescale the soft mixture (see SoftOrdering.weights)
    # optimisation
    steps: int = 2000
    batch_size: int = 32  # per task and process: torchrun with N processes draws N × this per task
    lr: float = 1e-3
    s_lr: float | None = None  # learning rate of S; None = lr
    weight_decay: float = 0.0
    eval_every: int = 100
    checkpoint_every: int = 500
    select: str = "val_loss"  # val_loss | val_error: which validation metric picks the kept weights
    device: str = "cpu"
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; fp16 adds a GradScaler)
    compile: bool = False  # torch.compile the model for the training step
    channels_last: bool = False  # conv nets: NHWC activations in the core (for CUDA tensor cores)
    threads: int | None = None
    # data
    fractions: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2])  # uci train/val/test
    max_train_per_task: int | None = None
    max_eval_per_task: int | None = None
    image_size: int = 105  # omniglot
    test_fraction: float = 0.2  # omniglot
    alphabet_set: str = "all"  # omniglot: all 50 | background 30 | evaluation 20 (official split)
    channels: int = 53  # omniglot conv width
    padding: int = 0  # omniglot conv padding
    # celeba (Sec. 4.4); image_size above is its input size too (224 for ResNet-50), and
    # max_train_per_task / max_eval_per_task cap its train / val and test images
    num_workers: int = 2  # DataLoader processes decoding JPEGs (0: decode in the training process)
    backbone_weights: str | None = None  # local torchvision ResNet-50 ImageNet state_dict (.pth)
    pretrained_download: bool = False  # download torchvision's IMAGENET1K_V2 weights (needs network)
    small_backbone: bool = False  # a tiny conv trunk instead of ResNet-50 (tests, CPU smoke runs)

    def __post_init__(self) -> None:
        if self.ordering not in ORDERINGS:
            raise ValueError(f"unknown ordering {self.ordering!r}; choose one of {', '.join(ORDERINGS)}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"unknown precision {self.precision!r}; choose fp32, bf16 or fp16")
        if self.select not in ("val_loss", "val_error"):
            raise ValueError(f"unknown select {self.select!r}; choose val_loss or val_error")
        if self.alphabet_set not in ("all", "background", "evaluation"):
            raise ValueError(
                f"unknown alphabet_set {self.alphabet_set!r}; choose all, background or evaluation"
            )
        for key in ("steps", "batch_size", "eval_every", "checkpoint_every", "width", "num_layers"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be at least 1, got {getattr(self, key)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> Config:
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - valid)
        if unknown:
            raise ValueError(
                f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(valid))}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> Config:
        return Config.from_dict({**self.to_dict(), **changes})


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config and apply ``key=value`` overrides (values parsed as YAML)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of key: value, got {type(data).__name__}")
    data.update(parse_overrides(overrides or []))
    return Config.from_dict(data, source=str(path))


def parse_overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def builtin_config(benchmark: str) -> Path:
    """Path of the config shipped for a benchmark (``src/softorder/experiments/<name>.yaml``)."""
    path = Path(__file__).resolve().parents[1] / "experiments" / f"{benchmark}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in path.parent.glob("*.yaml") if not p.stem.endswith("-quick"))
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(names)}")
    return path
