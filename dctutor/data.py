"""Datasets as device-ready tensors: MNIST, Fashion-MNIST and their embedded 5,000-image samples.

``load(name, split="all", root=None, download=True)`` looks for the data in this order:

1. ``root`` if given, else the folder in ``$DCTUTOR_DATA`` — either the flat layout
   ``<root>/mnist/train-images-idx3-ubyte.gz`` (gzipped or not) or torchvision's
   ``<root>/MNIST/raw/train-images-idx3-ubyte``;
2. known system copies (Debian's ``dataset-fashion-mnist`` installs
   ``/usr/share/datasets/fashion-mnist/``);
3. torchvision's downloader, into ``root`` or the user cache (``~/.cache/dctutor``), when
   ``download=True``.

``mnist-5k`` and ``fashion-mnist-5k`` ship inside the package and need none of this. A dataset that cannot be found is
a :class:`FileNotFoundError` that lists where it looked; it is never replaced by another one.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

NAMES = ("mnist", "fashion-mnist", "mnist-5k", "fashion-mnist-5k")
# The samples shipped inside the package (see dctutor/_data/README.md): name -> file.
EMBEDDED = {"mnist-5k": "mnist_5k.npz", "fashion-mnist-5k": "fashion_mnist_5k.npz"}
SPLITS = ("train", "test", "all")

FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DIGIT_CLASSES = tuple(str(d) for d in range(10))

# Folder names: flat layout (ours and ../shared/data) and torchvision's class names.
_FLAT_DIR = {"mnist": "mnist", "fashion-mnist": "fashion-mnist"}
_TV_DIR = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_SYSTEM_DIRS = {"fashion-mnist": [Path("/usr/share/datasets/fashion-mnist")], "mnist": []}
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_HOW_TO_PROVIDE = (
    "Provide it by pointing $DCTUTOR_DATA (or root=) at a folder holding "
    "'{flat}/train-images-idx3-ubyte.gz' and the other idx files (gzipped or not), or "
    "torchvision's '{tv}/raw/' layout; or call load(..., download=True) on a machine with "
    "internet access."
)

_MEMORY_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray, str]] = {}


class CorruptDataError(ValueError):
    """A dataset file exists but cannot be decoded (truncated, wrong format)."""


@dataclass
class Dataset:
    """Images and labels of one split, kept as CPU tensors until asked for on a device.

    Attributes:
        images: uint8 tensor, N × 28 × 28, pixels 0–255 (or, from :func:`from_array`, floats
            already in [0, 1], N × D or N × H × W).
        labels: int64 tensor, N (−1 where a dataset from :func:`from_array` has no labels).
        name: ``"mnist"``, ``"fashion-mnist"``, ``"mnist-5k"`` or ``"fashion-mnist-5k"``.
        split: ``"train"``, ``"test"`` or ``"all"``.
        source: where the data was read from.
        classes: names of the ten classes.
    """

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    split: str
    source: str = ""
    classes: tuple = field(default=DIGIT_CLASSES)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"images={tuple(self.images.shape)} uint8, source={self.source!r})"
        )

    def inputs(self, device: torch.device | str | None = None, flat: bool = True,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Float inputs in [0, 1] on ``device`` (default cpu): N × 784 if ``flat``, else N × 1 × 28 × 28."""
        x = self.images.to(device=device if device is not None else "cpu")
        x = x.to(dtype).div_(255.0) if self.images.dtype == torch.uint8 else x.to(dtype)
        return x.reshape(len(self), -1) if flat else x.unsqueeze(1)

    @property
    def has_labels(self) -> bool:
        """False for a dataset made by :func:`from_array` without ``y``."""
        return bool((self.labels >= 0).all())

    def targets(self, device: torch.device | str | None = None) -> torch.Tensor:
        """The labels (int64, N) on ``device``."""
        return self.labels.to(device=device if device is not None else "cpu")

    def subset(self, n: int, seed: int = 0) -> "Dataset":
        """A random subset of ``n`` examples (the same ``seed`` gives the same subset)."""
        if not 0 < n <= len(self):
            raise ValueError(f"subset size must be in 1..{len(self)}, got {n}")
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self), generator=g)[:n]
        return Dataset(self.images[idx], self.labels[idx], self.name, self.split,
                       self.source + f" (subset of {n}, seed {seed})", self.classes)


