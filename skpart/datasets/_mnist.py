"""Loader for MNIST and Fashion-MNIST in their canonical IDX format."""

import gzip
import hashlib
import os
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

_KINDS = ("mnist", "fashion")
_SPLITS = ("train", "test")
_PREFIX = {"train": "train", "test": "t10k"}
_IMAGE_MAGIC = 0x00000803  # 2051: unsigned bytes, 3 dimensions
_LABEL_MAGIC = 0x00000801  # 2049: unsigned bytes, 1 dimension
_SHAPE = (28, 28)

_MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

# Known MD5 checksums of each file. "gz" holds digests of whole ``.gz`` files
# known to be good; "raw" is the digest of the decompressed IDX payload, which
# does not depend on how (or when) the file was gzip-compressed. A download is
# accepted when either matches. MNIST: "gz" are the digests of the copies in the
# project's shared test data (recompressed, gzip mtime 0), "raw" the digests of
# the original IDX files (shared data README, verified against the files).
# Fashion-MNIST: the ``.gz`` digests published by Zalando Research.
_CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte": {
            "gz": ("56f11203c65dcbeead45b51e76a4d637",),
            "raw": "6bbc9ace898e44ae57da46a324031adb",
        },
        "train-labels-idx1-ubyte": {
            "gz": ("e7b6794769634574359eea14a747abe8",),
            "raw": "a25bea736e30d166cdddb491f175f624",
        },
        "t10k-images-idx3-ubyte": {
            "gz": ("a3ecf3149c20433655c67fbfd8a8d3a4",),
            "raw": "2646ac647ad5339dbf082846283269ea",
        },
        "t10k-labels-idx1-ubyte": {
            "gz": ("4134d8bfaa6f217c1c831e48c83339aa",),
            "raw": "27ae3e4e09519cfbb04c329615203637",
        },
    },
    "fashion": {
        "train-images-idx3-ubyte": {
            "gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d",),
            "raw": None,
        },
        "train-labels-idx1-ubyte": {
            "gz": ("25c81989df183df01b3e8a0aad5dffbe",),
            "raw": None,
        },
        "t10k-images-idx3-ubyte": {
            "gz": ("bef4ecab320f06d8554ea6380940ec79",),
            "raw": None,
        },
        "t10k-labels-idx1-ubyte": {
            "gz": ("bb300cfdad3c16e7a12a480ee83cd310",),
            "raw": None,
        },
    },
}

_FASHION_NAMES = (
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
)

_DESCR = {
    "mnist": (
        "MNIST handwritten digits\n"
        "------------------------\n\n"
        "70 000 grey-scale images of handwritten digits 0-9, 28 x 28 pixels "
        "(60 000 train, 10 000 test), by Y. LeCun, C. Cortes and C. J. C. "
        "Burges.\nPixels are scaled from 0-255 to [0, 1] as float32.\n"
    ),
    "fashion": (
        "Fashion-MNIST\n"
        "-------------\n\n"
        "70 000 grey-scale images of Zalando articles in 10 classes, "
        "28 x 28 pixels (60 000 train, 10 000 test), by H. Xiao, K. Rasul and "
        "R. Vollgraf (2017), arXiv:1708.07747.\nPixels are scaled from 0-255 to "
        "[0, 1] as float32.\n"
    ),
}

_CHUNK = 1 << 16
_TIMEOUT = 30


def get_data_home(data_home=None):
    """Return the folder where skpart keeps its data sets, creating it if needed.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The folder to use. By default the environment variable ``SKPART_DATA``
        is used if set, else ``~/skpart_data``. A leading ``~`` is expanded.

    Returns
    -------
    data_home : str
        The path of the data folder.

    Examples
    --------
    >>> from skpart.datasets import get_data_home
    >>> get_data_home("/tmp/skpart_data")  # doctest: +SKIP
    '/tmp/skpart_data'
    """
    if data_home is None:
        data_home = os.environ.get("SKPART_DATA", os.path.join("~", "skpart_data"))
    data_home = os.path.expanduser(os.fspath(data_home))
    os.makedirs(data_home, exist_ok=True)
    return data_home


