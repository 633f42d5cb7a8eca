"""Hidden-layer nonlinearities f and their derivatives f', written as plain differentiable tensor code.

The derivative is expressed through the activation's own output where that is cheaper
(tanh' = 1 - h^2, sigmoid' = h (1 - h)), so the inner step never recomputes f.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Derivative = Callable[[Tensor, Tensor], Tensor] | None  # (a, h) -> f'(a); None means f' = 1

ACTIVATIONS: dict[str, tuple[Callable[[Tensor], Tensor], Derivative]] = {
    "linear": (lambda a: a, None),
    "tanh": (torch.tanh, lambda a, h: 1 - h * h),
    "sigmoid": (torch.sigmoid, lambda a, h: h * (1 - h)),
    # relu' is a step: its meta-gradient is exact almost everywhere but not smooth.
    "relu": (torch.relu, lambda a, h: (a > 0).to(a.dtype)),
    "softplus": (torch.nn.functional.softplus, lambda a, h: torch.sigmoid(a)),
}


def activation(name: str) -> tuple[Callable[[Tensor], Tensor], Derivative]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None
