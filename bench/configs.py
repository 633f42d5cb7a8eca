"""The benchmark configurations and their problems: initial weights, feedback and minibatches.

Both implementations see the same tensors. Weights are drawn in float64 on the CPU from a seeded
generator and then cast and moved, so a seed gives the same network on every device; minibatches
are random inputs with random targets of the right shape (Gaussian targets for mse, uniform class
labels for cross-entropy), drawn on the device itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

Batch = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class Config:
    name: str
    sizes: tuple[int, ...]  # d_0 .. d_L
    activation: str
    loss: str  # "mse" or "cross_entropy"
    steps: int  # N inner steps per outer step
    batch: int  # n examples per minibatch
    lr: float  # inner SGD learning rate

    def describe(self) -> str:
        layers = "-".join(map(str, self.sizes))
        return f"{layers} {self.activation} {self.loss} N={self.steps} batch={self.batch}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


CONFIGS: dict[str, Config] = {
    "S": Config("S", (30, 20, 10), "linear", "mse", steps=100, batch=32, lr=0.01),
    "M": Config("M", (784, 256, 256, 10), "tanh", "cross_entropy", steps=50, batch=64, lr=0.1),
    "L": Config("L", (784, 1000, 10), "sigmoid", "cross_entropy", steps=20, batch=100, lr=0.1),
}


@dataclass
class Problem:
    """One unroll's inputs. Tensors may carry leading member axes (a population)."""

    weights: list[Tensor]  # W_l (..., d_l, d_{l-1})
    biases: list[Tensor]  # b_l (..., d_l)
    feedback: list[Tensor]  # B_l (..., d_{l-1}, d_l), requires_grad
    batches: Sequence[Batch]  # x (..., n, d_0), y (..., n, d_L) or class indices (..., n)

    @property
    def params(self) -> list[tuple[Tensor, Tensor]]:
        return list(zip(self.weights, self.biases, strict=True))


def _uniform(shape: Sequence[int], bound: float, gen: torch.Generator) -> Tensor:
    return (torch.rand(*shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def draw_batch(
    cfg: Config, gen: torch.Generator, lead: tuple[int, ...], device: torch.device, dtype: torch.dtype
) -> Batch:
    """Random inputs x (*lead, n, d_0) and random targets of the shape the loss wants."""
    n, d_in, d_out = cfg.batch, cfg.sizes[0], cfg.sizes[-1]
    x = torch.randn(*lead, n, d_in, generator=gen, device=device, dtype=dtype)
    if cfg.loss == "mse":
        y = torch.randn(*lead, n, d_out, generator=gen, device=device, dtype=dtype)
    else:
        y = torch.randint(d_out, (*lead, n), generator=gen, device=device)
    return x, y


class LazyBatches(Sequence[Batch]):
    """Minibatch t made on demand from a generator seeded by (seed, t): nothing is held, and a
    recomputed segment (gradient checkpointing) sees exactly the data the forward pass saw."""

    def __init__(
        self,
        cfg: Config,
        steps: int,
        device: torch.device,
        dtype: torch.dtype,
        seed: int = 0,
        lead: tuple[int, ...] = (),
    ) -> None:
        self.cfg, self.steps, self.device, self.dtype = cfg, steps, device, dtype
        self.seed, self.lead = seed, lead

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, t: int) -> Batch:  # type: ignore[override]
        if not 0 <= t < self.steps:
            raise IndexError(f"minibatch {t} of a stream of {self.steps}")
        gen = _generator(self.device, (self.seed << 32) + t)
        return draw_batch(self.cfg, gen, self.lead, self.device, self.dtype)


def make_problem(
    cfg: Config,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    *,
    seed: int = 0,
    steps: int | None = None,
    members: int | None = None,
    lazy: bool = False,
) -> Problem:
    """Weights (U[-1/sqrt(fan_in), 1/sqrt(fan_in)], zero biases), feedback (U[-1/sqrt(d_l), ..]) and
    `steps` minibatches (default cfg.steps), precomputed as a list unless lazy. members: a leading
    population axis of that size on every tensor (independent draws per member)."""
    steps = cfg.steps if steps is None else steps
    lead = () if members is None else (members,)
    gen = torch.Generator().manual_seed(seed)
    weights, biases, feedback = [], [], []
    for fan_in, fan_out in zip(cfg.sizes[:-1], cfg.sizes[1:], strict=False):
        weights.append(_uniform((*lead, fan_out, fan_in), 1 / math.sqrt(fan_in), gen))
        biases.append(torch.zeros(*lead, fan_out, dtype=torch.float64))
    for d_prev, d_l in zip(cfg.sizes[1:-1], cfg.sizes[2:], strict=False):
        feedback.append(_uniform((*lead, d_prev, d_l), 1 / math.sqrt(d_l), gen))

    def move(ts: list[Tensor]) -> list[Tensor]:
        return [t.to(device=device, dtype=dtype) for t in ts]

    batches: Sequence[Batch]
    if lazy:
        batches = LazyBatches(cfg, steps, device, dtype, seed, lead)
    else:
        data = _generator(device, seed)
        batches = [draw_batch(cfg, data, lead, device, dtype) for _ in range(steps)]
    return Problem(move(weights), move(biases), [b.requires_grad_() for b in move(feedback)], batches)
