"""Inner optimisers as pure functions: (params, slots, grads, step) -> (params, slots).

Params and slots are flat tuples of tensors, so the inner state can be checkpointed, batched over
a population and recomputed segment by segment. Every update is differentiable in the gradients
(and so in B). Slots: sgd none; momentum one velocity per parameter; adam (m..., v...).

    sgd:       p <- p - lr (g + wd p)
    momentum:  v <- mu v + g';  p <- p - lr v   (Nesterov: p <- p - lr (g' + mu v)),  g' = g + wd p
    adam:      m <- b1 m + (1-b1) g';  v <- b2 v + (1-b2) g'^2;
               p <- p - lr m_hat / (sqrt(v_hat) + eps),  bias-corrected at step t = 1, 2, ...
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

Tensors = tuple[Tensor, ...]
OPTIMIZERS = ("sgd", "momentum", "adam")


@dataclass(frozen=True)
class InnerOptimizer:
    name: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"unknown inner optimizer {self.name!r}; choose one of {OPTIMIZERS}")

    def init(self, params: Tensors) -> Tensors:
        copies = {"sgd": 0, "momentum": 1, "adam": 2}[self.name]
        return tuple(torch.zeros_like(p) for _ in range(copies) for p in params)

    def update(self, params: Tensors, slots: Tensors, grads: Tensors, step: int) -> tuple[Tensors, Tensors]:
        """One update; step counts from 1 (Adam's bias correction).

        Each line is one fused kernel per tensor (add with alpha, lerp, addcdiv): the unrolled
        step is the hot loop, and every op here is also a node that the meta-backward walks.
        """
        if self.weight_decay:
            grads = tuple(
                torch.add(g, p, alpha=self.weight_decay) for g, p in zip(grads, params, strict=True)
            )
        if self.name == "sgd":
            return tuple(torch.add(p, g, alpha=-self.lr) for p, g in zip(params, grads, strict=True)), slots
        if self.name == "momentum":
            mu = self.momentum
            velocity = tuple(torch.add(g, v, alpha=mu) for v, g in zip(slots, grads, strict=True))
            direction = (
                tuple(torch.add(g, v, alpha=mu) for g, v in zip(grads, velocity, strict=True))
                if self.nesterov
                else velocity
            )
            return tuple(
                torch.add(p, d, alpha=-self.lr) for p, d in zip(params, direction, strict=True)
            ), velocity
        return self._adam(params, slots, grads, step)

    def _adam(self, params: Tensors, slots: Tensors, grads: Tensors, step: int) -> tuple[Tensors, Tensors]:
        b1, b2 = self.betas
        half = len(params)
        m = tuple(torch.lerp(m_, g, 1 - b1) for m_, g in zip(slots[:half], grads, strict=True))
        v = tuple(
            torch.addcmul(v_ * b2, g, g, value=1 - b2) for v_, g in zip(slots[half:], grads, strict=True)
        )
        c1, c2 = 1 - b1**step, 1 - b2**step
        # sqrt has an infinite derivative at 0, and a gradient entry that is exactly zero (a dead
        # relu unit) would turn the meta-gradient into 0 * inf = NaN; the floor is far below eps.
        tiny = torch.finfo(params[0].dtype).tiny
        new = tuple(
            torch.addcdiv(p, m_, (v_ / c2).clamp_min(tiny).sqrt().add(self.eps), value=-self.lr / c1)
            for p, m_, v_ in zip(params, m, v, strict=True)
        )
        return new, m + v