def load_mnist(
    *, kind="mnist", split="train", data_home=None, download=True, return_X_y=True
):
    """Load MNIST or Fashion-MNIST from the canonical IDX files.

    The four files of each data set (``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``) are read from ``data_home/mnist/`` or
    ``data_home/fashion/``, either uncompressed or gzip-compressed (``.gz``);
    when both forms exist the uncompressed one is read. Missing files are
    downloaded from the canonical mirrors if ``download=True``.

    =================   ======================
    Classes             10
    Samples (train)     60 000
    Samples (test)      10 000
    Features            784 (28 x 28 pixels)
    Feature values      float32 in [0, 1]
    =================   ======================

    Parameters
    ----------
    kind : {"mnist", "fashion"}, default="mnist"
        Handwritten digits (MNIST) or Zalando articles (Fashion-MNIST).

    split : {"train", "test"}, default="train"
        The 60 000 training images or the 10 000 test images.

    data_home : str or path-like, default=None
        The data folder; see :func:`get_data_home`. By default the environment
        variable ``SKPART_DATA``, else ``~/skpart_data``.

    download : bool, default=True
        If True, download the files that are missing (and only those), checking
        their MD5 checksums. If False, raise :class:`FileNotFoundError` when a
        file is missing.

    return_X_y : bool, default=True
        If True, return ``(data, target)``; otherwise a
        :class:`~sklearn.utils.Bunch`.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch` or tuple of ndarray
        If ``return_X_y=True``, the tuple ``(X, y)`` with ``X`` of shape
        ``(n_samples, 784)`` and dtype float32 (pixels divided by 255) and ``y``
        of shape ``(n_samples,)`` and dtype int64 with values 0-9. Otherwise a
        Bunch with attributes:

        data : ndarray of shape (n_samples, 784)
            The flattened images, float32 in [0, 1].
        target : ndarray of shape (n_samples,)
            The labels, int64 in 0-9.
        images : ndarray of shape (n_samples, 28, 28)
            A view of ``data`` as images.
        feature_names : list of str
            ``"pixel_0"`` to ``"pixel_783"``, in row-major order.
        target_names : ndarray of shape (10,)
            The digits 0-9 for MNIST, the class names for Fashion-MNIST.
        DESCR : str
            A description of the data set.

    Raises
    ------
    ValueError
        If ``kind`` or ``split`` is unknown, a file is not a valid IDX file
        (wrong magic number, bad dimensions, truncated, corrupt gzip stream),
        the images and labels counts differ, or a download fails its checksum.
    FileNotFoundError
        If a file is missing and ``download=False``.
    ConnectionError
        If a missing file could not be downloaded from any mirror.

    See Also
    --------
    get_data_home : The folder the data sets are read from.

    Notes
    -----
    The loader reads a local copy exactly as it reads a downloaded one: point
    ``data_home`` (or ``SKPART_DATA``) at a folder holding ``mnist/`` and/or
    ``fashion/`` sub-folders with the four files each.

    References
    ----------
    .. [1] Y. LeCun, C. Cortes and C. J. C. Burges, "The MNIST database of
       handwritten digits".
    .. [2] H. Xiao, K. Rasul and R. Vollgraf, "Fashion-MNIST: a Novel Image
       Dataset for Benchmarking Machine Learning Algorithms", arXiv:1708.07747,
       2017.

    Examples
    --------
    >>> from skpart.datasets import load_mnist
    >>> X, y = load_mnist(split="test")  # doctest: +SKIP
    >>> X.shape, X.dtype, y.shape  # doctest: +SKIP
    ((10000, 784), dtype('float32'), (10000,))
    >>> bunch = load_mnist(kind="fashion", return_X_y=False)  # doctest: +SKIP
    >>> bunch.images.shape, bunch.target_names[0]  # doctest: +SKIP
    ((60000, 28, 28), 'T-shirt/top')
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}.")
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}.")

    home = get_data_home(data_home)
    folder = Path(home) / kind
    images_name = f"{_PREFIX[split]}-images-idx3-ubyte"
    labels_name = f"{_PREFIX[split]}-labels-idx1-ubyte"

    paths = {}
    missing = []
    for name in (images_name, labels_name):
        path = _find(folder, name)
        if path is None:
            missing.append(name)
        else:
            paths[name] = path
    if missing and not download:
        raise FileNotFoundError(
            f"{kind} file(s) {', '.join(missing)} (or .gz) not found in {folder}. "
            f"Place the {kind} IDX files in that folder, point data_home (or the "
            "SKPART_DATA environment variable) at a folder holding a "
            f"'{kind}/' sub-folder with them, or pass download=True."
        )
    for name in missing:
        paths[name] = _download(kind, name, folder)

    images = _read_idx(paths[images_name], _IMAGE_MAGIC)
    labels = _read_idx(paths[labels_name], _LABEL_MAGIC)
    if images.shape[1:] != _SHAPE:
        raise ValueError(
            f"Images in {paths[images_name]} are {images.shape[1]} x "
            f"{images.shape[2]} pixels; expected 28 x 28."
        )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{paths[images_name]} holds {images.shape[0]} images but "
            f"{paths[labels_name]} holds {labels.shape[0]} labels."
        )
    if labels.size and labels.max() > 9:
        raise ValueError(
            f"Labels in {paths[labels_name]} must be 0-9; found {labels.max()}."
        )

    X = images.reshape(images.shape[0], _SHAPE[0] * _SHAPE[1]).astype(np.float32)
    X /= np.float32(255)
    y = labels.astype(np.int64)
    if return_X_y:
        return X, y

    target_names = (
        np.array(_FASHION_NAMES) if kind == "fashion" else np.arange(10, dtype=np.int64)
    )
    return Bunch(
        data=X,
        target=y,
        images=X.reshape(-1, *_SHAPE),
        feature_names=[f"pixel_{i}" for i in range(X.shape[1])],
        target_names=target_names,
        DESCR=_DESCR[kind],
    )


def _find(folder, name):
    """Return the path of ``name`` (preferred) or ``name.gz`` in folder, or None."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_bytes(path):
    """Return the content of ``path``, decompressed if it ends in ``.gz``."""
    data = Path(path).read_bytes()
    if Path(path).suffix != ".gz":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path} is not a valid gzip file: {exc}") from exc


