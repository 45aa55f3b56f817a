"""CelebA: 40 binary face-attribute tasks on the same aligned images (paper Sec. 4.4).

Meyerson & Miikkulainen (2018, Sec. 4.4) train every attribute as a separate binary task
on shared inputs, with an ImageNet-pretrained ResNet-50 backbone, so images are fed at
224x224 and normalised with the ImageNet mean and standard deviation.

Official layout under ``<root>/celeba/`` (``root`` may also be that folder itself)::

    img_align_celeba/000001.jpg ...   178x218 aligned & cropped JPEGs
    list_attr_celeba.txt              line 1: count; line 2: 40 names; then
                                      "<file> <40 values of 1 / -1>"
    list_eval_partition.txt           "<file> <0|1|2>" = train / val / test

CelebA cannot be downloaded automatically (see :data:`DOWNLOAD_HELP`). Labels are returned
as int64 in {0, 1} (file value 1 -> 1, -1 -> 0).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

#: The 40 attributes, in file order (line 2 of ``list_attr_celeba.txt`` must match).
CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings",
    "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)
CELEBA_SPLITS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_DIR, ATTR_FILE, PARTITION_FILE = (
    "img_align_celeba", "list_attr_celeba.txt", "list_eval_partition.txt")
_VALUES = frozenset({"1", "-1"})
_TO_TENSOR = v2.PILToTensor()  # PIL RGB -> uint8 [3, H, W]

DOWNLOAD_HELP = (
    "CelebA cannot be downloaded automatically (its terms must be accepted on the official "
    "site): open https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html, and from its Google Drive "
    "/ Baidu links get 'Img/img_align_celeba.zip', 'Anno/list_attr_celeba.txt' and "
    "'Eval/list_eval_partition.txt'; unzip the images so the layout is "
    "<data_dir>/celeba/img_align_celeba/000001.jpg ..., "
    "<data_dir>/celeba/list_attr_celeba.txt and <data_dir>/celeba/list_eval_partition.txt."
)


class CelebAAttributes(NamedTuple):
    """Parsed ``list_attr_celeba.txt``: file names, attribute names, labels int64 [N, 40]."""

    files: list[str]
    names: tuple[str, ...]
    labels: Tensor


def celeba_dir(root: str | os.PathLike[str]) -> Path:
    """The folder holding the CelebA files: ``<root>/celeba`` or ``root`` itself."""
    root = Path(root)
    return root if (root / ATTR_FILE).is_file() else root / "celeba"


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"CelebA {what} not found: {path} is missing. {DOWNLOAD_HELP}")
    return path


def read_celeba_attributes(root: str | os.PathLike[str]) -> CelebAAttributes:
    """Read and validate ``list_attr_celeba.txt`` (Sec. 4.4): 40 labels in {0, 1} per image."""
    path = _require(celeba_dir(root) / ATTR_FILE, "attribute file")
    lines = path.read_text().splitlines()
    if len(lines) < 2:
        raise ValueError(f"{path}: expected a count on line 1 and 40 attribute names on "
                         f"line 2; the file has {len(lines)} line(s) - re-download it")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise ValueError(f"{path} line 1: expected the image count, got {lines[0]!r}") from None
    names = tuple(lines[1].split())
    if names != CELEBA_ATTRIBUTES:
        raise ValueError(f"{path} line 2: expected the 40 official attribute names "
                         f"({', '.join(CELEBA_ATTRIBUTES[:3])}, ...), got {len(names)} "
                         f"names starting {', '.join(names[:3])}")
    files: list[str] = []
    rows: list[list[str]] = []
    for lineno, line in enumerate(lines[2:], start=3):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != 1 + len(CELEBA_ATTRIBUTES):
            raise ValueError(f"{path} line {lineno}: expected a file name and "
                             f"{len(CELEBA_ATTRIBUTES)} values (1 or -1), got "
                             f"{len(tokens)} columns - the file is corrupt, re-download it")
        if not _VALUES.issuperset(tokens[1:]):
            bad = next(t for t in tokens[1:] if t not in _VALUES)
            raise ValueError(f"{path} line {lineno}: value {bad!r} is not 1 or -1 - the file "
                             f"is corrupt, re-download it")
        files.append(tokens[0])
        rows.append(tokens[1:])
    labels = (np.array(rows, dtype=np.str_).reshape(len(rows), len(CELEBA_ATTRIBUTES)) == "1")
    if count != len(files):
        raise ValueError(f"{path}: line 1 says {count} images but {len(files)} rows follow "
                         f"(truncated download?) - re-download it")
    return CelebAAttributes(files, names, torch.from_numpy(labels.astype(np.int64)))


def read_celeba_partition(root: str | os.PathLike[str]) -> dict[str, int]:
    """Read ``list_eval_partition.txt``: file name -> 0 (train), 1 (val) or 2 (test)."""
    path = _require(celeba_dir(root) / PARTITION_FILE, "partition file")
    out: dict[str, int] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != 2 or tokens[1] not in ("0", "1", "2"):
            raise ValueError(f"{path} line {lineno}: expected '<file> <0|1|2>', got "
                             f"{line.strip()!r} - the file is corrupt, re-download it")
        out[tokens[0]] = int(tokens[1])
    return out


class ImageNetNormalize:
    """uint8 [..., 3, H, W] -> float32 ``(x / 255 - mean) / std`` in one fused pass.

    Same result as ``v2.ToDtype(float32, scale=True)`` + ``v2.Normalize`` at ~10x the speed
    (those allocate per step), which matters when one CPU core feeds a GPU.
    """

    def __init__(self, mean: tuple[float, ...] = IMAGENET_MEAN,
                 std: tuple[float, ...] = IMAGENET_STD) -> None:
        self.mean = torch.tensor(mean).view(-1, 1, 1) * 255.0
        self.inv_std = 1.0 / (torch.tensor(std).view(-1, 1, 1) * 255.0)

    def __call__(self, x: Tensor) -> Tensor:
        return x.to(torch.float32).sub_(self.mean).mul_(self.inv_std)


def default_transform(image_size: int = 224) -> Callable[[Tensor], Tensor]:
    """uint8 [3,H,W] -> float32 [3,S,S]: resize short side, center crop, ImageNet-normalise."""
    return v2.Compose([
        v2.Resize(image_size, antialias=True),
        v2.CenterCrop(image_size),
        ImageNetNormalize(),
    ])


class CelebADataset(Dataset[tuple[Tensor, Tensor]]):
    """One official CelebA split as (image, attributes) pairs (paper Sec. 4.4).

    Items are ``(float32 [3, S, S] ImageNet-normalised, int64 [40] in {0, 1})``. ``split``
    is ``train``, ``val``, ``test`` or ``all``. A custom ``transform`` replaces the default
    pipeline and receives the decoded uint8 [3, H, W] RGB tensor.
    """

    def __init__(self, root: str | os.PathLike[str], split: str = "train",
                 image_size: int = 224,
                 transform: Callable[[Tensor], Tensor] | None = None) -> None:
        if split not in (*CELEBA_SPLITS, "all"):
            raise ValueError(f"unknown CelebA split {split!r}; choose train, val, test or all")
        folder = celeba_dir(root)
        self.image_dir = _require(folder / IMAGE_DIR, "image folder")
        attrs = read_celeba_attributes(folder)
        if split == "all":
            keep = np.arange(len(attrs.files))
        else:
            partition = read_celeba_partition(folder)
            missing = [f for f in attrs.files if f not in partition]
            if missing:
                raise ValueError(f"{folder / PARTITION_FILE} has no split for {len(missing)} "
                                 f"image(s) of {ATTR_FILE}, e.g. {missing[0]} - re-download it")
            want = CELEBA_SPLITS[split]
            keep = np.array([i for i, f in enumerate(attrs.files) if partition[f] == want],
                            dtype=np.int64)
        self.split = split
        self.attributes = attrs.names
        # Fixed-width bytes, not a list of str: forked DataLoader workers share it copy-free.
        self.files = np.array([attrs.files[i] for i in keep], dtype=np.bytes_)
        self.labels = attrs.labels[torch.from_numpy(keep)]
        self.transform = transform if transform is not None else default_transform(image_size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        path = self.image_dir / self.files[index].decode()
        if not path.is_file():
            raise FileNotFoundError(f"CelebA image {path} is missing (listed in {ATTR_FILE}); "
                                    f"re-extract img_align_celeba.zip")
        try:
            with Image.open(path) as im:
                image = _TO_TENSOR(im.convert("RGB"))
        except OSError as e:  # PIL's UnidentifiedImageError / truncated-file errors
            raise ValueError(f"cannot decode CelebA image {path}: {e}; re-extract "
                             f"img_align_celeba.zip") from e
        return self.transform(image), self.labels[index]


def celeba_loader(root: str | os.PathLike[str], split: str, batch_size: int,
                  num_workers: int = 2, pin_memory: bool = True, shuffle: bool | None = None,
                  image_size: int = 224, drop_last: bool = False,
                  generator: torch.Generator | None = None) -> DataLoader[tuple[Tensor, Tensor]]:
    """A DataLoader over one CelebA split (Sec. 4.4) with parallel decoding workers.

    ``shuffle`` defaults to True for ``train`` only. Memory is pinned when requested and a
    GPU is present (pinning without CUDA only warns). Workers persist across epochs and run
    one torch thread each; with ``num_workers=0`` the per-image ops use the main process's
    intra-op threads, which is slow on a busy CPU (``torch.set_num_threads(1)`` helps there).
    """
    if batch_size < 1 or num_workers < 0:
        raise ValueError(f"batch_size must be >= 1 and num_workers >= 0, got {batch_size} "
                         f"and {num_workers}")
    dataset = CelebADataset(root, split, image_size=image_size)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=split == "train" if shuffle is None else shuffle,
        num_workers=num_workers,
        pin_memory=pin_memory and torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
        drop_last=drop_last,
        generator=generator,
    )
