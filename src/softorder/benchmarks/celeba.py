"""CelebA (Sec. 4.4): one image batch per step, 40 binary attribute tasks predicted on it.

A ResNet-50 trunk (ImageNet weights from a local file, or downloaded when allowed) shared by all
tasks, the ordered core of 4 dense layers of 256, one logistic decoder per attribute. The loss is
the sum over attributes of each attribute's mean binary cross-entropy; the official train / val /
test partition. Images stream from disk through DataLoader workers (``num_workers``), so a run
does not hold the data in memory and the trials of ``compare`` run one by one.

Resume restores the model, optimiser, grad scaler, step, best weights and RNG states exactly, but
not the data order inside an epoch: a resumed run restarts its interrupted epoch from the beginning
(:class:`~softorder.train.sources.LoaderBatches`). Training runs in one process (no torchrun yet).

``softorder.data.celeba`` (torchvision) is imported only when a CelebA run is made: importing
torchvision takes seconds, and no other benchmark needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader, Subset

from softorder.benchmarks.base import Benchmark, core_bank, core_options, register
from softorder.data.download import resolve_data_dir
from softorder.data.tasks import TaskData
from softorder.nn.backbones import NUM_ATTRIBUTES, WEIGHTS_HELP, celeba_net
from softorder.nn.network import MultiTaskNet
from softorder.train import distributed, health
from softorder.train.config import Config, DataConfig, ModelConfig, key
from softorder.train.run import Setup
from softorder.train.sources import LoaderBatches, LoaderEvaluator


@dataclass
class CelebAModel(ModelConfig):
    backbone_weights: str | None = key(None, "str", optional=True)  # local ResNet-50 state_dict
    pretrained_download: bool = key(False, "bool")  # download IMAGENET1K_V2 weights (needs network)
    small_backbone: bool = key(False, "bool")  # a tiny conv trunk instead of ResNet-50 (tests)


@dataclass
class CelebAData(DataConfig):
    image_size: int = key(224, "int", ge=1)  # the trunk's input size (short side resized, centre crop)
    max_train_images: int | None = key(None, "int", optional=True, ge=1)  # the first N train images
    max_eval_images: int | None = key(None, "int", optional=True, ge=1)  # the first N val / test images
    num_workers: int = key(2, "int", ge=0)  # DataLoader processes decoding JPEGs (0: in-process)

    renamed: ClassVar[dict[str, str]] = {  # softorder 0.1 counted them per task
        "max_train_per_task": "max_train_images", "max_eval_per_task": "max_eval_images",
    }


def sections(cfg: Config) -> tuple[CelebAModel, CelebAData]:
    assert isinstance(cfg.model, CelebAModel) and isinstance(cfg.data, CelebAData), cfg.benchmark
    return cfg.model, cfg.data


@register
class CelebA(Benchmark):
    name = "celeba"
    summary = "40 attributes of one face image; ResNet-50 + 4 dense layers of 256 (Sec. 4.4)"
    model_section = CelebAModel
    data_section = CelebAData
    in_memory = False
    data_kind = "the trunk gives each image one feature vector"

    def max_tasks(self, cfg: Config) -> int:
        return NUM_ATTRIBUTES

    def check_run(self, cfg: Config, resume: bool) -> None:
        self.check(cfg)
        if distributed.env_world_size() > 1:
            raise ValueError("celeba trains in one process; torchrun with several processes is not supported "
                             "yet: run `softorder train celeba ...` without torchrun")
        m, _ = sections(cfg)
        weights = Path(m.backbone_weights).expanduser() if m.backbone_weights else None
        if weights is not None and not resume and not weights.is_file():  # fail before loading any data
            raise FileNotFoundError(f"backbone weights file {weights} does not exist; {WEIGHTS_HELP}")

    def load_tasks(self, cfg: Config) -> list[TaskData]:
        raise ValueError("celeba streams its images from disk; it has no in-memory tasks")

    def build_net(
        self, cfg: Config, tasks: Sequence[TaskData] = (), load_weights: bool = True
    ) -> MultiTaskNet:
        """:func:`celeba_net` of ``cfg`` (``load_weights=False``: skip the ImageNet weights, e.g.
        when a checkpoint will overwrite them)."""
        m, d = sections(cfg)
        core = core_options(cfg)
        weights = m.backbone_weights if load_weights else None
        return celeba_net(
            core.pop("ordering"), m.width, core.pop("num_layers"), weights,
            num_tasks=d.tasks or NUM_ATTRIBUTES, small_backbone=m.small_backbone,
            pretrained_download=m.pretrained_download and load_weights, bank=core_bank(cfg, m.width), **core,
        )

    def setup(self, cfg: Config, tasks: Sequence[TaskData] | None = None, net: MultiTaskNet | None = None,
              resume: bool = False) -> Setup:
        from softorder.data.celeba import CELEBA_ATTRIBUTES

        if net is None:
            torch.manual_seed(cfg.seed)
            net = self.build_net(cfg, load_weights=not resume)
        run = cfg.run
        if run.channels_last:  # the conv backbone on NHWC activations (tensor cores)
            net.encoders.to(memory_format=torch.channels_last)
        loaders = celeba_loaders(cfg, distributed.select_device(run.device))
        source = LoaderBatches(loaders["train"], cfg.seed, net.num_tasks, run.channels_last)
        scored = {s: loaders[s] for s in ("val", "test")}
        evaluator = LoaderEvaluator(scored, run.precision, run.channels_last)
        return Setup(net, source, evaluator, list(CELEBA_ATTRIBUTES[: net.num_tasks]),
                     probe=celeba_probe(loaders, net.num_tasks))


def celeba_probe(loaders: dict[str, DataLoader[Any]], num_tasks: int) -> health.Probe:
    """Run health's probe: the first validation images, which every attribute reads, and each
    attribute's chance loss from the training labels."""
    val, train = loaders["val"].dataset, loaders["train"].dataset
    n = min(health.PROBE_ROWS, len(val))  # type: ignore[arg-type]
    images = torch.stack([val[i][0] for i in range(n)])
    return health.Probe.shared(images, _labels(train)[:, :num_tasks])


