"""Tiny float64 problems (a few units, a few steps) shared by the library tests."""

from __future__ import annotations

import torch


def tiny_params(sizes, seed=0, dtype=torch.float64, scale=0.5):
    gen = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(b, a, generator=gen, dtype=dtype) * scale,
            torch.randn(b, generator=gen, dtype=dtype) * 0.1,
        )
        for a, b in zip(sizes[:-1], sizes[1:], strict=False)
    ]


def tiny_feedback(sizes, seed=1, dtype=torch.float64, steps=None):
    gen = torch.Generator().manual_seed(seed)
    shape = lambda a, b: (a, b) if steps is None else (steps, a, b)  # noqa: E731
    return [
        torch.randn(*shape(a, b), generator=gen, dtype=dtype) * 0.5
        for a, b in zip(sizes[1:-1], sizes[2:], strict=False)
    ]


def tiny_batches(sizes, steps, n=5, seed=2, classes=False, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        x = torch.randn(n, sizes[0], generator=gen, dtype=dtype)
        y = (
            torch.randint(sizes[-1], (n,), generator=gen)
            if classes
            else torch.randn(n, sizes[-1], generator=gen, dtype=dtype)
        )
        out.append((x, y))
    return out
