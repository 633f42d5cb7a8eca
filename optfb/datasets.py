"""Fixed data sets as (train, validation, test) splits of float inputs and integer class labels.

digits: the 8x8 digits that scikit-learn ships (1797 images, pixel values / 16), split once with a
fixed permutation into 1257 train / 180 validation / 360 test. mnist: the four standard IDX files
(plain or .gz) from $OPTFB_DATA_DIR/mnist or $OPTFB_DATA_DIR (pixels / 255); the last 5000 training
images are the validation split (a tenth for files of 10000 images or fewer). The validation split
serves the "final" meta-objective, so that test accuracy is never meta-trained on.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from optfb.idx import read_idx

MNIST_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


class Split(NamedTuple):
    x: np.ndarray  # (m, d) float64
    y: np.ndarray  # (m,) int64


class Dataset(NamedTuple):
    train: Split
    validation: Split
    test: Split


def data_dir() -> Path:
    return Path(os.environ.get("OPTFB_DATA_DIR", "data"))


@functools.lru_cache(maxsize=2)
def digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.data.astype(np.float64) / 16.0
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    test, val, train = order[:360], order[360:540], order[540:]
    return Dataset(Split(x[train], y[train]), Split(x[val], y[val]), Split(x[test], y[test]))


def _find(folder: Path, stem: str) -> Path:
    for candidate in (folder / "mnist", folder):
        for name in (stem, stem + ".gz"):
            if (candidate / name).is_file():
                return candidate / name
    raise FileNotFoundError(
        f"MNIST file {stem}[.gz] not found in {folder / 'mnist'} or {folder}; put the four standard "
        f"IDX files ({', '.join(MNIST_FILES.values())}) there or set OPTFB_DATA_DIR"
    )


def mnist(folder: Path | None = None) -> Dataset:
    folder = data_dir() if folder is None else folder
    return _mnist(folder.resolve())


@functools.lru_cache(maxsize=2)
def _mnist(folder: Path) -> Dataset:
    arrays = {key: read_idx(_find(folder, stem)) for key, stem in MNIST_FILES.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_x"], arrays[f"{part}_y"]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
            raise ValueError(f"MNIST {part} files have shapes {images.shape} and {labels.shape}")
    train_x = arrays["train_x"].reshape(len(arrays["train_x"]), -1).astype(np.float64) / 255.0
    train_y = arrays["train_y"].astype(np.int64)
    test = Split(
        arrays["test_x"].reshape(len(arrays["test_x"]), -1).astype(np.float64) / 255.0,
        arrays["test_y"].astype(np.int64),
    )
    # The standard 55000 / 5000 split; small files (tests, subsets) keep a tenth for validation.
    cut = len(train_x) - 5000 if len(train_x) > 10000 else max(1, len(train_x) * 9 // 10)
    return Dataset(Split(train_x[:cut], train_y[:cut]), Split(train_x[cut:], train_y[cut:]), test)


def load(kind: str) -> Dataset:
    if kind == "digits":
        return digits()
    if kind == "mnist":
        return mnist()
    raise ValueError(f"{kind!r} is not a data set task")
