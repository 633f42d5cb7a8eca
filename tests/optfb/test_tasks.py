"""Tasks: deterministic streams, the digits split, and the MNIST IDX loader on files written here."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from optfb import datasets
from optfb.idx import read_idx, write_idx
from optfb.spec import ExperimentSpec
from optfb.tasks import CHUNK, Task, training_draws


def _task(kind="linear_teacher", **task):
    spec = ExperimentSpec.model_validate(
        {"task": {"kind": kind, **task}, "inner": {"batch_size": 4}, "device": "cpu"}
    )
    return spec, Task(spec, torch.device("cpu"), torch.float64)


@pytest.mark.parametrize("kind", ["linear_teacher", "nonlinear_teacher", "digits"])
def test_streams_are_deterministic_and_lazy(kind):
    spec, task = _task(kind)
    draws = [training_draws(spec, s, 3) for s in (0, 1)]
    a = task.problem(draws, 3 * CHUNK + 1)
    b = task.problem(draws, 3 * CHUNK + 1)
    for t in (0, CHUNK + 5, 3 * CHUNK, 5):  # out of order: chunks are remade, not remembered
        torch.testing.assert_close(a.batches[t][0], b.batches[t][0])
    x, y = a.batches[7]
    assert x.shape == (2, 4, spec.sizes[0])
    assert not torch.equal(x[0], x[1])  # members draw their own data
    assert not torch.equal(a.batches[0][0], a.batches[1][0])
    with pytest.raises(IndexError):
        a.batches[3 * CHUNK + 1]


def test_linear_teacher_targets_are_linear_in_inputs():
    spec, task = _task("linear_teacher", input_dim=6, output_dim=2)
    problem = task.problem([training_draws(spec, 0, 0)], 2)
    x, y = problem.test
    solution = torch.linalg.lstsq(x[0], y[0]).solution
    torch.testing.assert_close(x[0] @ solution, y[0])
    assert solution.abs().max() <= 1.0  # T ~ U[-1, 1]


def test_fixed_teacher_without_resampling():
    spec, task = _task("linear_teacher", resample=False)
    first = task.problem([training_draws(spec, 0, 0)], 1)
    later = task.problem([training_draws(spec, 0, 9)], 1)
    torch.testing.assert_close(first.batches[0][1], later.batches[0][1])


def test_digits_split_and_shapes():
    data = datasets.digits()
    assert data.train.x.shape == (1257, 64) and data.test.x.shape == (360, 64)
    assert data.train.x.max() <= 1.0 and set(np.unique(data.test.y)) == set(range(10))
    spec, task = _task("digits")
    x, y = task.problem([training_draws(spec, 0, 0)], 1).batches[0]
    assert x.shape == (1, 4, 64) and y.dtype == torch.int64


def _write_mnist(folder, gz):
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for stem, count in (("train", 50), ("t10k", 20)):
        write_idx(
            folder / f"{stem}-images-idx3-ubyte{suffix}",
            rng.integers(0, 256, (count, 28, 28), dtype=np.uint8),
        )
        write_idx(folder / f"{stem}-labels-idx1-ubyte{suffix}", rng.integers(0, 10, count, dtype=np.uint8))


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_from_idx_files(tmp_path, monkeypatch, gz):
    folder = tmp_path / "mnist"
    folder.mkdir()
    _write_mnist(folder, gz)
    monkeypatch.setenv("OPTFB_DATA_DIR", str(tmp_path))
    data = datasets.mnist()
    assert data.train.x.shape == (45, 784) and data.validation.x.shape == (5, 784)
    assert data.test.x.shape == (20, 784) and 0 <= data.train.x.min() and data.train.x.max() <= 1
    if gz:
        assert gzip.open(folder / "train-labels-idx1-ubyte.gz").read(4) == b"\x00\x00\x08\x01"


def test_missing_mnist_names_the_folder_and_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTFB_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="OPTFB_DATA_DIR"):
        datasets.mnist()


def test_malformed_idx_is_refused(tmp_path):
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")
    with pytest.raises(ValueError, match="needs 13 bytes"):
        read_idx(bad)
    bad.write_bytes(b"PK\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(bad)
