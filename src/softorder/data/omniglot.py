"""Omniglot as 50 multitask classification problems, one per alphabet (paper Sec. 4.3).

Following Meyerson & Miikkulainen (2018, Sec. 4.3) and Yang & Hospedales (2017), every
alphabet is a task whose classes are its characters (14-55 of them). For each character a
random ``test_fraction`` of its 20 drawings is held out for testing, and a further
``val_fraction`` (of the 20, at least one) for validation; the split is stratified per
character and drawn from ``seed``.

Source layout (official, ``brendenlake/omniglot/python``), under ``<data_dir>/omniglot/``:
either the zips ``images_background.zip`` / ``images_evaluation.zip`` or the extracted
folders ``images_background/`` / ``images_evaluation/``, each holding
``<Alphabet>/characterNN/<id>_<drawer>.png`` (105x105, 1-bit).

All 32,460 PNGs are decoded once into a cache ``omniglot_<size>.pt`` in
``$SOFTORDER_CACHE_DIR/omniglot/`` (default ``~/.cache/softorder/cache/omniglot/``; never the
data dir, which may be read-only), checked against a SHA-256 recorded in ``omniglot_<size>.json``
on every load and rebuilt when it does not match. ``image_size`` other than the native 105 is
downsampled with antialiased bilinear interpolation (PIL-equivalent). Decoding uses one
process per CPU core, split by alphabet. Zip CRCs and PNG decoding are always checked; the
decoded set must be the official one (:data:`OMNIGLOT_ALPHABETS`, 20 drawings per character)
unless ``verify=False`` or ``SOFTORDER_NO_VERIFY=1``. Archive MD5s are checked on download only.

**Image contract.** Images are ``uint8 [n, 1, S, S]`` with the ink *bright*: the official
black-on-white PNGs are inverted, so background is 0 and strokes are 255. ``TaskData.x_*``
keep this uint8 form (50 tasks as float32 at 105x105 would take ~1.4 GB); models and
training code must convert with :func:`to_float` (``x.float() / 255`` -> strokes 1.0).

(Over 300 lines: the one dataset whose decoding, cache, verification and splits must agree with
each other; split apart they would each need the others' invariants.)
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing as mp
import os
import re
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from softorder.atomic import atomic_write
from softorder.data.download import CACHE_DIR_ENV, cache_root, fix_hint, verification_enabled
from softorder.data.tasks import TaskData

NATIVE_SIZE = 105
SETS = ("images_background", "images_evaluation")
CACHE_VERSION = 1
# The official archives' MD5s live in the download registry (``softorder data download omniglot``)
# and are checked there: rebuilt copies (like ../shared's) have other MD5s but the same PNGs.
_FIELDS = ("images", "alphabet", "character", "drawer", "alphabets")  # OmniglotImages, cached

#: Characters per alphabet in the official set (30 background + 20 evaluation = 1,623).
OMNIGLOT_ALPHABETS: dict[str, int] = {
    "Alphabet_of_the_Magi": 20, "Anglo-Saxon_Futhorc": 29, "Arcadian": 26, "Armenian": 41,
    "Asomtavruli_(Georgian)": 40, "Balinese": 24, "Bengali": 46,
    "Blackfoot_(Canadian_Aboriginal_Syllabics)": 14, "Braille": 26, "Burmese_(Myanmar)": 34,
    "Cyrillic": 33, "Early_Aramaic": 22, "Futurama": 26, "Grantha": 43, "Greek": 24,
    "Gujarati": 48, "Hebrew": 22, "Inuktitut_(Canadian_Aboriginal_Syllabics)": 16,
    "Japanese_(hiragana)": 52, "Japanese_(katakana)": 47, "Korean": 40, "Latin": 26,
    "Malay_(Jawi_-_Arabic)": 40, "Mkhedruli_(Georgian)": 41, "N_Ko": 33,
    "Ojibwe_(Canadian_Aboriginal_Syllabics)": 14, "Sanskrit": 42, "Syriac_(Estrangelo)": 23,
    "Tagalog": 17, "Tifinagh": 55,
    "Angelic": 20, "Atemayar_Qelisayer": 26, "Atlantean": 26, "Aurek-Besh": 26, "Avesta": 26,
    "Ge_ez": 26, "Glagolitic": 45, "Gurmukhi": 45, "Kannada": 41, "Keble": 26,
    "Malayalam": 47, "Manipuri": 40, "Mongolian": 30, "Old_Church_Slavonic_(Cyrillic)": 45,
    "Oriya": 46, "Sylheti": 28, "Syriac_(Serto)": 23, "Tengwar": 25, "Tibetan": 42, "ULOG": 26,
}  # fmt: skip

#: The official split (Lake et al.): 30 background alphabets (``images_background``) and 20
#: evaluation alphabets (``images_evaluation``). ``all`` is the 50 the paper's Sec. 4.3 uses.
ALPHABET_SETS: dict[str, tuple[str, ...]] = {
    "all": tuple(sorted(OMNIGLOT_ALPHABETS)),
    "background": tuple(sorted(list(OMNIGLOT_ALPHABETS)[:30])),
    "evaluation": tuple(sorted(list(OMNIGLOT_ALPHABETS)[30:])),
}

_PNG = re.compile(r"^(?P<alpha>[^/]+)/(?P<char>character(?P<cnum>\d+))/(?P<file>[^/]+\.png)$")
_DRAWER = re.compile(r"_(\d+)\.png$")


def to_float(x: Tensor) -> Tensor:
    """Convert cached uint8 Omniglot images (ink = 255) to float32 in [0, 1] (ink = 1.0)."""
    return x.float().div_(255.0)


@dataclass
class OmniglotImages:
    """All decoded images in canonical order (alphabets by name, characters, drawers).

    ``images`` uint8 [N, 1, S, S] with ink = 255; ``alphabet`` / ``character`` / ``drawer``
    int64 [N], 0-based (``character`` within its alphabet, ``drawer`` = file's ``_NN`` - 1);
    ``alphabets`` the names indexed by ``alphabet``.
    """

    images: Tensor
    alphabet: Tensor
    character: Tensor
    drawer: Tensor
    alphabets: list[str]

    def sha256(self) -> str:
        """SHA-256 over every tensor's bytes and the alphabet names (the cache checksum)."""
        h = hashlib.sha256()
        for t in (self.images, self.alphabet, self.character, self.drawer):
            h.update(str(tuple(t.shape)).encode())
            h.update(t.contiguous().numpy().data)  # buffer protocol: no copy of the images
        h.update(json.dumps(self.alphabets).encode())
        return h.hexdigest()


# ---------------------------------------------------------------------------------- sources
def _sources(root: Path) -> dict[str, Path]:
    """Map each image set to its extracted folder (preferred) or zip; raise if either lacks."""
    found: dict[str, Path] = {}
    for name in SETS:
        folder, archive = root / name, root / f"{name}.zip"
        if folder.is_dir():
            found[name] = folder
        elif archive.is_file():
            found[name] = archive
    missing = [s for s in SETS if s not in found]
    if missing:
        expected = "; ".join(f"{root / s}/ or {root / s}.zip" for s in missing)
        raise FileNotFoundError(
            f"Omniglot not found: expected {expected}. Fetch it with "
            f"`softorder data download omniglot` (or unpack the official zips from "
            f"github.com/brendenlake/omniglot/tree/master/python into {root})."
        )
    return found


def _fingerprint(src: Path) -> dict[str, object]:
    """Cheap identity of a source (path, and zip size or PNG count) stored with the cache."""
    where = str(src.resolve())
    if src.is_dir():
        return {"set": src.name, "kind": "dir", "path": where, "pngs": sum(1 for _ in src.rglob("*.png"))}
    return {"set": src.name.removesuffix(".zip"), "kind": "zip", "path": where, "bytes": src.stat().st_size}


def _list_pngs(src: Path, set_name: str) -> dict[str, list[str]]:
    """Alphabet -> relative member paths ``<Alphabet>/characterNN/<file>.png`` of one set."""
    if src.is_dir():
        rels = [p.relative_to(src).as_posix() for p in src.rglob("*.png")]
    else:
        try:
            with zipfile.ZipFile(src) as zf:
                names = zf.namelist()
        except zipfile.BadZipFile as e:
            raise ValueError(f"{src} is not a readable zip ({e}); delete it and re-download "
                             f"with `softorder data download omniglot`") from e
        prefix = f"{set_name}/"
        rels = [n[len(prefix):] for n in names if n.startswith(prefix) and n.endswith(".png")]
    out: dict[str, list[str]] = {}
    for rel in rels:
        if _PNG.match(rel):
            out.setdefault(rel.split("/", 1)[0], []).append(rel)
    return out


def _decode(data: bytes, where: str) -> np.ndarray:
    """One PNG -> uint8 [105, 105], ink bright (strokes 255, background 0)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            gray = im.convert("L")
    except Exception as e:  # PIL raises several types for truncated / non-image bytes
        raise ValueError(f"cannot decode Omniglot image {where}: {e}; the file is corrupt, "
                         f"re-download with `softorder data download omniglot`") from e
    if gray.size != (NATIVE_SIZE, NATIVE_SIZE):  # not in the official set; tolerated
        gray = gray.resize((NATIVE_SIZE, NATIVE_SIZE), Image.Resampling.BILINEAR)
    return 255 - np.asarray(gray, dtype=np.uint8)


def _resize(images: Tensor, size: int) -> Tensor:
    """Antialiased bilinear resize of uint8 [N,1,H,W] (PIL-equivalent), in chunks."""
    if images.shape[-1] == size:
        return images
    chunks = [F.interpolate(c, size=(size, size), mode="bilinear", antialias=True)
              for c in images.split(4096)]
    return torch.cat(chunks)


_ZIPS: dict[str, zipfile.ZipFile] = {}  # per-process: each worker parses a zip index once


def _open_zip(src: Path) -> zipfile.ZipFile:
    key = str(src)
    if key not in _ZIPS:
        _ZIPS[key] = zipfile.ZipFile(src)
    return _ZIPS[key]


def _close_zips() -> None:
    while _ZIPS:
        _ZIPS.popitem()[1].close()


def _decode_alphabet(
    job: tuple[str, str, str, list[str]],
) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """Worker: decode one alphabet; returns (name, images [n,105,105], character, drawer)."""
    src_str, set_name, alpha, rels = job
    src = Path(src_str)
    keyed = []
    for rel in rels:
        m, d = _PNG.match(rel), _DRAWER.search(rel)
        where = str(src / rel) if src.is_dir() else f"{src}:{set_name}/{rel}"
        if m is None or d is None or int(d[1]) < 1:
            raise ValueError(f"Omniglot file {where} is not named "
                             f"<Alphabet>/characterNN/<id>_<drawer>.png")
        keyed.append((int(m["cnum"]), int(d[1]), rel, where))
    keyed.sort()
    char_index = {c: i for i, c in enumerate(sorted({k[0] for k in keyed}))}
    images = np.empty((len(keyed), NATIVE_SIZE, NATIVE_SIZE), dtype=np.uint8)
    chars = np.array([char_index[k[0]] for k in keyed], dtype=np.int64)
    drawers = np.array([k[1] - 1 for k in keyed], dtype=np.int64)
    zf = None if src.is_dir() else _open_zip(src)
    for i, (_, _, rel, where) in enumerate(keyed):
        try:
            data = (src / rel).read_bytes() if zf is None else zf.read(f"{set_name}/{rel}")
        except (OSError, zipfile.BadZipFile) as e:
            raise ValueError(f"cannot read Omniglot image {where}: {e}; re-download with "
                             f"`softorder data download omniglot`") from e
        images[i] = _decode(data, where)
    return alpha, images, chars, drawers


def decode_omniglot(root: str | os.PathLike[str], image_size: int = NATIVE_SIZE,
                    num_workers: int | None = None) -> OmniglotImages:
    """Decode every PNG under ``root`` (the ``omniglot/`` folder), one process per worker.

    Work is split by alphabet over ``num_workers`` processes (default: all CPU cores).
    """
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    root = Path(root)
    jobs: list[tuple[str, str, str, list[str]]] = []
    for set_name, src in _sources(root).items():
        for alpha, rels in _list_pngs(src, set_name).items():
            jobs.append((str(src), set_name, alpha, rels))
    if not jobs:
        raise FileNotFoundError(f"no <Alphabet>/characterNN/*.png files under {root}; "
                                f"re-download with `softorder data download omniglot`")
    names = [j[2] for j in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"alphabet names repeat across {', '.join(SETS)} in {root}")
    jobs.sort(key=lambda j: j[2])
    workers = min(num_workers or os.cpu_count() or 1, len(jobs))
    if workers > 1:
        # Largest alphabets first for balance; results re-ordered by name below.
        order = sorted(jobs, key=lambda j: -len(j[3]))
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(workers) as pool:
            results = {r[0]: r for r in pool.imap_unordered(_decode_alphabet, order)}
        decoded = [results[j[2]] for j in jobs]
    else:
        try:
            decoded = [_decode_alphabet(j) for j in jobs]
        finally:
            _close_zips()
    alpha_idx = [np.full(len(r[1]), a, dtype=np.int64) for a, r in enumerate(decoded)]
    return OmniglotImages(
        images=_resize(torch.from_numpy(np.concatenate([r[1] for r in decoded])).unsqueeze(1),
                       image_size),
        alphabet=torch.from_numpy(np.concatenate(alpha_idx)),
        character=torch.from_numpy(np.concatenate([r[2] for r in decoded])),
        drawer=torch.from_numpy(np.concatenate([r[3] for r in decoded])),
        alphabets=[r[0] for r in decoded],
    )


# ------------------------------------------------------------------------------------ cache
def default_cache_dir() -> Path:
    """``$SOFTORDER_CACHE_DIR/omniglot`` (default ``~/.cache/softorder/cache/omniglot``)."""
    return cache_root() / "omniglot"


def _check_official(data: OmniglotImages, root: Path) -> None:
    """The official set: the 50 alphabets of OMNIGLOT_ALPHABETS, 20 drawings per character."""
    problems = [f"{a} is missing" for a in OMNIGLOT_ALPHABETS if a not in data.alphabets]
    for i, name in enumerate(data.alphabets):
        n = torch.bincount(data.character[data.alphabet == i])
        if len(n) != OMNIGLOT_ALPHABETS.get(name) or bool((n != 20).any()):
            problems.append(f"{name} has {len(n)} characters of {int(n.min())}-{int(n.max())} drawings")
    if problems:
        raise ValueError(f"Omniglot under {root} is not the official set ({len(problems)} problem(s): "
                         f"{'; '.join(problems[:3])}); {fix_hint('omniglot', root.parent)}")


def _write_cache(pt: Path, meta_path: Path, data: OmniglotImages, meta: dict[str, object]) -> None:
    """Write the cache (sidecar last), saying where; an unwritable cache dir only costs speed."""
    blob = {k: getattr(data, k) for k in _FIELDS}
    try:
        atomic_write(pt, lambda f: torch.save(blob, f))
        atomic_write(meta_path, lambda f: f.write(json.dumps(meta, indent=1).encode()))
        print(f"softorder: Omniglot cache written to {pt} (set {CACHE_DIR_ENV} to move it)", file=sys.stderr)
    except OSError as e:
        print(f"softorder: cannot write the Omniglot cache {pt} ({e.strerror or e}); "
              f"set {CACHE_DIR_ENV} to a writable folder", file=sys.stderr)


def _read_cache(pt: Path, meta_path: Path, expect: dict[str, object]) -> OmniglotImages | None:
    """The cached images, or None (with a warning when a cache exists but is unusable)."""
    if not pt.is_file() or not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if any(meta.get(k) != v for k, v in expect.items()):
            return None  # different source / size / format: rebuild silently
        blob = torch.load(pt, map_location="cpu", weights_only=True)
        data = OmniglotImages(**{k: blob[k] for k in _FIELDS})
        if data.sha256() == meta.get("sha256"):
            return data
        reason = "its SHA-256 does not match the sidecar"
    except Exception as e:  # unreadable pickle / json: treat as corrupt
        reason = f"it cannot be read ({type(e).__name__}: {e})"
    warnings.warn(f"Omniglot cache {pt} is corrupt ({reason}); rebuilding it", RuntimeWarning,
                  stacklevel=3)
    return None


def load_omniglot_images(data_dir: str | os.PathLike[str], image_size: int = NATIVE_SIZE,
                         cache_dir: str | os.PathLike[str] | None = None,
                         num_workers: int | None = None, verify: bool | None = None) -> OmniglotImages:
    """All Omniglot images at ``image_size``, from the verified cache or decoded (Sec. 4.3).

    ``data_dir`` holds ``omniglot/``. The cache is ``<cache_dir>/omniglot_<size>.pt`` (default
    :func:`default_cache_dir`) plus a ``.json`` sidecar with its SHA-256 and the sources'
    fingerprint; it is rebuilt when the checksum or fingerprint does not match, and written
    atomically (sidecar last). Unless ``verify=False`` (or ``SOFTORDER_NO_VERIFY=1``) the
    images must be the official set.
    """
    root = Path(data_dir) / "omniglot"
    sources = _sources(root)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    pt, meta_path = cache / f"omniglot_{image_size}.pt", cache / f"omniglot_{image_size}.json"
    expect: dict[str, object] = {
        "version": CACHE_VERSION, "image_size": image_size,
        "sources": [_fingerprint(s) for s in sources.values()],
    }
    cached = _read_cache(pt, meta_path, expect)
    data = cached if cached is not None else decode_omniglot(root, image_size, num_workers)
    if verification_enabled(verify):
        _check_official(data, root)
    if cached is None:
        _write_cache(pt, meta_path, data, {**expect, "sha256": data.sha256(),
                     "num_images": int(data.images.shape[0]),
                     "ink": "255 (inverted from the official black-on-white PNGs)"})
    return data


# ------------------------------------------------------------------------------------ tasks
def omniglot_task_order(alphabets: list[str], task_order_seed: int = 0) -> list[str]:
    """The fixed random task order: one permutation of the alphabets from ``task_order_seed``.

    Independent of the trial seed, so ``num_tasks=T`` always means the same T alphabets.
    """
    perm = np.random.default_rng(task_order_seed).permutation(len(alphabets))
    ordered = sorted(alphabets)
    return [ordered[i] for i in perm]


def split_counts(n: int, test_fraction: float, val_fraction: float) -> tuple[int, int, int]:
    """(train, val, test) drawings of a character with ``n`` drawings (20 -> 0.2: 4 test)."""
    if not 0.0 < test_fraction < 1.0 or not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1) and val_fraction in [0, 1); "
                         f"got {test_fraction} and {val_fraction}")
    n_test = max(1, round(test_fraction * n))
    n_val = max(1, round(val_fraction * n)) if val_fraction > 0 else 0
    n_train = n - n_test - n_val
    if n_train < 1:
        raise ValueError(f"test_fraction={test_fraction} and val_fraction={val_fraction} "
                         f"leave no training drawing of {n}; lower them")
    return n_train, n_val, n_test


def load_omniglot(data_dir: str | os.PathLike[str], num_tasks: int = 50,
                  test_fraction: float = 0.2, val_fraction: float = 0.1, seed: int = 0,
                  image_size: int = NATIVE_SIZE, task_order_seed: int = 0,
                  cache_dir: str | os.PathLike[str] | None = None,
                  num_workers: int | None = None, alphabet_set: str = "all",
                  verify: bool | None = None) -> list[TaskData]:
    """Omniglot as ``num_tasks`` alphabet-classification tasks (paper Sec. 4.3).

    Tasks are the first ``num_tasks`` alphabets of :func:`omniglot_task_order` over the
    ``alphabet_set`` (``all`` 50, ``background`` 30 or ``evaluation`` 20); labels are
    character indices within the alphabet. Per character, ``test_fraction`` of the drawings
    are test and ``val_fraction`` (at least one) validation, drawn from ``seed`` (Yang &
    Hospedales, 2017); a given alphabet's split does not depend on ``num_tasks`` or the order.
    ``x_*`` are **uint8** [n, 1, S, S] with ink = 255: convert with :func:`to_float`.
    ``verify=False`` (or ``SOFTORDER_NO_VERIFY=1``) accepts a non-official set of images.
    """
    if alphabet_set not in ALPHABET_SETS:
        raise ValueError(f"unknown alphabet set {alphabet_set!r}; choose one of {', '.join(ALPHABET_SETS)}")
    data = load_omniglot_images(data_dir, image_size, cache_dir, num_workers, verify)
    names = data.alphabets
    if alphabet_set != "all":
        names = [a for a in data.alphabets if a in ALPHABET_SETS[alphabet_set]]
        if len(names) != len(ALPHABET_SETS[alphabet_set]):
            missing = sorted(set(ALPHABET_SETS[alphabet_set]) - set(names))
            raise FileNotFoundError(f"the {alphabet_set} alphabets {missing} are missing from {data_dir}; "
                                    f"re-download with `softorder data download omniglot`")
    order = omniglot_task_order(names, task_order_seed)
    if not 1 <= num_tasks <= len(order):
        raise ValueError(f"num_tasks must be between 1 and {len(order)}, got {num_tasks}")
    canonical = {name: i for i, name in enumerate(data.alphabets)}
    tasks = []
    for name in order[:num_tasks]:
        idx = split_alphabet(data, canonical[name], test_fraction, val_fraction, seed)
        tasks.append(TaskData(
            name=name, num_classes=int(data.character[idx["train"]].max()) + 1,
            x_train=data.images[idx["train"]], y_train=data.character[idx["train"]],
            x_val=data.images[idx["val"]], y_val=data.character[idx["val"]],
            x_test=data.images[idx["test"]], y_test=data.character[idx["test"]],
        ))
    return tasks


def split_alphabet(data: OmniglotImages, alphabet: int, test_fraction: float = 0.2,
                   val_fraction: float = 0.1, seed: int = 0) -> dict[str, Tensor]:
    """Row indices into ``data`` of one alphabet's train / val / test split (Sec. 4.3).

    Stratified per character (:func:`split_counts` of each character's drawings), drawn
    from a stream seeded by ``(seed, alphabet)`` so it does not depend on other alphabets.
    """
    rows = torch.nonzero(data.alphabet == alphabet).flatten()
    if rows.numel() == 0:
        raise ValueError(f"alphabet index {alphabet} has no images; "
                         f"valid indices are 0..{len(data.alphabets) - 1}")
    chars = data.character[rows]
    rng = np.random.default_rng([seed, alphabet])
    parts: dict[str, list[Tensor]] = {"train": [], "val": [], "test": []}
    for c in range(int(chars.max()) + 1):
        members = rows[chars == c]
        n_train, n_val, _ = split_counts(len(members), test_fraction, val_fraction)
        perm = members[torch.from_numpy(rng.permutation(len(members)))]
        parts["train"].append(perm[:n_train].sort().values)
        parts["val"].append(perm[n_train:n_train + n_val].sort().values)
        parts["test"].append(perm[n_train + n_val:].sort().values)
    return {k: torch.cat(v) for k, v in parts.items()}