# ---------------------------------------------------------------------------------------------
# idx files


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (MNIST's format), gzipped or not, into a NumPy array.

    Raises :class:`CorruptDataError` for a truncated or malformed file.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise CorruptDataError(f"{path} could not be read ({err}); delete it and provide it again") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise CorruptDataError(f"{path} is not an idx file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CorruptDataError(f"{path} is truncated (header incomplete)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) if shape else 0
    if len(raw) - header != expected:
        raise CorruptDataError(
            f"{path} is truncated or padded: header says {shape} = {expected} bytes of data, "
            f"file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_split(folder: Path, split: str) -> tuple[Path, Path] | None:
    """The (images, labels) files of ``split`` in ``folder``, gzipped or not, if both exist."""
    found = []
    for base in _FILES[split]:
        for candidate in (folder / base, folder / f"{base}.gz"):
            if candidate.is_file():
                found.append(candidate)
                break
        else:
            return None
    return found[0], found[1]


def _candidate_folders(name: str, root: Path | None) -> list[Path]:
    """Every folder, in search order, that may hold ``name``'s idx files."""
    roots: list[Path] = []
    if root is not None:
        roots.append(root)
    else:
        env = os.environ.get("DCTUTOR_DATA", "").strip()
        if env:
            roots.append(Path(env).expanduser())
    folders = []
    for r in roots:
        folders += [r / _FLAT_DIR[name], r / _TV_DIR[name] / "raw", r]
    if root is None:
        folders += _SYSTEM_DIRS[name]
        folders += [cache_dir() / _TV_DIR[name] / "raw"]
    return folders


def cache_dir() -> Path:
    """The user cache for downloads and decoded arrays: ``$DCTUTOR_CACHE`` or ``~/.cache/dctutor``."""
    env = os.environ.get("DCTUTOR_CACHE", "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "dctutor"


def _download(name: str, target: Path) -> None:
    """torchvision's downloader (both splits) into ``target``; files land in ``target/<Class>/raw``."""
    from torchvision import datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST}[name]
    target.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        cls(root=str(target), train=train, download=True)


def _read_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    key = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in (images_path, labels_path))
    if key in _MEMORY_CACHE:
        x, y, _ = _MEMORY_CACHE[key]
        return x, y
    x = read_idx(images_path)
    y = read_idx(labels_path).astype(np.int64)
    if x.ndim != 3 or x.shape[1:] != (28, 28) or y.ndim != 1 or len(x) != len(y):
        raise CorruptDataError(
            f"{images_path} and {labels_path} do not hold N×28×28 images with N labels "
            f"(got {x.shape} and {y.shape})"
        )
    _MEMORY_CACHE[key] = (x, y, str(images_path.parent))
    return x, y


def _load_embedded(name: str, split: str) -> tuple[np.ndarray, np.ndarray, str]:
    ref = resources.files("dctutor") / "_data" / EMBEDDED[name]
    with resources.as_file(ref) as path:
        with np.load(path) as npz:
            x, y, n_train = npz["images"], npz["labels"], int(npz["n_train"])
    sl = {"train": slice(0, n_train), "test": slice(n_train, None), "all": slice(None)}[split]
    return x[sl], y[sl], f"embedded sample {path}"


def load(name: str, split: str = "all", root: str | os.PathLike | None = None,
         download: bool = True) -> Dataset:
    """Load a dataset split as uint8 images and int64 labels.

    Args:
        name: ``"mnist"``, ``"fashion-mnist"``, or one of the samples shipped with the package,
            ``"mnist-5k"`` and ``"fashion-mnist-5k"`` (5,000 images each: 4,000 ``train`` +
            1,000 ``test``, 500 per class).
        split: ``"train"``, ``"test"`` or ``"all"`` (train then test).
        root: a folder to read from (and download into); default ``$DCTUTOR_DATA``, then
            system copies, then the user cache.
        download: fetch with torchvision when no local copy exists.

    Returns:
        a :class:`Dataset`; ``.inputs(device)`` gives float N × 784 tensors in [0, 1].

    Raises:
        ValueError: unknown ``name`` or ``split``.
        FileNotFoundError: the data is nowhere to be found (the message lists where it looked).
        CorruptDataError: a file exists but is truncated or malformed (a ``ValueError``).
    """
    if not isinstance(name, str) or name.lower() not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(NAMES)}")
    name = name.lower()
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} for {name!r}; choose one of {', '.join(SPLITS)}")

    if name in EMBEDDED:
        x, y, source = _load_embedded(name, split)
        classes = FASHION_CLASSES if name.startswith("fashion") else DIGIT_CLASSES
        return Dataset(torch.from_numpy(x.copy()), torch.from_numpy(y.copy()), name, split, source,
                       classes)

    root_path = Path(root).expanduser() if root is not None else None
    parts = ("train", "test") if split == "all" else (split,)
    folders = _candidate_folders(name, root_path)

    def locate() -> dict[str, tuple[Path, Path]] | None:
        for folder in folders:
            found = {p: _find_split(folder, p) for p in parts}
            if all(found.values()):
                return found
        return None

    found = locate()
    download_error = None
    if found is None and download:
        target = root_path if root_path is not None else cache_dir()
        try:
            _download(name, target)
        except Exception as err:  # no network, refused, disk full: reported below
            download_error = err
        if root_path is None:
            folders.append(cache_dir() / _TV_DIR[name] / "raw")
        found = locate()
    if found is None:
        looked = "\n  ".join(str(f) for f in folders)
        tried = (
            f"\nDownload with torchvision failed: {download_error}" if download_error
            else "" if download else "\nDownload was not attempted (download=False)."
        )
        raise FileNotFoundError(
            f"Dataset {name!r} (split {split!r}) not found. Looked in:\n  {looked}{tried}\n"
            + _HOW_TO_PROVIDE.format(flat=_FLAT_DIR[name], tv=_TV_DIR[name])
        )

    arrays = [_read_split(*found[p]) for p in parts]
    x = np.concatenate([a[0] for a in arrays])
    y = np.concatenate([a[1] for a in arrays])
    classes = FASHION_CLASSES if name == "fashion-mnist" else DIGIT_CLASSES
    source = str(found[parts[0]][0].parent)
    return Dataset(torch.from_numpy(x.copy()), torch.from_numpy(y), name, split, source, classes)