def _read_idx(path, magic):
    """Parse the IDX file at ``path`` into a uint8 array, checking its header."""
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path} is too short to be an IDX file ({len(data)} bytes).")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(
            f"{path} has magic number {found} (0x{found:08x}); expected {magic} "
            f"(0x{magic:08x}). Is it the right file, and uncompressed when not "
            "named .gz?"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path} is truncated: its IDX header is incomplete.")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64))
    payload = len(data) - header
    if payload != expected:
        state = "truncated" if payload < expected else "longer than its header says"
        raise ValueError(
            f"{path} is {state}: dimensions {dims} need {expected} bytes of data, "
            f"found {payload}."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _urlopen(url, timeout):
    """Open ``url``; a separate function so that tests can replace it."""
    return urllib.request.urlopen(url, timeout=timeout)


def _download(kind, name, folder):
    """Download ``name.gz`` of ``kind`` into ``folder``, verified; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.gz"
    checksums = _CHECKSUMS[kind][name]
    errors = []
    mismatch = None
    for mirror in _MIRRORS[kind]:
        url = f"{mirror}{name}.gz"
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
        try:
            digest = hashlib.md5()
            with os.fdopen(fd, "wb") as out, _urlopen(url, timeout=_TIMEOUT) as resp:
                while chunk := resp.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            if not _verified(tmp, digest.hexdigest(), checksums):
                mismatch = (url, digest.hexdigest())
                continue
            os.replace(tmp, target)
            return target
        except OSError as exc:  # URLError, HTTPError, timeouts, disk errors
            errors.append(f"{url}: {exc}")
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    if mismatch is not None:
        raise ValueError(
            f"The file downloaded from {mismatch[0]} has MD5 {mismatch[1]}, which "
            f"matches no known checksum of {name}.gz ({', '.join(checksums['gz'])}); "
            "it was deleted. Try again later or place the files in "
            f"{folder} yourself."
        )
    raise ConnectionError(
        f"Could not download {name}.gz for {kind} ({'; '.join(errors)}). "
        f"Download the files by hand and place them in {folder}, or point "
        "data_home (or SKPART_DATA) at a folder that holds them."
    )


def _verified(path, gz_md5, checksums):
    """Whether a downloaded ``.gz`` file matches a known checksum."""
    if gz_md5 in checksums["gz"]:
        return True
    if checksums["raw"] is None:
        return False
    try:
        raw = gzip.decompress(Path(path).read_bytes())
    except (OSError, EOFError, zlib.error):
        return False
    return hashlib.md5(raw).hexdigest() == checksums["raw"]
