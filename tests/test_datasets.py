"""Tests for the MNIST / Fashion-MNIST loader in skpart.datasets."""

import gzip
import hashlib
import io
import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from sklearn.utils import Bunch

from skpart.datasets import _mnist, get_data_home, load_mnist

NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def _shared_data_home():
    """The shared data folder: SKPART_DATA if set, else <repo>/../shared/data."""
    env = os.environ.get("SKPART_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[1].parent / "shared" / "data")
    for home in candidates:
        if (home / "mnist").is_dir():
            return home
    return None


SHARED = _shared_data_home()
needs_shared = pytest.mark.skipif(
    SHARED is None,
    reason="MNIST not found: set SKPART_DATA or provide <repo>/../shared/data/mnist",
)


def _idx_bytes(array, magic):
    """Serialise a uint8 array as an IDX file with the given magic number."""
    header = magic.to_bytes(4, "big")
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _small(n=7, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255  # both ends of the range
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


def _write(folder, split, images, labels, gz=False, image_magic=2051):
    """Write IDX files for ``split`` into ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, array, magic in zip(
        NAMES[split], (images, labels), (image_magic, 2049), strict=True
    ):
        data = _idx_bytes(array, magic)
        path = folder / (name + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(data) if gz else data)
        paths.append(path)
    return paths


# --------------------------------------------------------------- shared MNIST


@needs_shared
def test_shared_mnist_train():
    X, y = load_mnist(data_home=SHARED, download=False)
    assert X.shape == (60000, 784)
    assert X.dtype == np.float32
    assert y.shape == (60000,)
    assert y.dtype == np.int64
    assert X.min() == 0.0
    assert X.max() == 1.0
    assert set(np.unique(y)) == set(range(10))
    assert y[0] == 5
    # Pixel values are exactly k / 255 for integer k; sum of the first image.
    pixels = X[0] * 255
    np.testing.assert_allclose(pixels, np.rint(pixels), atol=1e-4)
    assert int(np.rint(pixels).sum()) == 27525
    np.testing.assert_array_equal(
        np.bincount(y), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    )


@needs_shared
def test_shared_mnist_test_bunch():
    bunch = load_mnist(split="test", data_home=str(SHARED), return_X_y=False)
    assert isinstance(bunch, Bunch)
    assert bunch.data.shape == (10000, 784)
    assert bunch.data.dtype == np.float32
    assert 0.0 <= bunch.data.min() and bunch.data.max() <= 1.0
    assert bunch.target.dtype == np.int64
    assert bunch.target[0] == 7
    assert int(np.rint(bunch.data[0] * 255).sum()) == 18454
    assert set(np.unique(bunch.target)) == set(range(10))
    assert bunch.images.shape == (10000, 28, 28)
    np.testing.assert_array_equal(bunch.images[3].ravel(), bunch.data[3])
    assert len(bunch.feature_names) == 784
    assert bunch.feature_names[0] == "pixel_0"
    assert bunch.feature_names[-1] == "pixel_783"
    np.testing.assert_array_equal(bunch.target_names, np.arange(10))
    assert "MNIST" in bunch.DESCR


@needs_shared
def test_shared_mnist_found_through_env(monkeypatch):
    monkeypatch.setenv("SKPART_DATA", str(SHARED))
    X, y = load_mnist(split="test", download=False)
    assert X.shape == (10000, 784)
    assert y[0] == 7


@needs_shared
def test_shared_checksum_table_matches_files():
    for name, entry in _mnist._CHECKSUMS["mnist"].items():
        data = (SHARED / "mnist" / f"{name}.gz").read_bytes()
        assert hashlib.md5(data).hexdigest() in entry["gz"]
        assert hashlib.md5(gzip.decompress(data)).hexdigest() == entry["raw"]


# ------------------------------------------------------- round trip, own files


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("split", ["train", "test"])
def test_round_trip(tmp_path, gz, split):
    images, labels = _small()
    _write(tmp_path / "mnist", split, images, labels, gz=gz)
    X, y = load_mnist(split=split, data_home=tmp_path, download=False)
    assert X.dtype == np.float32
    assert y.dtype == np.int64
    np.testing.assert_array_equal(X, images.reshape(7, 784).astype(np.float32) / 255)
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_array_equal(
        np.rint(X * 255).astype(np.uint8), images.reshape(7, -1)
    )
    assert X.min() == 0.0 and X.max() == 1.0


def test_uncompressed_preferred_over_gz(tmp_path):
    images, labels = _small(seed=1)
    _write(tmp_path / "mnist", "test", images, labels, gz=False)
    other_images, other_labels = _small(seed=2)
    _write(tmp_path / "mnist", "test", other_images, other_labels, gz=True)
    X, y = load_mnist(split="test", data_home=tmp_path, download=False)
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_array_equal(X, images.reshape(7, 784) / np.float32(255))


def test_empty_files(tmp_path):
    images = np.zeros((0, 28, 28), dtype=np.uint8)
    labels = np.zeros(0, dtype=np.uint8)
    _write(tmp_path / "mnist", "train", images, labels)
    X, y = load_mnist(data_home=tmp_path, download=False)
    assert X.shape == (0, 784)
    assert y.shape == (0,)


def test_fashion_layout_and_names(tmp_path):
    images, labels = _small(n=10)
    labels = np.arange(10, dtype=np.uint8)
    _write(tmp_path / "fashion", "train", images, labels, gz=True)
    # An MNIST folder next to it must not be read.
    _write(tmp_path / "mnist", "train", *_small(n=3, seed=5))
    bunch = load_mnist(kind="fashion", data_home=tmp_path, return_X_y=False)
    np.testing.assert_array_equal(bunch.target, labels)
    np.testing.assert_array_equal(bunch.images, images / np.float32(255))
    assert list(bunch.target_names) == FASHION_NAMES
    assert bunch.target_names[bunch.target[9]] == "Ankle boot"
    assert "Fashion-MNIST" in bunch.DESCR


# ------------------------------------------------------------- corrupt files


def test_wrong_magic_images(tmp_path):
    images, labels = _small()
    _write(tmp_path / "mnist", "train", images, labels, image_magic=2049 + 0x0100)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte has magic number"):
        load_mnist(data_home=tmp_path, download=False)


def test_swapped_files_wrong_magic(tmp_path):
    images, labels = _small()
    img_path, lab_path = _write(tmp_path / "mnist", "train", images, labels)
    img_data, lab_data = img_path.read_bytes(), lab_path.read_bytes()
    img_path.write_bytes(lab_data)
    lab_path.write_bytes(img_data)
    with pytest.raises(ValueError, match=r"magic number 2049 .*expected 2051"):
        load_mnist(data_home=tmp_path, download=False)


def test_raw_gzip_without_suffix_is_rejected(tmp_path):
    images, labels = _small()
    img_path, _ = _write(tmp_path / "mnist", "train", images, labels)
    img_path.write_bytes(gzip.compress(img_path.read_bytes()))
    with pytest.raises(ValueError, match=r"magic number .*uncompressed when not"):
        load_mnist(data_home=tmp_path, download=False)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_payload(tmp_path, gz):
    images, labels = _small()
    folder = tmp_path / "mnist"
    folder.mkdir()
    data = _idx_bytes(images, 2051)[:-100]
    name = "t10k-images-idx3-ubyte" + (".gz" if gz else "")
    (folder / name).write_bytes(gzip.compress(data) if gz else data)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(labels, 2049))
    with pytest.raises(
        ValueError,
        match=r"t10k-images-idx3-ubyte(\.gz)? is truncated: .*need 5488 .*found 5388",
    ):
        load_mnist(split="test", data_home=tmp_path, download=False)


def test_truncated_header(tmp_path):
    images, labels = _small()
    _, lab_path = _write(tmp_path / "mnist", "train", images, labels)
    lab_path.write_bytes(lab_path.read_bytes()[:6])
    with pytest.raises(ValueError, match=r"labels-idx1-ubyte is truncated: .*header"):
        load_mnist(data_home=tmp_path, download=False)


def test_trailing_bytes(tmp_path):
    images, labels = _small()
    _, lab_path = _write(tmp_path / "mnist", "train", images, labels)
    lab_path.write_bytes(lab_path.read_bytes() + b"\x00")
    with pytest.raises(ValueError, match=r"longer than its header says"):
        load_mnist(data_home=tmp_path, download=False)


def test_count_mismatch(tmp_path):
    images, labels = _small(n=7)
    _write(tmp_path / "mnist", "train", images, labels[:6])
    with pytest.raises(
        ValueError, match=r"holds 7 images but .*train-labels-idx1-ubyte holds 6"
    ):
        load_mnist(data_home=tmp_path, download=False)


def test_wrong_image_size(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    images = np.zeros((2, 27, 28), dtype=np.uint8)
    (folder / "t10k-images-idx3-ubyte").write_bytes(_idx_bytes(images, 2051))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(
        _idx_bytes(np.zeros(2, np.uint8), 2049)
    )
    with pytest.raises(ValueError, match=r"are 27 x 28 pixels; expected 28 x 28"):
        load_mnist(split="test", data_home=tmp_path, download=False)


def test_label_out_of_range(tmp_path):
    images, labels = _small()
    labels[3] = 10
    _write(tmp_path / "mnist", "train", images, labels)
    with pytest.raises(ValueError, match=r"must be 0-9; found 10"):
        load_mnist(data_home=tmp_path, download=False)


@pytest.mark.parametrize("cut", ["garbage", "truncated"])
def test_corrupt_gzip(tmp_path, cut):
    images, labels = _small()
    img_path, _ = _write(tmp_path / "mnist", "train", images, labels, gz=True)
    data = img_path.read_bytes()
    data = b"not a gzip stream" if cut == "garbage" else data[: len(data) // 2]
    img_path.write_bytes(data)
    with pytest.raises(
        ValueError, match=r"train-images-idx3-ubyte\.gz is not a valid gzip file"
    ):
        load_mnist(data_home=tmp_path, download=False)


# ------------------------------------------------------ missing, bad arguments


def test_missing_without_download(tmp_path):
    images, labels = _small()
    _, lab_path = _write(tmp_path / "mnist", "test", images, labels)
    with pytest.raises(FileNotFoundError) as excinfo:
        load_mnist(split="train", data_home=tmp_path, download=False)
    message = str(excinfo.value)
    assert "train-images-idx3-ubyte, train-labels-idx1-ubyte" in message
    assert str(tmp_path / "mnist") in message
    assert "SKPART_DATA" in message and "download=True" in message
    lab_path.unlink()
    with pytest.raises(FileNotFoundError, match=r"file\(s\) t10k-labels-idx1-ubyte "):
        load_mnist(split="test", data_home=tmp_path, download=False)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "emnist"}, r"kind must be one of \('mnist', 'fashion'\), got 'emn"),
        ({"split": "val"}, r"split must be one of \('train', 'test'\), got 'val'"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_mnist(data_home=tmp_path, download=False, **kwargs)


# ----------------------------------------------------------------- data home


def test_get_data_home(tmp_path, monkeypatch):
    target = tmp_path / "a" / "b"
    assert get_data_home(target) == str(target)
    assert target.is_dir()
    monkeypatch.setenv("SKPART_DATA", str(tmp_path / "env"))
    assert get_data_home() == str(tmp_path / "env")
    assert (tmp_path / "env").is_dir()
    monkeypatch.delenv("SKPART_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert get_data_home() == str(tmp_path / "home" / "skpart_data")
    assert (tmp_path / "home" / "skpart_data").is_dir()
    assert get_data_home("~/x") == str(tmp_path / "home" / "x")


# ------------------------------------------------------------------ download


class FakeOpener:
    """Serve bytes by URL; record the URLs asked for; raise URLError otherwise."""

    def __init__(self, served):
        self.served = served
        self.calls = []

    def __call__(self, url, timeout):
        self.calls.append(url)
        if url not in self.served:
            raise urllib.error.URLError("offline")
        return io.BytesIO(self.served[url])


def _small_gz_table(monkeypatch, split="train", kind="mnist"):
    """Serve small synthetic gz files; register their gz MD5s as the known ones."""
    images, labels = _small()
    served = {}
    for name, array, magic in zip(
        NAMES[split], (images, labels), (2051, 2049), strict=True
    ):
        data = gzip.compress(_idx_bytes(array, magic), mtime=0)
        served[name] = data
        monkeypatch.setitem(
            _mnist._CHECKSUMS[kind],
            name,
            {"gz": (hashlib.md5(data).hexdigest(),), "raw": None},
        )
    return images, labels, served


def test_download_success_and_mirror_fallback(tmp_path, monkeypatch):
    images, labels, served = _small_gz_table(monkeypatch)
    second = _mnist._MIRRORS["mnist"][1]
    opener = FakeOpener({second + name + ".gz": data for name, data in served.items()})
    monkeypatch.setattr(_mnist, "_urlopen", opener)
    X, y = load_mnist(data_home=tmp_path)
    np.testing.assert_array_equal(X, images.reshape(7, -1) / np.float32(255))
    np.testing.assert_array_equal(y, labels)
    # The first mirror was tried first for each file, then the second.
    first = _mnist._MIRRORS["mnist"][0]
    assert opener.calls == [
        first + "train-images-idx3-ubyte.gz",
        second + "train-images-idx3-ubyte.gz",
        first + "train-labels-idx1-ubyte.gz",
        second + "train-labels-idx1-ubyte.gz",
    ]
    # Files are stored as served, and nothing else (no temporary files).
    folder = tmp_path / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
    assert (folder / "train-images-idx3-ubyte.gz").read_bytes() == served[
        "train-images-idx3-ubyte"
    ]
    # A second call reads the cache and does not open any URL.
    opener.calls.clear()
    X2, _ = load_mnist(data_home=tmp_path)
    np.testing.assert_array_equal(X2, X)
    assert opener.calls == []


def test_download_only_missing_file(tmp_path, monkeypatch):
    _, labels, served = _small_gz_table(monkeypatch, split="test")
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(labels, 2049))
    first = _mnist._MIRRORS["mnist"][0]
    opener = FakeOpener({first + n + ".gz": d for n, d in served.items()})
    monkeypatch.setattr(_mnist, "_urlopen", opener)
    _, y = load_mnist(split="test", data_home=tmp_path)
    assert opener.calls == [first + "t10k-images-idx3-ubyte.gz"]
    np.testing.assert_array_equal(y, labels)


def test_download_fashion(tmp_path, monkeypatch):
    _, labels, served = _small_gz_table(monkeypatch, split="test", kind="fashion")
    mirror = _mnist._MIRRORS["fashion"][0]
    opener = FakeOpener({mirror + n + ".gz": d for n, d in served.items()})
    monkeypatch.setattr(_mnist, "_urlopen", opener)
    bunch = load_mnist(
        kind="fashion", split="test", data_home=tmp_path, return_X_y=False
    )
    np.testing.assert_array_equal(bunch.target, labels)
    assert (tmp_path / "fashion" / "t10k-images-idx3-ubyte.gz").is_file()
    assert not (tmp_path / "mnist").exists()


@needs_shared
@pytest.mark.parametrize("recompress", [False, True])
def test_download_real_checksums(tmp_path, monkeypatch, recompress):
    """The hard-coded table accepts the real files, however they are gzipped."""
    served = {}
    for name in NAMES["test"]:
        data = (SHARED / "mnist" / f"{name}.gz").read_bytes()
        if recompress:  # as a mirror serving the original 1998 .gz would
            data = gzip.compress(gzip.decompress(data), 1, mtime=912345678)
        served[_mnist._MIRRORS["mnist"][0] + name + ".gz"] = data
    monkeypatch.setattr(_mnist, "_urlopen", FakeOpener(served))
    X, y = load_mnist(split="test", data_home=tmp_path)
    assert X.shape == (10000, 784)
    assert y[0] == 7


def test_download_checksum_mismatch(tmp_path, monkeypatch):
    _, _, served = _small_gz_table(monkeypatch)
    bad = gzip.compress(b"tampered")
    opener = FakeOpener(
        {m + n + ".gz": bad for m in _mnist._MIRRORS["mnist"] for n in served}
    )
    monkeypatch.setattr(_mnist, "_urlopen", opener)
    expected = hashlib.md5(bad).hexdigest()
    with pytest.raises(
        ValueError, match=rf"has MD5 {expected}, which matches no known checksum"
    ):
        load_mnist(data_home=tmp_path)
    assert list((tmp_path / "mnist").iterdir()) == []


def test_download_checksum_mismatch_then_good_mirror(tmp_path, monkeypatch):
    images, _, served = _small_gz_table(monkeypatch)
    first, second = _mnist._MIRRORS["mnist"]
    table = {first + n + ".gz": b"tampered" for n in served}
    table.update({second + n + ".gz": d for n, d in served.items()})
    monkeypatch.setattr(_mnist, "_urlopen", FakeOpener(table))
    X, _ = load_mnist(data_home=tmp_path)
    np.testing.assert_array_equal(X, images.reshape(7, -1) / np.float32(255))


def test_download_offline(tmp_path, monkeypatch):
    opener = FakeOpener({})
    monkeypatch.setattr(_mnist, "_urlopen", opener)
    with pytest.raises(
        ConnectionError, match=r"Could not download train-images-idx3-ubyte\.gz.*offl"
    ) as excinfo:
        load_mnist(data_home=tmp_path)
    assert isinstance(excinfo.value, OSError)
    assert "place them in " + str(tmp_path / "mnist") in str(excinfo.value)
    assert len(opener.calls) == len(_mnist._MIRRORS["mnist"])
    assert list((tmp_path / "mnist").iterdir()) == []
