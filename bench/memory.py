"""Peak memory of one unroll, measured in a fresh process: `python -m bench.memory CONFIG [options]`.

CPU: torch keeps no allocator statistics, so the child process builds the problem, runs a two-step
warm-up (thread pools, first-touch buffers), resets the kernel's peak-RSS mark, reads its resident
set, runs the case once and reports the peak RSS after (VmHWM; see peak_rss) minus that resident
set: the growth of the peak.
glibc's malloc would keep freed blocks of a few hundred kB for reuse (its mmap threshold rises
with every large free), so the RSS of a run that frees as it goes (checkpointed segments) would
show the allocator's hoard, not the tensors; the child therefore runs with a fixed
MALLOC_MMAP_THRESHOLD_, which returns every block of 64 kB or more to the system when freed, and
with one malloc arena, so that threads meeting in malloc do not open fresh arenas mid-run.
The child computes on one thread: the tensors, and so the peak, do not depend on the thread
count, while an mmap per block is many times slower when two threads fault and unmap pages
together (minutes instead of seconds at N=5000). Its wall time is therefore not the benchmark's
time; the parent process times every case on its own threads.
CUDA: the growth of torch.cuda.max_memory_allocated over the run. The child prints one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MMAP_THRESHOLD = 65536  # bytes: see the module docstring


def current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> tuple[int, str]:
    """The process's peak RSS and where it was read.

    /proc/self/status VmHWM is the address space's own high-water mark, which reset_peak_rss
    lowers. ru_maxrss is the fallback: it also keeps the peak of any thread that has exited and,
    through fork + exec, the RSS of the parent at the fork, so in a child of a large process it
    reports the parent's size, not the child's peak.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024, "VmHWM"
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak if sys.platform == "darwin" else peak * 1024), "ru_maxrss"  # Linux reports KiB


def reset_peak_rss() -> bool:
    """Lower the kernel's high-water mark to the current RSS (Linux >= 4.0); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _checkpoint(value: str | None) -> Any:
    if value is None or value == "none":
        return None
    return int(value) if value.isdigit() else value


def run_case(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from bench.configs import CONFIGS, Problem, make_problem
    from bench.steps import baseline_step, evaluation_step, optfb_step

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = CONFIGS[args.config]
    steps = args.steps or cfg.steps
    problem = make_problem(cfg, device, steps=steps, lazy=args.lazy)

    def build(p: Problem) -> Any:
        if args.impl == "baseline":
            return baseline_step(cfg, p)
        if args.impl == "eval":
            return evaluation_step(cfg, p)
        return optfb_step(cfg, p, _checkpoint(args.checkpoint))

    warm = Problem(problem.weights, problem.biases, problem.feedback, [problem.batches[t] for t in range(2)])
    build(warm)()
    del warm
    gc.collect()
    step = build(problem)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        reset = True
    else:
        reset = reset_peak_rss()
        before = current_rss()
    began = time.perf_counter()
    step()
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - began
    if cuda:
        peak, source = torch.cuda.max_memory_allocated(device), "cuda max_memory_allocated"
    else:
        peak, source = peak_rss()
    return {
        "config": cfg.name,
        "impl": args.impl,
        "steps": steps,
        "checkpoint": args.checkpoint,
        "lazy": args.lazy,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "measure": source if cuda else f"{source} - rss before",
        "peak_reset": reset,
        "before_bytes": before,
        "peak_bytes": peak,
        "growth_bytes": max(0, peak - before),
        "seconds": seconds,
        "seconds_per_step": seconds / steps,
    }


def measure(
    config: str,
    impl: str,
    device: str = "cpu",
    *,
    steps: int | None = None,
    checkpoint: str | None = None,
    lazy: bool = False,
    threads: int = 1,
    timeout: float = 900,
) -> dict[str, Any]:
    """Run one case in a fresh interpreter and return its report (or {"error": ...})."""
    cmd = [sys.executable, "-m", "bench.memory", config, "--impl", impl, "--device", device]
    cmd += ["--threads", str(threads)]
    if steps is not None:
        cmd += ["--steps", str(steps)]
    if checkpoint is not None:
        cmd += ["--checkpoint", checkpoint]
    if lazy:
        cmd.append("--lazy")
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path, MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD), MALLOC_ARENA_MAX="1")
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s: {' '.join(cmd[1:])}"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-3:]
        return {"error": f"exit {done.returncode}: {' | '.join(tail)}"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.splitlines()[0])
    parser.add_argument("config", choices=["S", "M", "L"])
    parser.add_argument("--impl", choices=["optfb", "baseline", "eval"], default="optfb")
    parser.add_argument("--steps", type=int, default=None, help="inner steps N (default: the config's)")
    parser.add_argument("--checkpoint", default=None, help="optfb.unroll's checkpoint: none, sqrt or k")
    parser.add_argument("--lazy", action="store_true", help="make minibatches on demand, not up front")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (the peak does not depend on it)"
    )
    print(json.dumps(run_case(parser.parse_args(argv))))


if __name__ == "__main__":
    main()
