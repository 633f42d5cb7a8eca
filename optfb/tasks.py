"""Tasks: for K population members, a stream of minibatches, a held-out batch and a test set.

A Problem's tensors carry a leading member axis: batches[t] is (x (K, n, d_0), y (K, n, d_L) or
class indices (K, n)). Minibatches are made lazily in chunks of CHUNK steps from a generator keyed
by (seed, chunk), so a stream of any length costs O(CHUNK) memory and a recomputed segment (gradient
checkpointing) sees exactly the same data.

    linear_teacher:    y = T x (+ noise), T ~ U[-1, 1] (d_L, d_0), x ~ N(0, I)   (Lillicrap et al.)
    nonlinear_teacher: y = g(x) (+ noise), g a random tanh network, weights ~ N(0, 1 / fan_in)
    digits, mnist:     shuffled epochs over the training split; held-out = validation split
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from optfb import datasets
from optfb.init import initial_params
from optfb.seeding import generator
from optfb.spec import ExperimentSpec

CHUNK = 32
TEACHER_TEST_SIZE = 1000

Batch = tuple[Tensor, Tensor]


class BatchStream(Sequence[Batch]):
    """Minibatches 0..steps-1 made CHUNK at a time by make_chunk(c) -> (x (C, K, ...), y (C, K, ...))."""

    def __init__(self, steps: int, make_chunk: Callable[[int], Batch]) -> None:
        self.steps = steps
        self._make_chunk = functools.lru_cache(maxsize=2)(make_chunk)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, t: int) -> Batch:  # type: ignore[override]
        if not 0 <= t < self.steps:
            raise IndexError(f"minibatch {t} of a stream of {self.steps}")
        x, y = self._make_chunk(t // CHUNK)
        return x[t % CHUNK], y[t % CHUNK]


class Problem:
    """A stream of minibatches, plus a held-out batch (the "final" meta-objective) and a test set
    (evaluation), each made on first use: meta-training with the "sum" objective never pays for them."""

    def __init__(self, batches: BatchStream, heldout: Callable[[], Batch], test: Callable[[], Batch]) -> None:
        self.batches = batches
        self._heldout, self._test = heldout, test

    @functools.cached_property
    def heldout(self) -> Batch:  # (K, h, d_0), targets
        return self._heldout()

    @functools.cached_property
    def test(self) -> Batch:  # (K, m, d_0), targets
        return self._test()


@dataclass(frozen=True)
class Draws:
    """The keys of one problem's random draws: its teacher, its data and its initial weights."""

    teacher: tuple
    data: tuple
    init: tuple


def training_draws(spec: ExperimentSpec, member_seed: int, outer_step: int) -> Draws:
    """Meta-training problem of outer step j; without resampling every step reuses step 0's draws."""
    j = outer_step if spec.task.resample else 0
    teacher = (member_seed, "train", j) if spec.task.resample else (member_seed, "fixed")
    init = (member_seed, "train-init", outer_step if spec.outer.resample_init else 0)
    return Draws(teacher, (member_seed, "train", j), init)


def evaluation_draws(spec: ExperimentSpec, seed: int) -> Draws:
    """Evaluation problem `seed`: never a meta-training draw (a fixed teacher stays the task's own)."""
    teacher = (spec.seed, "eval", seed) if spec.task.resample else (spec.seed, "fixed")
    return Draws(teacher, (spec.seed, "eval", seed), (spec.seed, "eval-init", seed))


