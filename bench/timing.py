"""Wall-clock timing (warm-up, interleaved repeats, medians), FLOP counting and the matmul peak."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    began = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - began


def interleaved(
    fns: dict[str, Callable[[], Any]],
    device: torch.device,
    warmup: int,
    repeats: int,
    *,
    min_seconds: float = 0.0,
    max_repeats: int = 60,
) -> dict[str, list[float]]:
    """Seconds per call of each fn. The calls alternate (ABBA...) so that drift in the machine's
    load falls on every side alike; a ratio of medians then compares like with like. Fast cases
    get more repeats: at least `repeats`, and enough rounds to fill `min_seconds` (at most
    `max_repeats`), judged from the last warm-up round."""
    names = list(fns)
    round_seconds = 0.0
    for _ in range(warmup):
        round_seconds = sum(time_once(fns[name], device) for name in names)
    if round_seconds > 0 and min_seconds > 0:
        repeats = max(repeats, min(max_repeats, math.ceil(min_seconds / round_seconds)))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            times[name].append(time_once(fns[name], device))
    return times


def summary(times: list[float]) -> dict[str, Any]:
    ordered = sorted(times)
    return {
        "median_s": statistics.median(ordered),
        "min_s": ordered[0],
        "max_s": ordered[-1],
        "repeats": len(ordered),
        "times_s": times,
    }


def count_flops(fn: Callable[[], Any]) -> tuple[int, Any]:
    """Floating-point operations of one call (matmul-family ops, forward and backward), and its result."""
    with FlopCounterMode(display=False) as counter:
        out = fn()
    return int(counter.get_total_flops()), out


def matmul_peak(device: torch.device, size: int = 2048, repeats: int = 10) -> dict[str, Any]:
    """This machine's float32 matmul rate: a size x size product, best of `repeats` after warm-up."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    for _ in range(2):
        torch.mm(a, b)
    times = [time_once(lambda: torch.mm(a, b), device) for _ in range(repeats)]
    flops = 2 * size**3
    return {
        "size": size,
        "flop_per_s": flops / min(times),
        "median_flop_per_s": flops / statistics.median(times),
        "repeats": repeats,
    }
