"""Figures of a job (PNG, matplotlib's Agg canvas) drawn from its metric history and summary.

The summary is a JSON dict made by the core library; each figure draws what it finds and is
offered only when its data is there.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

Rows = list[dict[str, Any]]
Summary = dict[str, Any] | None
Series = dict[str, tuple[list[float], list[float]]]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _metric_series(rows: Rows) -> Series:
    """Metric name -> (outer steps, values) for every numeric metric."""
    series: Series = {}
    for row in rows:
        for key, value in row.items():
            if key != "outer_step" and _number(value):
                steps, values = series.setdefault(key, ([], []))
                steps.append(row["outer_step"])
                values.append(value)
    return series


def _curve(value: Any) -> tuple[list[float], list[float]] | None:
    """A loss curve given as {"step": [...], "value": [...]} or as a plain list of numbers."""
    if isinstance(value, dict):
        steps, values = value.get("step"), value.get("value")
        if isinstance(steps, list) and isinstance(values, list) and len(steps) == len(values):
            pairs = [(s, v) for s, v in zip(steps, values, strict=True) if _number(v)]
            return ([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else None
        return None
    if isinstance(value, list) and any(_number(v) for v in value):
        pairs = [(i + 1, v) for i, v in enumerate(value) if _number(v)]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    return None


def _loss_curves(summary: Summary) -> dict[str, Series]:
    """Horizon -> {"learned" | "random" | "backprop": curve} from summary["horizons"]."""
    out: dict[str, Series] = {}
    horizons = (summary or {}).get("horizons")
    if not isinstance(horizons, dict):
        return out
    for horizon, kinds in horizons.items():
        if not isinstance(kinds, dict):
            continue
        for kind, stats in kinds.items():
            curve = _curve(stats.get("loss_curve")) if isinstance(stats, dict) else None
            if curve is not None:
                out.setdefault(str(horizon), {})[str(kind)] = curve
    return out


def _angles(summary: Summary) -> dict[str, Series]:
    """Angle name -> {"kind layer": (steps, degrees)} from summary["analysis"]["angles"]."""
    out: dict[str, Series] = {}
    analysis = (summary or {}).get("analysis")
    kinds = analysis.get("angles") if isinstance(analysis, dict) else None
    if not isinstance(kinds, dict):
        return out
    for kind, probes in kinds.items():
        if not isinstance(probes, dict) or not isinstance(probes.get("step"), list):
            continue
        steps = probes["step"]
        for name, values in probes.items():
            if name == "step" or not isinstance(values, list) or len(values) != len(steps):
                continue
            # Each point holds one value per layer (or a single number).
            width = max((len(v) for v in values if isinstance(v, list)), default=0)
            for layer in range(width or 1):
                points = [
                    (s, v[layer] if isinstance(v, list) and layer < len(v) else v)
                    for s, v in zip(steps, values, strict=True)
                ]
                points = [(s, v) for s, v in points if _number(v)]
                if points:
                    label = f"{kind} [{layer + 1}]" if width > 1 else str(kind)
                    out.setdefault(str(name), {})[label] = (
                        [p[0] for p in points],
                        [p[1] for p in points],
                    )
    return out


def _spectra(summary: Summary) -> dict[str, Series]:
    """Layer -> {"feedback" | "forward_transpose" | ...: (index, singular values)}."""
    out: dict[str, Series] = {}
    analysis = (summary or {}).get("analysis")
    layers = analysis.get("spectra") if isinstance(analysis, dict) else None
    if not isinstance(layers, list):
        return out
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            continue
        name = str(layer.get("layer", f"B{i + 2}"))
        for key, values in layer.items():
            curve = _curve(values) if isinstance(values, list) else None
            if curve is not None:
                out.setdefault(name, {})[key] = curve
    return out


def _grid(figure: Any, panels: dict[str, Series], xlabel: str, ylabel: str, log: bool) -> None:
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    for index, (title, series) in enumerate(panels.items(), start=1):
        axes = figure.add_subplot(rows, columns, index)
        for label, (xs, ys) in series.items():
            marker = "o" if len(xs) <= 30 else None  # show where the few samples are
            axes.plot(xs, ys, label=label, linewidth=1.5, marker=marker, markersize=3)
        if log and all(v > 0 for _, ys in series.values() for v in ys):
            axes.set_yscale("log")
        axes.set_title(title)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.grid(True, alpha=0.3)
        if len(series) > 1:
            axes.legend(fontsize="small")


def _draw_meta_loss(figure: Any, rows: Rows, summary: Summary) -> None:
    series = _metric_series(rows)
    _grid(figure, {"meta-training": {"meta_loss": series["meta_loss"]}}, "outer step", "", True)


def _draw_metrics(figure: Any, rows: Rows, summary: Summary) -> None:
    panels = {name: {name: s} for name, s in _metric_series(rows).items()}
    _grid(figure, panels, "outer step", "", False)


def _draw_loss_curves(figure: Any, rows: Rows, summary: Summary) -> None:
    panels = {f"horizon {m}": s for m, s in _loss_curves(summary).items()}
    _grid(figure, panels, "inner step", "mean cost", True)


def _draw_angles(figure: Any, rows: Rows, summary: Summary) -> None:
    _grid(figure, _angles(summary), "inner step", "degrees", False)


def _draw_spectra(figure: Any, rows: Rows, summary: Summary) -> None:
    _grid(figure, _spectra(summary), "index", "singular value", True)


Check = Callable[[Rows, Summary], bool]
Draw = Callable[[Any, Rows, Summary], None]

PLOTS: dict[str, tuple[Check, Draw]] = {
    "meta_loss": (lambda r, s: "meta_loss" in _metric_series(r), _draw_meta_loss),
    "metrics": (lambda r, s: bool(_metric_series(r)), _draw_metrics),
    "loss_curves": (lambda r, s: bool(_loss_curves(s)), _draw_loss_curves),
    "angles": (lambda r, s: bool(_angles(s)), _draw_angles),
    "spectra": (lambda r, s: bool(_spectra(s)), _draw_spectra),
}


def available(rows: Rows, summary: Summary) -> list[str]:
    return [name for name, (check, _) in PLOTS.items() if check(rows, summary)]


def render(name: str, rows: Rows, summary: Summary, title: str) -> bytes:
    """The PNG of plot `name`; KeyError if it is unknown or has no data for this job."""
    if name not in available(rows, summary):
        raise KeyError(name)
    # Figure + Agg canvas, not pyplot: no global state, safe in the server's threads.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    PLOTS[name][1](figure, rows, summary)
    figure.suptitle(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
