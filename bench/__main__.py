"""`python -m bench`: run the selected sections, print the table and write the JSON results."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from bench import compute, report, service
from bench.configs import CONFIGS
from bench.timing import matmul_peak

SECTIONS = ("S", "M", "L", "population", "long", "service")
# Naming a config also selects the sections measured on it.
IMPLIED = {"S": ("population",), "M": ("long",)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Time, FLOP/s and peak memory of optfb's unrolled meta-gradient against an eager "
        "baseline; population throughput; long horizons; service latency.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats; long horizons at N=500")
    parser.add_argument(
        "--only",
        default=None,
        help="comma-separated sections: S, M, L (each with what is measured on it: population on S, "
        "long horizons on M), population, long, service",
    )
    parser.add_argument("--service", action="store_true", help="the service figures (alone, unless --only)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (default 7, quick 3)")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON path (default bench/results/<time>.json)"
    )
    return parser.parse_args(argv)


def selection(args: argparse.Namespace) -> set[str]:
    """The sections to run."""
    if args.only is None:
        return {"service"} if args.service else set(SECTIONS)
    chosen = set()
    for name in filter(None, (part.strip() for part in args.only.split(","))):
        if name not in SECTIONS:
            raise SystemExit(f"unknown section {name!r} in --only; choose from {', '.join(SECTIONS)}")
        chosen.add(name)
        chosen.update(IMPLIED.get(name, ()))
    if args.service:
        chosen.add("service")
    return chosen


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def source_version() -> dict[str, Any]:
    """The commit measured, and whether optfb/ differs from it (the library is edited in place)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    status = git("status", "--porcelain", "--", "optfb")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "optfb_modified": None if status is None else bool(status),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = selection(args)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was given but no CUDA device is visible; use --device cpu")
    repeats = args.repeats or (3 if args.quick else 7)
    warmup = 1 if args.quick else 2
    # Fast cases repeat until each side has had about this long on the clock (median of more).
    min_seconds = 0.5 if args.quick else 3.0
    now = dt.datetime.now(dt.UTC)
    meta: dict[str, Any] = {
        "timestamp": now.strftime("%Y%m%dT%H%M%SZ"),
        "argv": sys.argv[1:] if argv is None else argv,
        "quick": args.quick,
        "sections": sorted(chosen, key=SECTIONS.index),
        "device": str(device),
        "device_name": device_name(device),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "source": source_version(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "repeats": repeats,
        "warmup": warmup,
        "min_seconds": min_seconds,
        "load_average": {"start": os.getloadavg()[0]},
    }
    results: dict[str, Any] = {"meta": meta}
    compute_sections = chosen - {"service"}
    if compute_sections:
        compute.progress("measuring the float32 matmul peak")
        meta["matmul_peak"] = matmul_peak(device, repeats=5 if args.quick else 10)
        peak = meta["matmul_peak"]["flop_per_s"]
        results["configs"] = {
            name: compute.bench_config(cfg, device, peak, warmup, repeats, min_seconds)
            for name, cfg in CONFIGS.items()
            if name in chosen
        }
        if "population" in chosen:
            results["population"] = compute.bench_population(device, warmup, repeats, min_seconds)
        if "long" in chosen:
            results["long_horizon"] = compute.bench_long(device, args.quick)
    if "service" in chosen:
        results["service"] = service.run(args.quick)
    meta["load_average"]["end"] = os.getloadavg()[0]
    meta.setdefault("matmul_peak", None)
    path = report.write_json(results, args.out)
    print(report.render(results))
    print(f"\nresults written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
