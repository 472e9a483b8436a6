import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import shared_data_root
from dctutor import data



def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def fake_split(folder: Path, split: str, n: int, compress: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    img_name, lab_name = data._FILES[split]
    write_idx(folder / img_name, images, compress)
    write_idx(folder / lab_name, labels, compress)
    return images, labels


@pytest.fixture
def isolated(clean_env, tmp_path):
    """No $DCTUTOR_DATA, a private cache, no system copies and no network."""
    clean_env.setenv("DCTUTOR_CACHE", str(tmp_path / "cache"))
    clean_env.setattr(data, "_SYSTEM_DIRS", {"mnist": [], "fashion-mnist": []})
    data._MEMORY_CACHE.clear()

    def no_network(name, target):
        raise OSError("network unreachable (test)")

    clean_env.setattr(data, "_download", no_network)
    return clean_env


@pytest.mark.parametrize("name", ["mnist-5k", "fashion-mnist-5k"])
def test_embedded_sample(name, isolated):
    d = data.load(name)       # isolated: no $DCTUTOR_DATA, no system copies, no network
    assert d.images.shape == (5000, 28, 28) and d.images.dtype == torch.uint8
    assert d.labels.dtype == torch.int64 and d.labels.bincount().tolist() == [500] * 10
    train, test = data.load(name, "train"), data.load(name, "test")
    assert len(train) == 4000 and len(test) == 1000
    assert test.labels.bincount().tolist() == [100] * 10
    assert torch.equal(torch.cat([train.images, test.images]), d.images)
    assert len(d.classes) == 10 and (d.classes[0] == "T-shirt/top") == name.startswith("fashion")


def test_fashion_sample_is_real_fashion_mnist():
    """The embedded Fashion sample holds the first 400 (100) images per class of train (test)."""
    root = shared_data_root()
    if root is None:
        pytest.skip("no local copy of Fashion-MNIST (set DCTUTOR_DATA)")
    full = data.load("fashion-mnist", "test", root=root, download=False)
    sample = data.load("fashion-mnist-5k", "test")
    first = torch.cat([torch.nonzero(full.labels == c).flatten()[:100] for c in range(10)])
    expected = {bytes(full.images[i].numpy()) for i in first.tolist()}
    assert {bytes(img.numpy()) for img in sample.images} == expected


def test_inputs_flat_and_image_shapes():
    d = data.load("mnist-5k", "test")
    x = d.inputs()
    assert x.shape == (1000, 784) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() == 1.0
    assert d.inputs(flat=False).shape == (1000, 1, 28, 28)
    assert d.targets().shape == (1000,)
    sub = d.subset(100, seed=1)
    assert len(sub) == 100 and torch.equal(sub.images, d.subset(100, seed=1).images)
    with pytest.raises(ValueError):
        d.subset(0)


@pytest.mark.parametrize("name,split", [("emnist", "all"), ("mnist", "validation"), (3, "all")])
def test_bad_arguments(name, split):
    with pytest.raises(ValueError, match="unknown"):
        data.load(name, split)


def test_flat_layout_gzipped(isolated, tmp_path):
    root = tmp_path / "data"
    xtr, ytr = fake_split(root / "mnist", "train", 7, compress=True)
    xte, yte = fake_split(root / "mnist", "test", 3, compress=True, seed=1)
    d = data.load("mnist", "all", root=root)
    assert d.images.shape == (10, 28, 28)
    assert np.array_equal(d.images.numpy(), np.concatenate([xtr, xte]))
    assert np.array_equal(d.labels.numpy(), np.concatenate([ytr, yte]))
    assert d.labels.dtype == torch.int64


def test_environment_variable_and_torchvision_layout(isolated, tmp_path):
    root = tmp_path / "tv"
    fake_split(root / "FashionMNIST" / "raw", "test", 5, compress=False)
    isolated.setenv("DCTUTOR_DATA", str(root))
    d = data.load("fashion-mnist", "test")
    assert len(d) == 5 and d.classes[0] == "T-shirt/top"


def test_torchvision_reads_the_same_files(isolated, tmp_path):
    """Files in torchvision's layout are read by torchvision itself with no download."""
    from torchvision.datasets import MNIST

    root = tmp_path / "tv"
    xtr, ytr = fake_split(root / "MNIST" / "raw", "train", 6, compress=False)
    fake_split(root / "MNIST" / "raw", "test", 2, compress=False)
    tv = MNIST(root=str(root), train=True, download=False)
    assert np.array_equal(tv.data.numpy(), xtr) and np.array_equal(tv.targets.numpy(), ytr)
    ours = data.load("mnist", "train", root=root, download=False)
    assert np.array_equal(ours.images.numpy(), xtr)


def test_download_path_lands_in_cache(isolated, tmp_path):
    """The downloader (stubbed: no network here) writes torchvision's layout into the cache."""
    calls = []

    def fake_download(name, target):
        calls.append((name, target))
        fake_split(target / "MNIST" / "raw", "train", 4, compress=False)
        fake_split(target / "MNIST" / "raw", "test", 2, compress=False)

    isolated.setattr(data, "_download", fake_download)
    d = data.load("mnist", "all")
    assert len(d) == 6 and calls == [("mnist", tmp_path / "cache")]
    assert d.source.startswith(str(tmp_path / "cache"))


def test_missing_without_download_says_where_it_looked(isolated, tmp_path):
    isolated.setenv("DCTUTOR_DATA", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError) as err:
        data.load("mnist", download=False)
    msg = str(err.value)
    assert "'mnist'" in msg and str(tmp_path / "empty" / "mnist") in msg
    assert "DCTUTOR_DATA" in msg and "download=False" in msg


def test_missing_with_failed_download(isolated):
    with pytest.raises(FileNotFoundError, match="network unreachable"):
        data.load("fashion-mnist", "train")


def test_missing_is_never_replaced_by_another_dataset(isolated, tmp_path):
    root = tmp_path / "data"
    fake_split(root / "mnist", "train", 3, compress=True)
    with pytest.raises(FileNotFoundError):
        data.load("fashion-mnist", "train", root=root)
    with pytest.raises(FileNotFoundError):  # the test split is absent
        data.load("mnist", "test", root=root)


def test_truncated_gzip_is_reported(isolated, tmp_path):
    root = tmp_path / "data"
    fake_split(root / "mnist", "test", 20, compress=True)
    path = root / "mnist" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(data.CorruptDataError, match="t10k-images"):
        data.load("mnist", "test", root=root)


def test_truncated_idx_and_bad_magic(isolated, tmp_path):
    root = tmp_path / "data"
    fake_split(root / "mnist", "test", 5, compress=False)
    path = root / "mnist" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        data.load("mnist", "test", root=root)
    path.write_bytes(b"not an idx file at all")
    with pytest.raises(ValueError, match="magic"):
        data.load("mnist", "test", root=root)


@pytest.mark.skipif(shared_data_root() is None, reason="offline MNIST copies not present")
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_full_datasets_from_shared_copies(clean_env, name):
    clean_env.setenv("DCTUTOR_DATA", shared_data_root())
    d = data.load(name, download=False)
    assert d.images.shape == (70000, 28, 28) and d.labels.bincount().tolist()[0] in (6903, 7000)
    assert len(data.load(name, "test", download=False)) == 10000

