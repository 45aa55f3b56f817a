"""Tasks from the user's own image folders (the ``imagefolder`` benchmark).

The layout is torchvision's ``ImageFolder`` convention one level up: ``DIR/<task>/<class>/<image>``
with ``.png``, ``.jpg`` or ``.jpeg`` images (class folders may hold subfolders; hidden files and
folders are skipped). Tasks and classes are sorted by name; class id ``i`` of a task is its
``i``-th class folder. Every image is converted to ``grayscale`` or ``rgb``, resized to
``image_size`` × ``image_size`` (bilinear, antialiased; the aspect ratio is not kept, as
``torchvision.transforms.Resize((s, s))``) and kept as uint8 ``[C, S, S]`` (``x.float() / 255``
is the network's input, as for Omniglot). A 16-bit grayscale PNG is rescaled to 8 bits first
(65535 is white), not clipped at 255 as PIL's ``convert`` would.

The images are decoded once into a cache in ``$SOFTORDER_CACHE_DIR/imagefolder/`` (never the
data folder), one file per folder, size and colour, with a sidecar holding the SHA-256 of the
tensors and a fingerprint of the files (names, sizes, modification times): an added, removed or
edited image rebuilds it. Splits are stratified per task from the seed as for UCI.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from softorder.atomic import atomic_write
from softorder.data.download import CACHE_DIR_ENV, cache_root
from softorder.data.splits import check_classes, split_rows
from softorder.data.tasks import Encoded, Preprocessing, TaskData

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
COLORS = ("grayscale", "rgb")
CACHE_VERSION = 2  # 2: 16-bit PNGs rescaled (version 1 clipped them)
_LAYOUT = "DIR/<task>/<class>/<image>.png"


def image_files(folder: Path, images: bool = True) -> list[Path]:
    """The images under ``folder`` (any depth), sorted; hidden files and folders skipped.
    ``images=False``: the other files (what reading ``folder`` skips)."""
    return sorted(
        p for p in folder.rglob("*")
        if (p.suffix.lower() in IMAGE_SUFFIXES) == images and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def decode_image(path: Path, size: int, color: str) -> np.ndarray:
    """One image file as uint8 ``[C, size, size]`` (C = 1 grayscale, 3 rgb); an unreadable file is
    an error naming it."""
    try:
        with Image.open(path) as im:
            im = _eight_bits(im).convert("L" if color == "grayscale" else "RGB")
            im = im.resize((size, size), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except Exception as e:  # PIL raises several types for truncated or non-image files
        said = " ".join(str(e).split()) or type(e).__name__
        raise ValueError(f"cannot read the image {path} ({said}); fix or remove the file") from None
    return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))


def _eight_bits(im: Image.Image) -> Image.Image:
    """A 16-bit grayscale image (PNG: PIL mode ``I;16``, or ``I`` in older PIL) as 8-bit ``L``,
    rounded from ``value / 257`` (0..65535 -> 0..255); other images as they are."""
    if not (im.mode == "I" or im.mode.startswith("I;16")):
        return im
    deep = np.clip(np.asarray(im, dtype=np.float64), 0, 65535)
    return Image.fromarray(np.rint(deep / 257.0).astype(np.uint8))


@dataclass
class FolderTask:
    """One task folder: its class names and every image with its class id."""

    name: str
    path: Path
    classes: list[str]
    files: list[Path]
    labels: np.ndarray


def scan_folder(root: Path) -> list[FolderTask]:
    """The task folders of ``root`` (the layout of the module docstring), checked."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"image data folder {root} does not exist; --data-dir must be laid out as {_LAYOUT}"
        )
    tasks, skipped = [], []
    for folder in _subfolders(root):
        classes, files, labels = [], [], []
        for c, class_dir in enumerate(_subfolders(folder)):
            skipped += [f.relative_to(root).as_posix() for f in image_files(class_dir, images=False)]
            found = image_files(class_dir)
            if not found:
                raise ValueError(
                    f"class folder {class_dir} holds no {'/'.join(IMAGE_SUFFIXES)} images; add some or "
                    f"remove the folder"
                )
            classes.append(class_dir.name)
            files += found
            labels += [c] * len(found)
        if not classes:
            raise ValueError(
                f"task folder {folder} has no class folders; lay it out as {folder}/<class>/<image>.png"
            )
        check_classes(folder.name, folder, classes)
        tasks.append(FolderTask(folder.name, folder, classes, files, np.asarray(labels, dtype=np.int64)))
    if not tasks:
        raise FileNotFoundError(f"no task folders in {root}; lay the images out as {_LAYOUT}")
    if skipped:
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        print(f"softorder: warning: {root}: skipped {len(skipped)} file(s) that are not "
              f"{'/'.join(IMAGE_SUFFIXES)} images: {', '.join(skipped[:5])}{more} (convert them to PNG to "
              "train on them)", file=sys.stderr)
    return tasks


