"""CelebA reader, dataset and loader on a miniature CelebA in the official format (Sec. 4.4)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from celeba_fixture import make_fake_celeba

from softorder.data.celeba import (
    ATTR_FILE,
    CELEBA_ATTRIBUTES,
    IMAGE_DIR,
    PARTITION_FILE,
    CelebADataset,
    celeba_dir,
    celeba_loader,
    read_celeba_attributes,
    read_celeba_partition,
)


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_fake_celeba(root, n=40)
    return root


def test_read_attributes(fake_root: Path) -> None:
    attrs = read_celeba_attributes(fake_root)
    assert attrs.names == CELEBA_ATTRIBUTES and len(attrs.names) == 40
    assert attrs.files[0] == "000001.jpg" and len(attrs.files) == 40
    assert attrs.labels.shape == (40, 40) and attrs.labels.dtype == torch.int64
    assert set(attrs.labels.unique().tolist()) == {0, 1}
    # 1 -> 1 and -1 -> 0, checked against the raw text of the first row
    raw = (fake_root / "celeba" / ATTR_FILE).read_text().splitlines()[2].split()[1:]
    assert attrs.labels[0].tolist() == [int(v == "1") for v in raw]
    # root may also be the celeba folder itself
    assert celeba_dir(fake_root / "celeba") == fake_root / "celeba"
    assert read_celeba_attributes(fake_root / "celeba").files == attrs.files


def test_partition_sizes(fake_root: Path) -> None:
    part = read_celeba_partition(fake_root)
    assert [list(part.values()).count(s) for s in (0, 1, 2)] == [24, 8, 8]
    sizes = {s: len(CelebADataset(fake_root, s, image_size=32)) for s in ("train", "val", "test")}
    assert sizes == {"train": 24, "val": 8, "test": 8}
    assert len(CelebADataset(fake_root, "all", image_size=32)) == 40


def test_dataset_item(fake_root: Path) -> None:
    ds = CelebADataset(fake_root, "val", image_size=64)
    image, attrs = ds[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert attrs.shape == (40,) and attrs.dtype == torch.int64
    assert float(image.min()) > -3.0 and float(image.max()) < 3.0  # ImageNet-normalised
    assert abs(float(image.mean())) < 2.0
    full = CelebADataset(fake_root, "train")  # default: resize 224 + center crop 224
    assert full[3][0].shape == (3, 224, 224)
    raw = CelebADataset(fake_root, "train", transform=lambda x: x)
    assert raw[0][0].dtype == torch.uint8 and raw[0][0].shape == (3, 218, 178)


@pytest.mark.parametrize("workers", [0, 2])
def test_loader(fake_root: Path, workers: int) -> None:
    loader = celeba_loader(fake_root, "train", batch_size=8, num_workers=workers, image_size=32)
    assert loader.persistent_workers == (workers > 0)
    batches = list(loader)
    assert len(batches) == 3
    x, y = batches[0]
    assert x.shape == (8, 3, 32, 32) and y.shape == (8, 40) and y.dtype == torch.int64
    # shuffled train, unshuffled test by default
    test = celeba_loader(fake_root, "test", batch_size=8, num_workers=0, image_size=32)
    ds = test.dataset
    assert isinstance(ds, CelebADataset)
    assert torch.equal(next(iter(test))[1], ds.labels[:8])


def _copy(fake_root: Path, tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(fake_root / "celeba", tmp_path / "celeba")
    return tmp_path


def test_wrong_column_count_names_line(fake_root: Path, tmp_path: Path) -> None:
    root = _copy(fake_root, tmp_path)
    path = root / "celeba" / ATTR_FILE
    lines = path.read_text().splitlines()
    lines[6] = lines[6].rsplit(" ", 1)[0]  # drop one value on file line 7
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"list_attr_celeba\.txt line 7: .*40 values.*41|"
                                         r"list_attr_celeba\.txt line 7:.*got 40 columns"):
        read_celeba_attributes(root)


def test_bad_value_and_bad_partition(fake_root: Path, tmp_path: Path) -> None:
    root = _copy(fake_root, tmp_path)
    path = root / "celeba" / ATTR_FILE
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace("-1", " 0", 1) if "-1" in lines[3] else lines[3].replace(" 1", " 2")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"line 4: value '[02]' is not 1 or -1"):
        read_celeba_attributes(root)
    part = root / "celeba" / PARTITION_FILE
    part.write_text(part.read_text().replace("000005.jpg 0", "000005.jpg 3"))
    with pytest.raises(ValueError, match=r"list_eval_partition\.txt line 5"):
        read_celeba_partition(root)


def test_truncated_count(fake_root: Path, tmp_path: Path) -> None:
    root = _copy(fake_root, tmp_path)
    path = root / "celeba" / ATTR_FILE
    path.write_text("\n".join(path.read_text().splitlines()[:-3]) + "\n")
    with pytest.raises(ValueError, match="line 1 says 40 images but 37 rows"):
        read_celeba_attributes(root)


def test_missing_files(fake_root: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"list_attr_celeba\.txt is missing.*manually|"
                                                r"list_attr_celeba\.txt is missing.*automatically"):
        read_celeba_attributes(tmp_path)
    root = _copy(fake_root, tmp_path / "a")
    (root / "celeba" / PARTITION_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=r"list_eval_partition\.txt is missing.*CelebA"):
        CelebADataset(root, "train")
    root = _copy(fake_root, tmp_path / "b")
    (root / "celeba" / IMAGE_DIR / "000001.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"000001\.jpg is missing"):
        CelebADataset(root, "train")[0]
    import shutil

    shutil.rmtree(root / "celeba" / IMAGE_DIR)
    with pytest.raises(FileNotFoundError, match=r"img_align_celeba is missing.*mmlab"):
        CelebADataset(root, "train")


def test_unreadable_image_names_file(fake_root: Path, tmp_path: Path) -> None:
    root = _copy(fake_root, tmp_path)
    (root / "celeba" / IMAGE_DIR / "000002.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"cannot decode CelebA image .*000002\.jpg"):
        CelebADataset(root, "train")[1]


def test_unknown_split(fake_root: Path) -> None:
    with pytest.raises(ValueError, match="unknown CelebA split 'dev'"):
        CelebADataset(fake_root, "dev")


def test_fused_normalize_matches_torchvision() -> None:
    from torchvision.transforms import v2

    from softorder.data.celeba import IMAGENET_MEAN, IMAGENET_STD, ImageNetNormalize

    x = torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8)
    ref = v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)(v2.ToDtype(torch.float32, scale=True)(x))
    torch.testing.assert_close(ImageNetNormalize()(x), ref)
