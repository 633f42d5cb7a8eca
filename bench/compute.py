"""The compute sections: S/M/L against the baseline, the batched population, long horizons."""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch import Tensor

from bench import memory
from bench.configs import CONFIGS, Config, make_problem
from bench.steps import baseline_step, optfb_step
from bench.timing import count_flops, interleaved, summary

# What the optfb / baseline time ratio should reach on each config; printed, never asserted.
TIME_TARGETS = {"S": 0.8, "M": 1.0}
POPULATION = 64
POPULATION_TARGET = 10.0  # per-run throughput, K=64 batched over K=1
LONG_STEPS, LONG_STEPS_QUICK = 5000, 500
SQRT_GROWTH_TARGET = 400e6  # bytes of peak growth with checkpoint="sqrt"
SQRT_TIME_TARGET = 1.5  # time per inner step, sqrt over eager
EAGER_GROWTH_EXPECTED = 3.7e9  # roughly what the eager unroll keeps at N=5000


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _relative(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _side(cfg: Config, times: list[float], flops: int, peak: float, mem: dict[str, Any]) -> dict[str, Any]:
    t = summary(times)
    rate = flops / t["median_s"]
    return {
        "time": t,
        "seconds_per_outer_step": t["median_s"],
        "inner_steps_per_s": cfg.steps / t["median_s"],
        "flops_per_outer_step": flops,
        "flop_per_s": rate,
        "peak_fraction": rate / peak,
        "memory": mem,
        "peak_memory_bytes": mem.get("growth_bytes"),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _per_extra_step(short: float | None, long_: float | None, extra: int) -> float | None:
    return None if short is None or long_ is None else (long_ - short) / extra


def bench_config(
    cfg: Config, device: torch.device, peak: float, warmup: int, repeats: int, min_seconds: float = 0.0
) -> dict[str, Any]:
    """optfb.unroll against the eager baseline on the same batches: time, FLOP/s, peak memory."""

    problem = make_problem(cfg, device)
    fns = {"optfb": optfb_step(cfg, problem), "baseline": baseline_step(cfg, problem)}
    progress(f"{cfg.name}: counting FLOPs")
    counted = {name: count_flops(fn) for name, fn in fns.items()}
    (obj_o, grad_o), (obj_b, grad_b) = counted["optfb"][1], counted["baseline"][1]
    agreement = {
        "objective_rel_diff": _relative(obj_o, obj_b),
        "gradient_rel_diff": max(_relative(a, b) for a, b in zip(grad_o, grad_b, strict=True)),
    }
    progress(f"{cfg.name}: timing, interleaved, at least {repeats} repeats after {warmup} warm-up")
    times = interleaved(fns, device, warmup, repeats, min_seconds=min_seconds)
    progress(f"{cfg.name}: peak memory in fresh processes")
    mems = {name: memory.measure(cfg.name, name, device.type) for name in fns}
    sides = {
        name: _side(cfg, times[name], counted[name][0], peak, mems[name]) for name in ("optfb", "baseline")
    }
    o, b = sides["optfb"], sides["baseline"]
    ratios = {
        "time": _ratio(o["seconds_per_outer_step"], b["seconds_per_outer_step"]),
        "inner_steps_per_s": _ratio(o["inner_steps_per_s"], b["inner_steps_per_s"]),
        "flops_per_outer_step": _ratio(o["flops_per_outer_step"], b["flops_per_outer_step"]),
        "flop_per_s": _ratio(o["flop_per_s"], b["flop_per_s"]),
        "peak_memory": _ratio(o["peak_memory_bytes"], b["peak_memory_bytes"]),
    }
    targets = {}
    if cfg.name in TIME_TARGETS:
        limit = TIME_TARGETS[cfg.name]
        targets["time_ratio"] = {"le": limit, "pass": ratios["time"] is not None and ratios["time"] <= limit}
    return {
        "config": cfg.as_dict(),
        "description": cfg.describe(),
        "optfb": o,
        "baseline": b,
        "ratios": ratios,
        "targets": targets,
        "agreement": agreement,
    }


def bench_population(
    device: torch.device, warmup: int, repeats: int, min_seconds: float = 0.0
) -> dict[str, Any]:
    """S with K members on a leading axis in one optfb.unroll, against one member alone."""
    cfg = CONFIGS["S"]
    batched = make_problem(cfg, device, members=POPULATION)
    single = make_problem(cfg, device)
    fns = {"batched": optfb_step(cfg, batched), "single": optfb_step(cfg, single)}
    progress(f"population: K={POPULATION} against K=1, at least {repeats} repeats")
    times = interleaved(fns, device, warmup, repeats, min_seconds=min_seconds)
    t_batched, t_single = summary(times["batched"]), summary(times["single"])
    runs_batched = POPULATION / t_batched["median_s"]
    runs_single = 1 / t_single["median_s"]
    ratio = runs_batched / runs_single
    return {
        "config": cfg.as_dict(),
        "members": POPULATION,
        "batched": {"time": t_batched, "runs_per_s": runs_batched},
        "single": {"time": t_single, "runs_per_s": runs_single},
        "throughput_ratio": ratio,
        "target": {"ge": POPULATION_TARGET, "pass": ratio >= POPULATION_TARGET},
    }


def bench_long(device: torch.device, quick: bool) -> dict[str, Any]:
    """M at a long horizon with lazily made minibatches: checkpoint="sqrt" against the eager unroll
    (peak growth and time per inner step), and inference only (no_grad) at two horizons."""
    cfg = CONFIGS["M"]
    steps = LONG_STEPS_QUICK if quick else LONG_STEPS
    short = steps // 10
    repeats = 3
    progress(f"long horizons: N={steps} peak memory, eager and sqrt, in fresh processes")
    mem = {
        mode: memory.measure(cfg.name, "optfb", device.type, steps=steps, checkpoint=mode, lazy=True)
        for mode in ("none", "sqrt")
    }
    progress(f"long horizons: N={steps} time, eager and sqrt, {repeats} interleaved repeats")
    # A short unroll warms up both code paths; the long ones are timed.
    warm = make_problem(cfg, device, steps=16, lazy=True)
    for mode in ("none", "sqrt"):
        optfb_step(cfg, warm, mode)()
    problem = make_problem(cfg, device, steps=steps, lazy=True)
    fns = {mode: optfb_step(cfg, problem, None if mode == "none" else mode) for mode in ("none", "sqrt")}
    times = interleaved(fns, device, 0, repeats)
    per_step = {mode: summary(times[mode])["median_s"] / steps for mode in fns}
    progress(f"long horizons: evaluation only (no_grad) at N={short} and N={steps}")
    evaluation = {
        n: memory.measure(cfg.name, "eval", device.type, steps=n, lazy=True) for n in (short, steps)
    }
    growth = {mode: mem[mode].get("growth_bytes") for mode in mem}
    time_ratio = per_step["sqrt"] / per_step["none"]
    sqrt_growth = growth["sqrt"]
    eval_growth = {n: evaluation[n].get("growth_bytes") for n in evaluation}
    return {
        "config": cfg.as_dict(),
        "steps": steps,
        "quick": quick,
        "note": None if not quick else f"quick run: N={steps} instead of {LONG_STEPS}",
        "eager": {
            "memory": mem["none"],
            "growth_bytes": growth["none"],
            "time": summary(times["none"]),
            "seconds_per_inner_step": per_step["none"],
        },
        "sqrt": {
            "memory": mem["sqrt"],
            "growth_bytes": sqrt_growth,
            "time": summary(times["sqrt"]),
            "seconds_per_inner_step": per_step["sqrt"],
        },
        "time_ratio": time_ratio,
        "memory_ratio": _ratio(sqrt_growth, growth["none"]),
        "eager_growth_expected_bytes": EAGER_GROWTH_EXPECTED if not quick else None,
        "targets": {
            "sqrt_growth": {
                "le_bytes": SQRT_GROWTH_TARGET,
                "pass": sqrt_growth is not None and sqrt_growth <= SQRT_GROWTH_TARGET,
            },
            "time_ratio": {"le": SQRT_TIME_TARGET, "pass": time_ratio <= SQRT_TIME_TARGET},
        },
        "evaluation": {
            "steps": [short, steps],
            "memory": {str(n): evaluation[n] for n in evaluation},
            "growth_bytes": {str(n): eval_growth[n] for n in eval_growth},
            "growth_ratio": _ratio(eval_growth[steps], eval_growth[short]),
            "bytes_per_extra_step": _per_extra_step(eval_growth[short], eval_growth[steps], steps - short),
        },
    }
