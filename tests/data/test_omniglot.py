"""Omniglot loader (paper Sec. 4.3): real data at 28x28 plus a tiny synthetic layout."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from softorder.data import omniglot
from softorder.data.omniglot import (
    ALPHABET_SETS,
    OMNIGLOT_ALPHABETS,
    OmniglotImages,
    default_cache_dir,
    load_omniglot,
    load_omniglot_images,
    omniglot_task_order,
    split_alphabet,
    split_counts,
    to_float,
)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SIZE = 28


def _has_real() -> bool:
    root = DATA / "omniglot"
    return all((root / s).is_dir() or (root / f"{s}.zip").is_file() for s in omniglot.SETS)


real = pytest.mark.skipif(not _has_real(), reason=f"Omniglot not present under {DATA}")


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not _has_real():
        pytest.skip(f"Omniglot not present under {DATA}")
    cache = tmp_path_factory.mktemp("omniglot_cache")
    load_omniglot_images(DATA, SIZE, cache_dir=cache)  # the one full decode of this run
    return cache


# --------------------------------------------------------------------------- real data
@real
def test_real_counts(real_cache: Path) -> None:
    data = load_omniglot_images(DATA, SIZE, cache_dir=real_cache)
    assert data.images.shape == (32460, 1, SIZE, SIZE) and data.images.dtype == torch.uint8
    assert sorted(data.alphabets) == data.alphabets and set(data.alphabets) == set(
        OMNIGLOT_ALPHABETS)
    per_alpha = {name: int(data.character[data.alphabet == a].max()) + 1
                 for a, name in enumerate(data.alphabets)}
    assert per_alpha == OMNIGLOT_ALPHABETS and sum(per_alpha.values()) == 1623
    assert min(per_alpha.values()) == 14 and max(per_alpha.values()) == 55
    assert torch.equal(torch.bincount(data.drawer), torch.full((20,), 1623))
    # ink bright: mostly-zero background, strokes near 255
    assert float(to_float(data.images).mean()) < 0.2 and int(data.images.max()) == 255


@real
@pytest.mark.parametrize(("test_fraction", "n_test"), [(0.1, 2), (0.2, 4)])
def test_real_split_sizes(real_cache: Path, test_fraction: float, n_test: int) -> None:
    tasks = load_omniglot(DATA, test_fraction=test_fraction, image_size=SIZE,
                          cache_dir=real_cache)
    assert len(tasks) == 50
    for task in tasks:
        assert 14 <= task.num_classes <= 55 and task.num_classes == OMNIGLOT_ALPHABETS[task.name]
        for split, n in (("train", 20 - n_test - 2), ("val", 2), ("test", n_test)):
            x, y = task.split(split)
            assert x.dtype == torch.uint8 and x.shape[1:] == (1, SIZE, SIZE)
            assert torch.equal(torch.bincount(y, minlength=task.num_classes),
                               torch.full((task.num_classes,), n))


@real
def test_real_splits_disjoint_and_seeded(real_cache: Path) -> None:
    data = load_omniglot_images(DATA, SIZE, cache_dir=real_cache)
    for a in (0, 17, 49):
        s = split_alphabet(data, a, seed=3)
        rows = torch.cat([s["train"], s["val"], s["test"]])
        assert rows.unique().numel() == rows.numel() == int((data.alphabet == a).sum())
        again, other = split_alphabet(data, a, seed=3), split_alphabet(data, a, seed=4)
        assert all(torch.equal(s[k], again[k]) for k in s)
        assert not torch.equal(s["test"], other["test"])
    t0 = load_omniglot(DATA, num_tasks=3, seed=0, image_size=SIZE, cache_dir=real_cache)
    t0b = load_omniglot(DATA, num_tasks=3, seed=0, image_size=SIZE, cache_dir=real_cache)
    assert all(torch.equal(a.x_test, b.x_test) for a, b in zip(t0, t0b))


@real
def test_real_task_order_fixed_across_seeds(real_cache: Path) -> None:
    full = load_omniglot(DATA, seed=0, image_size=SIZE, cache_dir=real_cache)
    names = [t.name for t in full]
    assert sorted(names) == sorted(OMNIGLOT_ALPHABETS)
    assert names != sorted(names)  # a random permutation, not alphabetical
    assert omniglot_task_order(list(OMNIGLOT_ALPHABETS), 0) == names
    assert omniglot_task_order(list(OMNIGLOT_ALPHABETS), 1) != names
    other_seed = load_omniglot(DATA, num_tasks=5, seed=1, image_size=SIZE, cache_dir=real_cache)
    assert [t.name for t in other_seed] == names[:5]  # the trial seed leaves the order alone
    few = load_omniglot(DATA, num_tasks=5, seed=0, image_size=SIZE, cache_dir=real_cache)
    assert all(torch.equal(a.x_train, b.x_train) for a, b in zip(few, full))


@real
def test_real_background_and_evaluation_sets(real_cache: Path) -> None:
    """The official split: 30 background alphabets (images_background) and 20 evaluation ones."""
    bg = load_omniglot(DATA, num_tasks=30, image_size=SIZE, cache_dir=real_cache, alphabet_set="background")
    ev = load_omniglot(DATA, num_tasks=20, image_size=SIZE, cache_dir=real_cache, alphabet_set="evaluation")
    assert sorted(t.name for t in bg) == list(ALPHABET_SETS["background"])
    assert sorted(t.name for t in ev) == list(ALPHABET_SETS["evaluation"])
    assert "Latin" in ALPHABET_SETS["background"] and "Tengwar" in ALPHABET_SETS["evaluation"]
    full = {t.name: t for t in load_omniglot(DATA, image_size=SIZE, cache_dir=real_cache)}
    assert all(torch.equal(t.x_test, full[t.name].x_test) for t in ev)  # the same per-alphabet split
    with pytest.raises(ValueError, match="unknown alphabet set 'train'"):
        load_omniglot(DATA, image_size=SIZE, cache_dir=real_cache, alphabet_set="train")
    with pytest.raises(ValueError, match="between 1 and 20"):
        load_omniglot(DATA, num_tasks=21, image_size=SIZE, cache_dir=real_cache, alphabet_set="evaluation")


@real
def test_real_cache_reused(real_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decode(*args: object, **kwargs: object) -> OmniglotImages:
        raise AssertionError("cache was not reused")

    monkeypatch.setattr(omniglot, "decode_omniglot", no_decode)
    data = load_omniglot_images(DATA, SIZE, cache_dir=real_cache)
    meta = json.loads((real_cache / f"omniglot_{SIZE}.json").read_text())
    assert meta["sha256"] == data.sha256() and meta["num_images"] == 32460
    assert not list(real_cache.glob(".*tmp"))  # no temp files left behind


def test_missing_data_message(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"images_background.*images_evaluation.*"
                                                r"softorder data download omniglot"):
        load_omniglot(tmp_path, cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------------- synthetic layout
LAYOUT = {"images_background": {"Alpha": 2, "Beta": 3}, "images_evaluation": {"Gamma": 2}}


def _write_layout(root: Path, zipped: set[str]) -> Path:
    """Official layout under ``root/omniglot``; each stroke is a box at (character, drawer)."""
    base = root / "omniglot"
    char_id = 0
    for set_name, alphabets in LAYOUT.items():
        for alpha, n_chars in alphabets.items():
            for c in range(1, n_chars + 1):
                char_id += 1
                folder = base / set_name / alpha / f"character{c:02d}"
                folder.mkdir(parents=True)
                for d in range(1, 21):
                    px = np.ones((105, 105), dtype=bool)  # white background
                    px[5 * c:5 * c + 10, 5 * d:5 * d + 4] = False  # black ink
                    Image.fromarray(px).save(folder / f"{char_id:04d}_{d:02d}.png")
        if set_name in zipped:
            with zipfile.ZipFile(base / f"{set_name}.zip", "w") as zf:
                for path in sorted((base / set_name).rglob("*")):
                    zf.write(path, path.relative_to(base).as_posix())
            shutil.rmtree(base / set_name)
    return root


@pytest.fixture
def synth(tmp_path: Path) -> Path:
    return _write_layout(tmp_path / "data", zipped=set())


def test_synthetic_folder_and_zip_agree(tmp_path: Path) -> None:
    folder = load_omniglot_images(_write_layout(tmp_path / "f", set()), num_workers=1, verify=False)
    zipped = load_omniglot_images(_write_layout(tmp_path / "z", set(LAYOUT)), num_workers=2,
                                  verify=False)
    mixed = load_omniglot_images(_write_layout(tmp_path / "m", {"images_evaluation"}), verify=False)
    assert folder.alphabets == ["Alpha", "Beta", "Gamma"]
    assert folder.sha256() == zipped.sha256() == mixed.sha256()
    assert folder.images.shape == (140, 1, 105, 105)
    # Beta character 2 (index 1), drawer 7 (index 6): ink box at rows 10..19, cols 35..38
    row = int(((folder.alphabet == 1) & (folder.character == 1) & (folder.drawer == 6))
              .nonzero()[0, 0])
    img = folder.images[row, 0]
    assert int(img[10:20, 35:39].min()) == 255 and int(img.sum()) == 255 * 40
    assert (default_cache_dir() / "omniglot_105.pt").is_file()
    assert not (tmp_path / "f" / "omniglot" / "cache").exists()  # never in the data dir


def test_synthetic_tasks_and_resize(synth: Path) -> None:
    tasks = load_omniglot(synth, num_tasks=3, image_size=SIZE, test_fraction=0.2, verify=False)
    assert sorted(t.name for t in tasks) == ["Alpha", "Beta", "Gamma"]
    beta = next(t for t in tasks if t.name == "Beta")
    assert beta.num_classes == 3 and beta.x_train.shape == (3 * 14, 1, SIZE, SIZE)
    assert beta.y_test.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    x = to_float(beta.x_test)
    assert x.dtype == torch.float32 and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    with pytest.raises(ValueError, match="num_tasks must be between 1 and 3"):
        load_omniglot(synth, num_tasks=4, image_size=SIZE, verify=False)


def test_unreadable_image_names_file(tmp_path: Path) -> None:
    root = _write_layout(tmp_path / "f", set())
    bad = root / "omniglot" / "images_evaluation" / "Gamma" / "character02" / "0007_05.png"
    bad.write_bytes(b"\x89PNG truncated")
    with pytest.raises(ValueError, match=r"cannot decode Omniglot image .*Gamma/character02/"
                                         r"0007_05\.png"):
        load_omniglot_images(root, num_workers=2, verify=False)
    root = _write_layout(tmp_path / "z", set())
    (root / "omniglot" / "images_background" / "Alpha" / "character01" / "0001_03.png"
     ).write_bytes(b"")
    src = root / "omniglot"
    with zipfile.ZipFile(src / "images_background.zip", "w") as zf:
        for path in sorted((src / "images_background").rglob("*")):
            zf.write(path, path.relative_to(src).as_posix())
    shutil.rmtree(src / "images_background")
    with pytest.raises(ValueError, match=r"images_background\.zip:images_background/Alpha/"
                                         r"character01/0001_03\.png"):
        load_omniglot_images(root, num_workers=1, verify=False)
    assert not (default_cache_dir() / "omniglot_105.pt").exists()  # nothing half-written


def test_corrupt_cache_detected_and_rebuilt(synth: Path) -> None:
    first = load_omniglot_images(synth, SIZE, verify=False)
    cache = default_cache_dir()
    assert cache == Path(os.environ["SOFTORDER_CACHE_DIR"]) / "omniglot"
    pt = cache / f"omniglot_{SIZE}.pt"
    blob = torch.load(pt, weights_only=True)
    blob["images"][0, 0, 0, 0] ^= 1  # one flipped bit: still a valid file
    torch.save(blob, pt)
    with pytest.warns(RuntimeWarning, match="SHA-256 does not match"):
        again = load_omniglot_images(synth, SIZE, verify=False)
    assert again.sha256() == first.sha256()
    pt.write_bytes(pt.read_bytes()[:100])  # truncated file
    with pytest.warns(RuntimeWarning, match="cannot be read"):
        load_omniglot_images(synth, SIZE, verify=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_omniglot_images(synth, SIZE, verify=False).sha256() == first.sha256()  # healthy


def test_split_counts() -> None:
    assert split_counts(20, 0.2, 0.1) == (14, 2, 4)
    assert split_counts(20, 0.1, 0.1) == (16, 2, 2)
    assert split_counts(5, 0.2, 0.01) == (3, 1, 1)  # at least one validation drawing
    with pytest.raises(ValueError, match="leave no training drawing"):
        split_counts(2, 0.5, 0.5)
    with pytest.raises(ValueError, match="test_fraction must be in"):
        split_counts(20, 1.5, 0.1)


def test_read_only_data_dir_caches_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A data dir nobody may write (a shared copy) loads; the cache goes to $SOFTORDER_CACHE_DIR."""
    root = _write_layout(tmp_path / "shared", set(LAYOUT))
    cache = tmp_path / "my-cache"
    monkeypatch.setenv("SOFTORDER_CACHE_DIR", str(cache))
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    for p in [*root.rglob("*"), root]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        first = load_omniglot(root, num_tasks=3, image_size=SIZE, verify=False)
        assert capsys.readouterr().err == (
            f"softorder: Omniglot cache written to {cache / 'omniglot' / f'omniglot_{SIZE}.pt'} "
            f"(set SOFTORDER_CACHE_DIR to move it)\n")
        again = load_omniglot(root, num_tasks=3, image_size=SIZE, verify=False)
        assert capsys.readouterr().err == ""  # said once: the cache is reused silently
    finally:
        for p in folders:
            p.chmod(0o755)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == before
    assert sorted(p.name for p in (cache / "omniglot").iterdir()) == [f"omniglot_{SIZE}.json",
                                                                       f"omniglot_{SIZE}.pt"]
    assert all(torch.equal(a.x_test, b.x_test) for a, b in zip(first, again, strict=True))


