"""The result summary: the learned B against iid random B and backprop, and what sets B apart.

For every evaluation horizon M (M may be far beyond the N that B was trained for, question 3):
mean +- std across held-out seeds of the mean and final cost, test loss and, for classification,
test accuracy, plus thinned loss curves. The analysis (question 1) follows the angles between
feedback and forward weights, error signals and updates along training for the learned and the
random B, and compares spectra; per-step B (question 2) also gets its drift along t.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

from optfb import analysis
from optfb.evaluation import horizon_stats, random_feedback, thinned, trajectory
from optfb.spec import ExperimentSpec
from optfb.unrolled import pairs


def _probes(run: Any) -> dict[str, Any]:
    if not run.probes:
        return {}
    steps = [t + 1 for t, _ in run.probes]
    names = run.probes[0][1].keys()
    return {"step": steps, **{name: [p[name] for _, p in run.probes] for name in names}}


def summarise(
    spec: ExperimentSpec,
    feedback: Sequence[Tensor] | None,
    per_step: bool,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Evaluate one problem's feedback (no member axis) against the baselines on held-out seeds."""
    seeds = list(range(spec.eval.seeds))
    horizons = sorted(set(spec.horizons))
    points = spec.eval.analysis_points
    baseline = random_feedback(spec, seeds)
    runs = {}
    if spec.meta_trained:
        runs["learned"] = trajectory(spec, feedback, per_step, seeds, horizons, points, should_stop)
    runs["random"] = trajectory(spec, baseline, False, seeds, horizons, points, should_stop)
    runs["backprop"] = trajectory(spec, None, False, seeds, horizons, should_stop=should_stop)
    summary: dict[str, Any] = {
        "feedback_mode": spec.feedback.mode,
        "trained_steps": spec.inner.steps,
        "eval_seeds": len(seeds),
        "horizons": {
            str(m): {name: horizon_stats(run, m, thinned) for name, run in runs.items()} for m in horizons
        },
        "analysis": {
            "angles": {name: _probes(run) for name, run in runs.items() if run.probes},
        },
    }
    if spec.meta_trained and feedback is not None:
        last = [b.select(-3, -1) for b in feedback] if per_step else list(feedback)
        summary["analysis"].update(analysis.spectra(last, pairs(runs["learned"].params), spec.seed))
    else:
        summary["analysis"].update(analysis.spectra(baseline, pairs(runs["random"].params), spec.seed))
    if per_step and feedback is not None:
        summary["analysis"]["per_step"] = analysis.per_step_drift(feedback)
    return analysis.json_safe(summary)


def headline(summary: dict[str, Any]) -> dict[str, Any]:
    """The few numbers a person looks at first: mean cost at each horizon, per kind of feedback."""
    return {
        m: {
            name: None if stats["mean_loss"] is None else round(stats["mean_loss"], 6)
            for name, stats in by_kind.items()
        }
        for m, by_kind in summary["horizons"].items()
    }


def member_summary(
    spec: ExperimentSpec,
    feedback: Sequence[Tensor],
    per_step: bool,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """One population member's own B on its own held-out seeds: mean and final cost per horizon."""
    horizons = sorted(set(spec.horizons))
    run = trajectory(
        spec, feedback, per_step, list(range(spec.eval.seeds)), horizons, should_stop=should_stop
    )
    keep = ("mean_", "final_", "test_", "diverged")
    stats = {str(m): {k: v for k, v in horizon_stats(run, m).items() if k.startswith(keep)} for m in horizons}
    return analysis.json_safe({"seed": spec.seed, "horizons": stats})
