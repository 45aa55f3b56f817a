"""The image-folder loader: DIR/<task>/<class>/*.png|jpg, decoded once into a checked cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from own_data import write_images
from softorder.data import imagefolder
from softorder.data.imagefolder import ImagePreprocessing, load_image_folder, scan_folder


def test_tasks_classes_and_images(tmp_path: Path) -> None:
    root = write_images(tmp_path / "d", per_class=10)
    bars, light = load_image_folder(root, image_size=8, seed=1)
    assert (bars.name, light.name) == ("bars", "light")
    prep = bars.preprocessing
    assert isinstance(prep, ImagePreprocessing)
    assert (prep.classes, prep.image_size, prep.color, prep.train_images) == (["horizontal", "vertical"], 8,
                                                                              "grayscale", 12)
    rms = float(bars.x_train.float().div(255).double().pow(2).mean().sqrt())  # as the net sees them
    assert prep.train_rms == pytest.approx(rms, rel=1e-12)
    assert ImagePreprocessing.from_dict(prep.to_dict()) == prep
    assert bars.x_train.dtype == torch.uint8 and bars.input_shape == (1, 8, 8)
    assert sum(bars.split(s)[0].shape[0] for s in ("train", "val", "test")) == 20
    assert sorted(bars.y_train.tolist()).count(0) == 6  # stratified: 60% of each class
    (rgb,) = load_image_folder(write_images(tmp_path / "rgb", per_class=5, rgb=True), 8, "rgb", num_tasks=1)
    assert rgb.input_shape == (3, 8, 8)


def test_decoded_once_into_a_cache_that_follows_the_files(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_images(tmp_path / "d", per_class=5)
    calls = []
    decode = imagefolder.decode_image
    monkeypatch.setattr(imagefolder, "decode_image", lambda *a: calls.append(a) or decode(*a))
    first = load_image_folder(root, image_size=8, cache_dir=tmp_path / "cache")
    assert len(calls) == 20 and len(list((tmp_path / "cache").glob("*.pt"))) == 1
    again = load_image_folder(root, image_size=8, cache_dir=tmp_path / "cache")
    assert len(calls) == 20 and torch.equal(first[0].x_train, again[0].x_train)  # from the cache
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "bars" / "vertical" / "99.png")
    load_image_folder(root, image_size=8, cache_dir=tmp_path / "cache")
    assert len(calls) == 41  # a new image: decoded again


def test_encode_matches_the_training_images(tmp_path: Path) -> None:
    root = write_images(tmp_path / "d", per_class=5)
    (bars,) = load_image_folder(root, image_size=8, num_tasks=1, fractions=(0.6, 0.2, 0.2))
    prep = bars.preprocessing
    assert isinstance(prep, ImagePreprocessing)
    folder = prep.encode(root / "bars")
    assert folder.ids[0] == "horizontal/00.png" and folder.x.shape == (10, 1, 8, 8)
    files = scan_folder(root)[0].files
    stacked = torch.cat([bars.x_train, bars.x_val, bars.x_test])
    one = prep.encode(files[0])
    assert one.ids == ["00.png"] and float(one.x.max()) <= 1.0
    assert any(torch.equal(one.x[0], row.float() / 255) for row in stacked)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda r: (r / "t" / "only").mkdir(parents=True), "class folder .* holds no .png/.jpg/.jpeg images"),
        (lambda r: (r / "t").mkdir(parents=True), "task folder .* has no class folders"),
        (lambda r: None, "no task folders in"),
    ],
)
def test_bad_layouts_are_one_line_errors(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "d"
    root.mkdir()
    make(root)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_image_folder(root)


def test_one_class_too_few_images_and_an_unreadable_image(tmp_path: Path) -> None:
    root = write_images(tmp_path / "d", per_class=3)
    for f in (root / "bars" / "vertical").iterdir():
        f.unlink()
    (root / "bars" / "vertical").rmdir()
    with pytest.raises(ValueError, match=r"task 'bars' .* has one class \('horizontal'\)"):
        load_image_folder(root)
    root = write_images(tmp_path / "e", per_class=1)
    with pytest.raises(ValueError, match=r"task 'bars' .* has too few images for its train / validation"):
        load_image_folder(root)
    root = write_images(tmp_path / "f", per_class=3)
    (root / "light" / "dark" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read the image .*broken.png .*; fix or remove the file"):
        load_image_folder(root)
    with pytest.raises(FileNotFoundError, match=r"image data folder .* does not exist"):
        load_image_folder(tmp_path / "nowhere")


def test_16_bit_pngs_are_rescaled_not_clipped(tmp_path: Path) -> None:
    """A 16-bit grayscale PNG (PIL mode I;16) reads as its 8-bit image: 65535 is white, in
    training and in predict (one decoder)."""
    root = write_images(tmp_path / "d", per_class=5, size=8)
    gradient = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4  # 0 .. 252
    deep = root / "bars" / "vertical" / "deep.png"
    Image.fromarray(gradient.astype(np.uint16) * 257).save(deep)  # the same image, 16 bits deep
    Image.fromarray(gradient).save(tmp_path / "shallow.png")
    with Image.open(deep) as im:
        assert im.mode == "I;16"
    (bars, _) = load_image_folder(root, image_size=8, cache_dir=tmp_path / "cache")
    stacked = torch.cat([bars.x_train, bars.x_val, bars.x_test])[:, 0]
    assert any(torch.equal(row, torch.from_numpy(gradient)) for row in stacked)  # training reads it so
    assert np.array_equal(imagefolder.decode_image(deep, 8, "rgb"), np.stack([gradient] * 3))
    prep = bars.preprocessing
    assert isinstance(prep, ImagePreprocessing)
    assert torch.equal(prep.encode(deep).x, prep.encode(tmp_path / "shallow.png").x)


def test_files_that_are_not_images_are_named_when_skipped(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = write_images(tmp_path / "d", per_class=10)
    (root / "bars" / "horizontal" / "extra.webp").write_bytes(b"RIFF")
    (root / "bars" / "vertical" / "notes.txt").write_text("x")
    tasks = scan_folder(root)
    assert all(f.suffix in imagefolder.IMAGE_SUFFIXES for t in tasks for f in t.files)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "skipped 2 file(s) that are not .png/.jpg/.jpeg images" in err
    assert "bars/horizontal/extra.webp" in err and "bars/vertical/notes.txt" in err
