"""Your own image tasks: ``--data-dir DIR`` laid out as ``DIR/<task>/<class>/<image>.png|jpg``
(``softorder.data.imagefolder``).

The Omniglot net (Sec. 4.3): an identity encoder zero-padding the 1 (grayscale) or 3 (RGB) image
channels to ``channels``, the shared conv core, a dense softmax decoder per task. The tasks'
preprocessing (class names, image size, colour) goes into each run folder's
``preprocessing.json`` for ``softorder predict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from softorder.benchmarks.base import Benchmark, get, register
from softorder.benchmarks.omniglot import Omniglot, OmniglotModel
from softorder.benchmarks.tabular import data_dir
from softorder.benchmarks.uci import UCIData
from softorder.data.imagefolder import COLORS, ImagePreprocessing, load_image_folder
from softorder.data.tasks import TaskData
from softorder.nn.network import MultiTaskNet
from softorder.train.config import Config, key


@dataclass
class ImageFolderData(UCIData):
    """The UCI splits (``fractions``), the images' size and colour."""

    image_size: int = key(32, "int", ge=1)  # images resized to image_size x image_size
    color: str = key("grayscale", "str", choices=COLORS)  # grayscale (1 channel) or rgb (3)


@register
class ImageFolder(Benchmark):
    name = "imagefolder"
    summary = "your own image tasks: DIR/<task>/<class>/*.png|jpg in --data-dir (docs/your-data.md)"
    model_section = OmniglotModel
    cores = Omniglot.cores  # the image cores (built by Omniglot's plugin)
    data_section = ImageFolderData
    preprocessing = ImagePreprocessing

    def check(self, cfg: Config) -> None:
        super().check(cfg)
        d, m = cfg.data, cfg.model
        assert isinstance(d, ImageFolderData) and isinstance(m, OmniglotModel)
        if d.color == "rgb" and m.channels < 3:
            raise ValueError(
                f"channels={m.channels} cannot hold the 3 channels of rgb images; give channels >= 3"
            )

    def load_tasks(self, cfg: Config) -> list[TaskData]:
        d = cfg.data
        assert isinstance(d, ImageFolderData)
        folder = data_dir(cfg, "laid out as DIR/<task>/<class>/<image>.png")
        return load_image_folder(folder, d.image_size, d.color, d.fractions, cfg.seed, d.tasks)

    def build_net(self, cfg: Config, tasks: Sequence[TaskData]) -> MultiTaskNet:
        """Omniglot's net, built by its plugin (one builder for both: the identity encoder
        zero-padding 1 or 3 -> C channels, the conv core, dense decoders)."""
        return get("omniglot").build_net(cfg, tasks)