def _labels(dataset: Any) -> torch.Tensor:
    """The ``[N, 40]`` labels of a CelebA dataset or of a Subset of one."""
    if isinstance(dataset, Subset):
        return _labels(dataset.dataset)[torch.as_tensor(list(dataset.indices))]
    return dataset.labels  # type: ignore[no-any-return]


def celeba_loaders(cfg: Config, device: torch.device) -> dict[str, DataLoader[Any]]:
    """Train (shuffled, seeded, drop_last) / val / test loaders of the official CelebA splits.

    ``max_train_images`` and ``max_eval_images`` keep the first N images of the train and of
    the val / test splits (CPU smoke runs); None keeps every image.
    """
    from softorder.data.celeba import celeba_loader

    _, d = sections(cfg)
    batch, workers = cfg.optim.batch_size, d.num_workers
    pin = device.type == "cuda"
    common = dict(num_workers=workers, pin_memory=pin, image_size=d.image_size)
    loaders: dict[str, DataLoader[Any]] = {}
    limits = {"train": d.max_train_images, "val": d.max_eval_images, "test": d.max_eval_images}
    for split, limit in limits.items():
        train = split == "train"
        gen = torch.Generator().manual_seed(cfg.seed) if train else None
        loader = celeba_loader(resolve_data_dir(d.data_dir), split, batch, shuffle=train,
                               drop_last=train, generator=gen, **common)  # type: ignore[arg-type]
        n = len(loader.dataset)  # type: ignore[arg-type]
        if limit is not None and limit < n:
            loader = DataLoader(Subset(loader.dataset, range(limit)), batch_size=batch,
                                shuffle=train, num_workers=workers, pin_memory=loader.pin_memory,
                                persistent_workers=workers > 0, drop_last=train, generator=gen)
            n = limit
        if n == 0 or (train and n < batch):
            raise ValueError(f"CelebA {split} split has {n} image(s) but batch_size is {batch}: "
                             f"lower batch_size (or raise max_train_images / max_eval_images)")
        loaders[split] = loader
    return loaders