@dataclass
class ImagePreprocessing(Preprocessing):
    """A task's image files -> uint8 images of one size and colour; its class names."""

    kind: ClassVar[str] = "imagefolder"
    classes: list[str]
    image_size: int
    color: str
    #: the training images' count and root mean square in [0, 1] (:meth:`training_stand_in`)
    train_images: int = 1
    train_rms: float = 0.0

    @classmethod
    def fit(cls, classes: list[str], image_size: int, color: str, x_train: Tensor) -> ImagePreprocessing:
        """The task's preprocessing, with its training images' statistics."""
        square = x_train.float().div_(255.0).double().pow(2).mean() if x_train.numel() else torch.tensor(0.0)
        return cls(classes, image_size, color, int(x_train.shape[0]), float(square.sqrt()))

    def training_stand_in(self) -> Tensor:
        """``train_images`` constant images at ``train_rms``: the count and mean square of the
        training images (float64, expanded: one image's memory)."""
        one = torch.full((1, *self.input_shape), self.train_rms, dtype=torch.float64)
        return one.expand(self.train_images, *self.input_shape)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1 if self.color == "grayscale" else 3, self.image_size, self.image_size)

    def encode(self, source: Any) -> Encoded:
        """An image file, a folder of images (any depth) or a list of files, as float images in
        [0, 1]. Ids are the file names (relative to a folder)."""
        notes: list[str] = []
        if isinstance(source, str | Path):
            path = Path(source)
            if path.is_dir():
                files = image_files(path)
                if not files:
                    raise FileNotFoundError(f"no {'/'.join(IMAGE_SUFFIXES)} images in {path}")
                ids = [f.relative_to(path).as_posix() for f in files]
                others = [f.relative_to(path).as_posix() for f in image_files(path, images=False)]
                if others:
                    more = f" and {len(others) - 5} more" if len(others) > 5 else ""
                    shown = ", ".join(others[:5]) + more
                    notes.append(f"skipped {len(others)} file(s) that are not {'/'.join(IMAGE_SUFFIXES)} "
                                 f"images: {shown} (convert them to PNG to predict on them)")
            elif path.is_file():
                files, ids = [path], [path.name]
            else:
                raise FileNotFoundError(f"{path} does not exist; give an image file or a folder of images")
        else:
            files = [Path(p) for p in source]
            ids = [str(p) for p in files]
        images = np.stack([decode_image(f, self.image_size, self.color) for f in files])
        return Encoded(ids, torch.from_numpy(images).float().div_(255.0), notes)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "classes": list(self.classes), "image_size": self.image_size,
                "color": self.color, "train_images": self.train_images, "train_rms": self.train_rms}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImagePreprocessing:
        if data.get("kind") != cls.kind:
            raise ValueError(f"not an {cls.kind} preprocessing (kind {data.get('kind')!r})")
        return cls(list(data["classes"]), int(data["image_size"]), str(data["color"]),
                   int(data.get("train_images", 1)), float(data.get("train_rms", 0.0)))


# -- the cache -------------------------------------------------------------------------------------
def _fingerprint(tasks: Sequence[FolderTask], root: Path) -> str:
    h = hashlib.sha256()
    for t in tasks:
        for f in t.files:
            st = f.stat()
            h.update(f"{f.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _sha256(images: dict[str, Tensor]) -> str:
    h = hashlib.sha256()
    for name, x in images.items():
        h.update(f"{name}{tuple(x.shape)}".encode())
        h.update(x.contiguous().numpy().data)
    return h.hexdigest()


def load_images(root: Path, tasks: Sequence[FolderTask], image_size: int, color: str,
                cache_dir: str | Path | None = None) -> dict[str, Tensor]:
    """Every task's images, uint8 ``[N, C, S, S]``, from the cache or decoded (and cached)."""
    cache = Path(cache_dir) if cache_dir is not None else cache_root() / "imagefolder"
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    pt, meta_path = cache / f"{key}_{image_size}_{color}.pt", cache / f"{key}_{image_size}_{color}.json"
    expect = {"version": CACHE_VERSION, "root": str(root.resolve()), "image_size": image_size, "color": color,
              "files": _fingerprint(tasks, root)}
    if pt.is_file() and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            if all(meta.get(k) == v for k, v in expect.items()):
                images = torch.load(pt, map_location="cpu", weights_only=True)
                if _sha256(images) == meta.get("sha256"):
                    return {t.name: images[t.name] for t in tasks}
                warnings.warn(f"image cache {pt} does not match its checksum; rebuilding it", RuntimeWarning,
                              stacklevel=2)
        except Exception as e:  # an unreadable cache only costs the decoding
            warnings.warn(f"image cache {pt} is unreadable ({type(e).__name__}); rebuilding it",
                          RuntimeWarning, stacklevel=2)
    images = {t.name: torch.from_numpy(np.stack([decode_image(f, image_size, color) for f in t.files]))
              for t in tasks}
    try:
        atomic_write(pt, lambda f: torch.save(images, f))
        atomic_write(meta_path, lambda f: f.write(json.dumps({**expect, "sha256": _sha256(images)}).encode()))
    except OSError as e:
        print(f"softorder: cannot write the image cache {pt} ({e.strerror or e}); set {CACHE_DIR_ENV} to a "
              f"writable folder", file=sys.stderr)
    return images


def load_image_folder(data_dir: str | Path, image_size: int = 32, color: str = "grayscale",
                      fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0,
                      num_tasks: int | None = None, cache_dir: str | Path | None = None) -> list[TaskData]:
    """The tasks of an image folder (the first ``num_tasks``; None: all), each split stratified
    from ``seed``; ``x_*`` are uint8 ``[n, C, S, S]``."""
    if color not in COLORS:
        raise ValueError(f"color must be one of {', '.join(COLORS)}, got {color!r}")
    root = Path(data_dir)
    found = scan_folder(root)
    if num_tasks is not None and num_tasks > len(found):
        raise ValueError(f"tasks={num_tasks}, but {root} holds {len(found)} task folder(s); lower tasks")
    found = found[:num_tasks]
    images = load_images(root, found, image_size, color, cache_dir)
    out = []
    for t in found:
        rows = [torch.from_numpy(p) for p in split_rows(t.name, t.path, t.labels, fractions, seed, "images")]
        prep = ImagePreprocessing.fit(list(t.classes), image_size, color, images[t.name][rows[0]])
        out.append(TaskData.from_rows(t.name, len(t.classes), images[t.name], torch.from_numpy(t.labels),
                                      rows, prep))
    return out