# ---------------------------------------------------------------------------------------------
# your own data (chapter 6, "Your own data")


def from_array(X, y=None, image_shape: tuple[int, int] | None = None, *, name: str = "custom",
               classes: tuple | None = None) -> Dataset:
    """Your own data as a :class:`Dataset`, checked, with features scaled to [0, 1].

    Args:
        X: N × D (points or flattened images) or N × H × W (images), a NumPy array, a list or a
            tensor of numbers. Scaled to [0, 1] by its overall minimum and maximum unless it
            already lies there (uint8 images are divided by 255), so the book's autoencoders
            with a sigmoid output can reconstruct it.
        y: N labels, used only for scoring; ``None`` if there are none (then ``labels`` are −1).
        image_shape: ``(H, W)`` when the rows of an N × D array are images (H · W = D); an
            N × H × W array is images already. Images let ``inputs(flat=False)`` give
            N × 1 × H × W for a convolutional network.
        name, classes: how the dataset is shown.

    Raises:
        ValueError: an array that is not 2-D or 3-D, fewer than 2 points, NaN or infinite
            values, a constant array, labels of the wrong length, or an ``image_shape`` that
            does not match D.
    """
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    try:
        X = np.asarray(X)
        if X.dtype == object:
            raise TypeError
    except (TypeError, ValueError):
        raise ValueError("X must be a rectangular array of numbers (N × D or N × H × W)") from None
    if X.dtype.kind not in "uif":
        raise ValueError(f"X must hold numbers, got dtype {X.dtype}")
    if X.ndim not in (2, 3):
        raise ValueError(f"X must be N × D (one row per point) or N × H × W (images), got "
                         f"{X.ndim} dimension(s), shape {X.shape}")
    if len(X) < 2:
        raise ValueError(f"X needs at least 2 points to cluster, got {len(X)}")
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).sum())
        raise ValueError(f"X holds {bad} NaN or infinite value(s); remove or impute them first "
                         "(e.g. sklearn.impute.SimpleImputer)")
    if image_shape is not None:
        h, w = (int(v) for v in image_shape)
        if X.ndim == 3 and X.shape[1:] != (h, w):
            raise ValueError(f"image_shape {(h, w)} does not match the images' {X.shape[1:]}")
        if X.ndim == 2:
            if h * w != X.shape[1]:
                raise ValueError(f"image_shape {(h, w)} has {h * w} pixels but the rows of X hold "
                                 f"{X.shape[1]} values")
            X = X.reshape(len(X), h, w)
    if X.dtype == np.uint8:
        scaled = X.astype(np.float32) / 255.0
    else:
        X = X.astype(np.float64)
        lo, hi = float(X.min()), float(X.max())
        if hi == lo:
            raise ValueError("X is constant: every value is the same, there is nothing to cluster")
        scaled = X if 0.0 <= lo and hi <= 1.0 else (X - lo) / (hi - lo)
    if y is None:
        labels = np.full(len(X), -1, dtype=np.int64)
    else:
        if isinstance(y, torch.Tensor):
            y = y.detach().cpu().numpy()
        y = np.asarray(y)
        if y.shape != (len(X),):
            raise ValueError(f"y must hold one label per point ({len(X)}), got shape {y.shape}")
        _, labels = np.unique(y, return_inverse=True)     # any labels → 0 … C−1
        labels = labels.reshape(-1).astype(np.int64)
        if classes is None:
            classes = tuple(str(c) for c in np.unique(y))
    return Dataset(torch.from_numpy(np.ascontiguousarray(scaled, dtype=np.float32)),
                   torch.from_numpy(labels), name, "all", "from_array",
                   classes if classes is not None else ())