class Task:
    """Makes Problems for one spec on one device: see the module docstring for the laws."""

    def __init__(self, spec: ExperimentSpec, device: torch.device, dtype: torch.dtype) -> None:
        self.spec, self.device, self.dtype = spec, device, dtype
        self.kind = spec.task.kind
        self.data = datasets.load(self.kind) if self.kind in ("digits", "mnist") else None

    def problem(self, draws: Sequence[Draws], steps: int) -> Problem:
        """One problem per entry of draws, stacked on a leading member axis."""
        teacher_seeds = [d.teacher for d in draws]
        data_seeds = [d.data for d in draws]
        n = self.spec.inner.batch_size
        heldout = self.spec.outer.heldout_size or n
        if self.data is None:
            teachers = [self._teacher(generator(s, "teacher")) for s in teacher_seeds]
            draw = functools.partial(self._teacher_batch, teachers)
            return Problem(
                BatchStream(steps, lambda c: draw([(s, "chunk", c) for s in data_seeds], CHUNK, n)),
                lambda: draw([(s, "heldout") for s in data_seeds], None, heldout),
                lambda: draw([(s, "test") for s in data_seeds], None, TEACHER_TEST_SIZE),
            )
        data = self.data
        return Problem(
            BatchStream(steps, lambda c: self._dataset_chunk(data_seeds, c, n)),
            lambda: self._sample(data.validation, data_seeds, heldout),
            lambda: self._tensors(data.test, len(data_seeds)),
        )

    def initial_params(self, draws: Sequence[Draws]) -> tuple[Tensor, ...]:
        """Each problem's initial forward weights theta_0, flat (W_1, b_1, ..), member axis first."""
        net = self.spec.network
        return initial_params(
            self.spec.sizes, net.init, net.init_scale, [d.init for d in draws], self.device, self.dtype
        )

    # Teachers -------------------------------------------------------------------------------

    def _teacher(self, gen: torch.Generator) -> list[tuple[Tensor, Tensor]]:
        d_in, d_out = self.spec.task.dims
        if self.kind == "linear_teacher":
            return [
                (
                    torch.rand(d_out, d_in, generator=gen, dtype=torch.float64) * 2 - 1,
                    torch.zeros(d_out, dtype=torch.float64),
                )
            ]
        sizes = [d_in, *self.spec.task.teacher_hidden, d_out]
        return [
            (
                torch.randn(b, a, generator=gen, dtype=torch.float64) / a**0.5,
                torch.randn(b, generator=gen, dtype=torch.float64) * 0.1,
            )
            for a, b in zip(sizes[:-1], sizes[1:], strict=False)
        ]

    def _teacher_batch(
        self,
        teachers: list[list[tuple[Tensor, Tensor]]],
        keys: list[tuple],
        chunk: int | None,
        n: int,
    ) -> Batch:
        """x, y of shape (chunk, K, n, d) (or (K, n, d) when chunk is None), one generator per member."""
        d_in = self.spec.task.dims[0]
        lead = () if chunk is None else (chunk,)
        xs, ys = [], []
        for teacher, key in zip(teachers, keys, strict=True):
            gen = generator(*key)
            x = torch.randn(*lead, n, d_in, generator=gen, dtype=torch.float64)
            h = x
            for index, (w, b) in enumerate(teacher):
                h = h @ w.T + b
                if index < len(teacher) - 1:
                    h = torch.tanh(h)
            if self.spec.task.noise:
                h = h + self.spec.task.noise * torch.randn(h.shape, generator=gen, dtype=torch.float64)
            xs.append(x)
            ys.append(h)
        axis = 0 if chunk is None else 1
        return self._move(torch.stack(xs, axis)), self._move(torch.stack(ys, axis))

    # Data sets ------------------------------------------------------------------------------

    def _dataset_chunk(self, data_seeds: Sequence[object], c: int, n: int) -> Batch:
        train = self._device_split("train")
        per_epoch = max(1, train[0].shape[0] // n)
        index = []
        for seed in data_seeds:
            member = []
            for t in range(c * CHUNK, (c + 1) * CHUNK):
                epoch, pos = divmod(t, per_epoch)
                member.append(self._epoch_order(seed, epoch, train[0].shape[0])[pos * n : (pos + 1) * n])
            index.append(torch.stack(member))
        idx = torch.stack(index, 1).to(self.device)  # (C, K, n)
        return train[0][idx], train[1][idx]

    @functools.lru_cache(maxsize=256)  # noqa: B019 - a Task lives for one run
    def _epoch_order(self, seed: object, epoch: int, size: int) -> Tensor:
        gen = generator(seed, "epoch", epoch)
        if size < self.spec.inner.batch_size:  # fewer examples than one batch: draw with replacement
            return torch.randint(size, (self.spec.inner.batch_size,), generator=gen)
        return torch.randperm(size, generator=gen)

    @functools.lru_cache(maxsize=4)  # noqa: B019
    def _device_split(self, name: str) -> Batch:
        assert self.data is not None
        split = getattr(self.data, name)
        return self._move(torch.from_numpy(split.x)), torch.from_numpy(split.y).to(self.device)

    def _sample(self, split: datasets.Split, data_seeds: Sequence[object], n: int) -> Batch:
        picks = [torch.randint(len(split.y), (n,), generator=generator(s, "heldout")) for s in data_seeds]
        idx = torch.stack(picks)
        return self._move(torch.from_numpy(split.x)[idx]), torch.from_numpy(split.y)[idx].to(self.device)

    def _tensors(self, split: datasets.Split, members: int) -> Batch:
        x = self._move(torch.from_numpy(split.x))
        y = torch.from_numpy(split.y).to(self.device)
        return x.expand(members, *x.shape), y.expand(members, *y.shape)

    def _move(self, t: Tensor) -> Tensor:
        return t.to(device=self.device, dtype=self.dtype)
