"""The printed table and the JSON file of one benchmark run; `python -m bench.report FILE` reprints one."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_json(results: dict[str, Any], path: Path | None) -> Path:
    if path is None:
        path = RESULTS / f"{results['meta']['timestamp']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1e6:.1f}"


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def header(meta: dict[str, Any]) -> list[str]:
    peak = meta["matmul_peak"]
    load = meta["load_average"]
    rate = (
        "not measured"
        if peak is None
        else f"{peak['size']}x{peak['size']} float32 product, best of {peak['repeats']}: "
        f"{peak['flop_per_s'] / 1e9:.1f} GFLOP/s"
    )
    source = meta.get("source") or {}
    commit = source.get("commit") or "unknown"
    if source.get("optfb_modified"):
        commit += " with uncommitted optfb/ changes"
    return [
        f"optfb bench {meta['timestamp']}  device {meta['device']} ({meta['device_name']}), "
        f"{meta['threads']} threads, torch {meta['torch']}, float32, source {commit}",
        f"matmul peak: {rate};  load average at start {load['start']:.2f}, end {load['end']:.2f}",
    ]


def config_table(configs: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "Outer step = optfb.unroll forward + meta-gradient w.r.t. B (sgd inner), against the eager "
        f"baseline; median of >= {meta['repeats']} interleaved repeats (more for fast cases, up to "
        f"~{meta['min_seconds']:g} s per side) after {meta['warmup']} warm-up.",
    ]
    for name, r in configs.items():
        a = r["agreement"]
        lines.append(
            f"  {name}: {r['description']}  (optfb vs baseline, float32: objective "
            f"{a['objective_rel_diff']:.1e}, meta-gradient {a['gradient_rel_diff']:.1e} relative)"
        )
    cols = f"{'config':<7}{'impl':<10}{'ms/outer':>10}{'inner/s':>10}{'GFLOP/outer':>13}"
    cols += f"{'GFLOP/s':>9}{'%peak':>8}{'peak MB':>10}  target"
    lines += ["", cols, "-" * len(cols)]
    for name, r in configs.items():
        for side in ("optfb", "baseline"):
            s = r[side]
            lines.append(
                f"{name if side == 'optfb' else '':<7}{side:<10}"
                f"{s['seconds_per_outer_step'] * 1e3:>10.2f}{s['inner_steps_per_s']:>10.0f}"
                f"{s['flops_per_outer_step'] / 1e9:>13.4f}{s['flop_per_s'] / 1e9:>9.2f}"
                f"{100 * s['peak_fraction']:>7.1f}%{_mb(s['peak_memory_bytes']):>10}"
                + (f"  memory: {s['memory']['error']}" if "error" in s["memory"] else "")
            )
        q = r["ratios"]
        target = ""
        if "time_ratio" in r["targets"]:
            t = r["targets"]["time_ratio"]
            target = f"  time <= {t['le']}: {_verdict(t['pass'])}"
        lines.append(
            f"{'':<7}{'ratio':<10}{_num(q['time'], '.2f'):>10}{_num(q['inner_steps_per_s'], '.2f'):>10}"
            f"{_num(q['flops_per_outer_step'], '.2f'):>13}{_num(q['flop_per_s'], '.2f'):>9}{'':>8}"
            f"{_num(q['peak_memory'], '.2f'):>10}{target}"
        )
    return lines


def population_table(p: dict[str, Any]) -> list[str]:
    k = p["members"]
    t = p["target"]
    return [
        "",
        f"Population: S with K={k} members batched on a leading axis in one optfb.unroll, against K=1",
        f"  K=1    {p['single']['time']['median_s'] * 1e3:9.2f} ms/outer   "
        f"{p['single']['runs_per_s']:9.1f} runs/s",
        f"  K={k:<4} {p['batched']['time']['median_s'] * 1e3:9.2f} ms/outer   "
        f"{p['batched']['runs_per_s']:9.1f} runs/s",
        f"  per-run throughput ratio {p['throughput_ratio']:.1f}x   target >= {t['ge']:.0f}x: "
        f"{_verdict(t['pass'])}",
    ]


def long_table(r: dict[str, Any]) -> list[str]:
    n = r["steps"]
    targets = r["targets"]
    ev = r["evaluation"]
    short, long_ = ev["steps"]
    lines = ["", f"Long horizons: M with N={n}, minibatches made on demand (lazy), one outer step each"]
    if r["note"]:
        lines.append(f"  note: {r['note']}")
    lines.append(f"  {'checkpoint':<14}{'ms/inner step':>14}{'peak growth MB':>16}{'kB/inner step':>15}")
    for label, key in (("none (eager)", "eager"), ("sqrt", "sqrt")):
        s = r[key]
        growth = s["growth_bytes"]
        per_step = "n/a" if growth is None else f"{growth / n / 1e3:.1f}"
        err = f"  memory: {s['memory']['error']}" if "error" in s["memory"] else ""
        lines.append(
            f"  {label:<14}{s['seconds_per_inner_step'] * 1e3:>14.3f}{_mb(growth):>16}{per_step:>15}{err}"
        )
    t, m = targets["time_ratio"], targets["sqrt_growth"]
    lines.append(
        f"  sqrt / eager time per inner step {r['time_ratio']:.2f}: "
        f"target <= {t['le']}: {_verdict(t['pass'])}"
    )
    expected = r["eager_growth_expected_bytes"]
    lines.append(
        f"  sqrt peak growth {_mb(r['sqrt']['growth_bytes'])} MB: target <= {m['le_bytes'] / 1e6:.0f} MB: "
        f"{_verdict(m['pass'])}"
        + ("" if expected is None else f"  (eager expected ~{expected / 1e9:.1f} GB)")
    )
    g = ev["growth_bytes"]
    per_extra = ev["bytes_per_extra_step"]
    eager = r["eager"]["growth_bytes"]
    lines.append(
        f"  evaluation only (no_grad): peak growth N={short} {_mb(g[str(short)])} MB, N={long_} "
        f"{_mb(g[str(long_)])} MB: {_num(None if per_extra is None else per_extra / 1e3, '.2f')} kB per "
        f"extra inner step (eager unroll: {_num(None if eager is None else eager / n / 1e3, '.1f')} kB)"
    )
    return lines


def service_table(s: dict[str, Any]) -> list[str]:
    lines = ["", "Service: submit -> running latency and status-poll throughput (real Redis and Postgres)"]
    if "skipped" in s:
        return [*lines, f"  skipped: {s['skipped']}"]
    if "error" in s:
        return [*lines, f"  error: {s['error']}"]
    lat = s["latency"]
    lines.append(
        f"  submit -> running over {lat['jobs']} tiny jobs: median {lat['median_s'] * 1e3:.0f} ms, "
        f"p90 {lat['p90_s'] * 1e3:.0f} ms, max {lat['max_s'] * 1e3:.0f} ms  (polled every "
        f"{lat['poll_interval_s'] * 1e3:.0f} ms; server's started_at - created_at: median "
        f"{_num(None if lat['server_median_s'] is None else lat['server_median_s'] * 1e3, '.0f')} ms)"
    )
    for label, p in s["polling"].items():
        lines.append(
            f"  GET /v1/jobs/{{id}}, {label}: {p['requests_per_s']:.0f} requests/s "
            f"({p['requests']} in {p['seconds']:.1f} s, {p['errors']} errors)"
        )
    return lines


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = header(meta)
    if results.get("configs"):
        lines += config_table(results["configs"], meta)
    if results.get("population"):
        lines += population_table(results["population"])
    if results.get("long_horizon"):
        lines += long_table(results["long_horizon"])
    if results.get("service"):
        lines += service_table(results["service"])
    return "\n".join(lines)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(render(json.loads(Path(name).read_text())))
