"""Evaluation: inner training only, for any horizon M, on seeds that meta-training never sees.

All evaluation seeds run as one batched program (a leading seed axis S) without autograd, so
memory does not grow with M beyond the loss curve itself. The same run records test loss and
accuracy at each requested horizon and, optionally, the analysis probes along the way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from optfb import analysis
from optfb.device import resolve
from optfb.errors import Stopped
from optfb.init import feedback_matrices, stack
from optfb.network import cost, forward
from optfb.optimizers import InnerOptimizer
from optfb.seeding import generator
from optfb.spec import ExperimentSpec
from optfb.tasks import Problem, Task, evaluation_draws
from optfb.unrolled import NO_GRAD_SEGMENT, Run, feedback_at, pairs

Feedback = Mapping[str, Tensor] | Sequence[Tensor] | None
CURVE_POINTS = 200  # loss curves in summaries are thinned to about this many points


def inner_optimizer(spec: ExperimentSpec) -> InnerOptimizer:
    i = spec.inner
    return InnerOptimizer(i.optimizer, i.lr, i.momentum, i.nesterov, i.betas, i.eps, i.weight_decay)


def checked_feedback(spec: ExperimentSpec, feedback: Feedback) -> tuple[list[Tensor] | None, bool]:
    """[B_2..B_L] with their shapes checked against the spec, and whether they are per-step.

    Each B_l is (d_{l-1}, d_l), or (N, d_{l-1}, d_l) for a learned_per_step spec; an empty dict
    or list (a backprop result) or None means backprop.
    """
    sizes = spec.sizes
    fb = feedback_list(feedback or None, len(sizes) - 1)
    if fb is None:
        return None, False
    per_step = spec.feedback.mode == "learned_per_step" and fb[0].dim() == 3
    for l, b in enumerate(fb, start=2):
        want = (sizes[l - 1], sizes[l])
        if tuple(b.shape[-2:]) != want or b.dim() != 2 + per_step:
            shape = "(N, {}, {})".format(*want) if spec.feedback.mode == "learned_per_step" else str(want)
            raise ValueError(
                f"feedback B{l} has shape {tuple(b.shape)}, but this spec needs {shape}; "
                f"for a population result pass one member's matrices, e.g. result.feedback['B{l}'][k]"
            )
    return fb, per_step


def feedback_list(feedback: Feedback, layers: int) -> list[Tensor] | None:
    """[B_2..B_L] from a dict named "B2".."BL", a list, or None (backprop)."""
    if feedback is None:
        return None
    if isinstance(feedback, Mapping):
        missing = [f"B{l}" for l in range(2, layers + 1) if f"B{l}" not in feedback]
        if missing:
            raise ValueError(f"feedback is missing {', '.join(missing)}")
        return [feedback[f"B{l}"] for l in range(2, layers + 1)]
    if len(feedback) != layers - 1:
        raise ValueError(f"need {layers - 1} feedback matrices B_2..B_L, got {len(feedback)}")
    return list(feedback)


@dataclass
class Trajectory:
    costs: Tensor  # (M, S) cost of each inner step for each seed
    at: dict[int, dict[str, Tensor]]  # horizon -> {"test_loss": (S,), "test_accuracy": (S,)}
    probes: list[tuple[int, dict[str, list[float]]]] = field(default_factory=list)
    params: tuple[Tensor, ...] = ()


def trajectory(
    spec: ExperimentSpec,
    feedback: Sequence[Tensor] | None,
    per_step: bool,
    seeds: Sequence[int],
    horizons: Sequence[int],
    probes: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> Trajectory:
    """Train fresh networks for max(horizons) steps with fixed feedback, one per evaluation seed.

    The steps run in segments of at most NO_GRAD_SEGMENT (cut also at every probe and horizon),
    through the unroll's own Run.steps; should_stop() is polled after each and raises Stopped.
    """
    device, dtype = resolve(spec)
    task = Task(spec, device, dtype)
    steps = max(horizons)
    draws = [evaluation_draws(spec, s) for s in seeds]
    problem = task.problem(draws, steps)
    params = task.initial_params(draws)
    if feedback is not None:
        feedback = [b.detach().to(device=device, dtype=dtype) for b in feedback]
    act, loss = spec.network.activation, spec.task.loss
    run = Run(inner_optimizer(spec), feedback, per_step, problem.batches, act, loss)
    slots = run.opt.init(params)
    probe_at = {round(i * (steps - 1) / (probes - 1)) for i in range(probes)} if probes > 1 else set()
    cuts = sorted({*range(0, steps, NO_GRAD_SEGMENT), *probe_at, *horizons, steps})
    out = Trajectory(torch.empty(0), {})
    costs = []
    with torch.no_grad():
        for start, stop in zip(cuts[:-1], cuts[1:], strict=True):
            fb = feedback_at(feedback, start, per_step)
            if start in probe_at and fb is not None:
                x, y = problem.batches[start]
                out.probes.append((start, analysis.probe(pairs(params), fb, x, y, act, loss)))
            params, slots, segment = run.steps(params, slots, start, stop)
            costs.append(segment.cpu())
            if stop in horizons:
                out.at[stop] = test_metrics(spec, params, problem)
            if should_stop is not None and should_stop():
                raise Stopped(spec.outer.steps if spec.meta_trained else 0)
    out.costs = torch.cat(costs).double()  # (M, S)
    out.params = params
    return out


def test_metrics(spec: ExperimentSpec, params: tuple[Tensor, ...], problem: Problem) -> dict[str, Tensor]:
    x, y = problem.test
    metrics = {"test_loss": cost(pairs(params), x, y, spec.network.activation, spec.task.loss).cpu().double()}
    if spec.task.is_classification:
        out = forward(pairs(params), x, spec.network.activation)[0][-1]
        metrics["test_accuracy"] = (out.argmax(-1) == y).double().mean(-1).cpu()
    return metrics


def _mean_std(values: Tensor) -> tuple[float, float]:
    return values.mean().item(), values.std(correction=0).item()


def horizon_stats(
    run: Trajectory, horizon: int, curve: Callable[[Tensor], Any] = Tensor.tolist
) -> dict[str, Any]:
    """Mean and std across seeds of the numbers at one horizon; `curve` shapes the loss curves."""
    costs = run.costs[:horizon]  # (M, S)
    stats: dict[str, Any] = {"steps": horizon, "seeds": costs.shape[1]}
    # Seeds whose training blew up: their numbers are NaN / inf and show as null in JSON.
    stats["diverged_seeds"] = int((~torch.isfinite(costs).all(0)).sum())
    stats["loss_curve"] = curve(costs.mean(1))
    stats["loss_curve_std"] = curve(costs.std(1, correction=0))
    stats["mean_loss"], stats["mean_loss_std"] = _mean_std(costs.mean(0))
    stats["final_loss"], stats["final_loss_std"] = _mean_std(costs[-1])
    for name, values in run.at.get(horizon, {}).items():
        stats[name], stats[f"{name}_std"] = _mean_std(values)
    return stats


def thinned(curve: Tensor) -> dict[str, list]:
    """About CURVE_POINTS points of a curve, always keeping the first and the last step."""
    stride = max(1, len(curve) // CURVE_POINTS)
    steps = list(range(0, len(curve), stride))
    if steps[-1] != len(curve) - 1:
        steps.append(len(curve) - 1)
    return {"step": [s + 1 for s in steps], "value": curve[steps].tolist()}


def random_feedback(spec: ExperimentSpec, seeds: Sequence[int]) -> list[Tensor]:
    """Fresh iid B of the initial law for each evaluation seed, stacked on the seed axis (S, ...)."""
    f = spec.feedback
    members = [
        feedback_matrices(spec.sizes, f.init, f.scale, f.fan_in, generator(spec.seed, "eval-feedback", s))
        for s in seeds
    ]
    device, dtype = resolve(spec)
    return stack(members, device, dtype)


def evaluate(
    spec: ExperimentSpec,
    feedback: Feedback,
    steps: int | None = None,
    seeds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Inner training with the given feedback (None: backprop) for `steps` steps on each seed.

    Returns loss_curve (mean cost per inner step, length M), loss_curve_std, mean_loss,
    final_loss (each with _std across seeds), test_loss and, for classification, test_accuracy.
    A per-step feedback (N, d_{l-1}, d_l) holds B^(N) beyond step N.
    """
    steps = steps or spec.inner.steps
    seeds = list(range(spec.eval.seeds)) if seeds is None else list(seeds)
    if steps < 1 or not seeds:
        raise ValueError("evaluate needs steps >= 1 and at least one seed")
    fb, per_step = checked_feedback(spec, feedback)
    run = trajectory(spec, fb, per_step, seeds, [steps])
    return analysis.json_safe(horizon_stats(run, steps))