def test_unwritable_cache_dir_still_loads(synth: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(path: Path, write: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(omniglot, "atomic_write", refuse)
    data = load_omniglot_images(synth, SIZE, verify=False)
    assert data.images.shape == (140, 1, SIZE, SIZE)
    err = capsys.readouterr().err
    assert err.startswith("softorder: cannot write the Omniglot cache") and err.count("\n") == 1
    assert "Permission denied" in err and "SOFTORDER_CACHE_DIR" in err


def test_not_the_official_set_fails_verification(synth: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"Omniglot under .*omniglot is not the official set "
                                         r"\(53 problem\(s\): Alphabet_of_the_Magi is missing") as info:
        load_omniglot(synth, num_tasks=3, image_size=SIZE)
    assert f"softorder data download omniglot --root {synth}" in str(info.value)
    assert "SOFTORDER_NO_VERIFY=1" in str(info.value)
    monkeypatch.setenv("SOFTORDER_NO_VERIFY", "1")  # the opt-out, as the message says
    assert len(load_omniglot(synth, num_tasks=3, image_size=SIZE)) == 3
    with pytest.raises(ValueError, match="not the official set"):  # now from the cache: still checked
        load_omniglot(synth, num_tasks=3, image_size=SIZE, verify=True)


@real
def test_real_set_missing_drawings_fails_verification(real_cache: Path) -> None:
    data = load_omniglot_images(DATA, SIZE, cache_dir=real_cache)
    keep = ~((data.alphabet == 3) & (data.character == 5) & (data.drawer == 7))
    damaged = OmniglotImages(data.images[keep], data.alphabet[keep], data.character[keep],
                             data.drawer[keep], data.alphabets)
    with pytest.raises(ValueError, match=rf"\(1 problem\(s\): {data.alphabets[3]} has .* 19-20 drawings"):
        omniglot._check_official(damaged, DATA / "omniglot")
    omniglot._check_official(data, DATA / "omniglot")  # the real set passes
