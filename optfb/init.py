"""Initial laws: forward weights theta_0 and feedback matrices B, one CPU generator per draw.

Draws are made on the CPU in float64 and then cast and moved, so a seed gives the same network on
every device and in every dtype (up to rounding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from optfb.seeding import generator


def _draw(shape: Sequence[int], law: str, scale: float, gen: torch.Generator) -> Tensor:
    if law == "uniform":
        return (torch.rand(*shape, generator=gen, dtype=torch.float64) * 2 - 1) * scale
    if law == "normal":
        return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale
    raise ValueError(f"unknown law {law!r}; choose 'uniform' or 'normal'")


def forward_weights(
    sizes: Sequence[int], scheme: str, scale: float, gen: torch.Generator
) -> list[tuple[Tensor, Tensor]]:
    """[(W_l (d_l, d_{l-1}), b_l (d_l,))] in float64 on the CPU; biases start at zero.

    uniform: U[-scale, scale] (Lillicrap's small init); normal: N(0, scale^2); xavier:
    U[-a, a], a = sqrt(6 / (fan_in + fan_out)); kaiming: N(0, 2 / fan_in); lecun: N(0, 1 / fan_in).
    """
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=False):
        law, std = {
            "uniform": ("uniform", scale),
            "normal": ("normal", scale),
            "xavier": ("uniform", math.sqrt(6 / (fan_in + fan_out))),
            "kaiming": ("normal", math.sqrt(2 / fan_in)),
            "lecun": ("normal", math.sqrt(1 / fan_in)),
        }.get(scheme, (None, 0.0))
        if law is None:
            raise ValueError(f"unknown forward init {scheme!r}")
        params.append((_draw((fan_out, fan_in), law, std, gen), torch.zeros(fan_out, dtype=torch.float64)))
    return params


def feedback_matrices(
    sizes: Sequence[int], law: str, scale: float, fan_in: bool, gen: torch.Generator
) -> list[Tensor]:
    """[B_2..B_L], B_l (d_{l-1}, d_l) iid from the law; fan_in divides scale by sqrt(d_l)."""
    out = []
    for d_prev, d_l in zip(sizes[1:-1], sizes[2:], strict=False):
        out.append(_draw((d_prev, d_l), law, scale / math.sqrt(d_l) if fan_in else scale, gen))
    return out


def stack(members: Sequence[Sequence[Tensor]], device: torch.device, dtype: torch.dtype) -> list[Tensor]:
    """Stack per-member lists of tensors along a new leading population axis (K, ...)."""
    return [torch.stack(ts).to(device=device, dtype=dtype) for ts in zip(*members, strict=True)]


def initial_params(
    sizes: Sequence[int],
    scheme: str,
    scale: float,
    keys: Sequence[tuple],
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[Tensor, ...]:
    """Flat (W_1, b_1, .., W_L, b_L), each with a leading member axis: one draw per key."""
    members = [
        [t for pair in forward_weights(sizes, scheme, scale, generator(*key)) for t in pair] for key in keys
    ]
    return tuple(stack(members, device, dtype))
