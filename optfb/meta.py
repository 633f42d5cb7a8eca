"""Meta-training: Adam on the feedback matrices B through the exact gradient of the unrolled run.

Each outer step j draws, for every population member k, a fresh problem (teacher / data order and
initial forward weights, unless the spec fixes them), unrolls N inner steps with the current B,
and takes one Adam step on B against d(meta-objective)/dB. Members are independent problems run
as one batched program: the batched objective is their sum, so each member's B sees only its own
gradient, and clipping is per member.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from optfb.device import resolve
from optfb.errors import CheckpointMismatch, NonFiniteError, Stopped
from optfb.init import feedback_matrices, stack
from optfb.seeding import generator
from optfb.spec import ExperimentSpec
from optfb.summary import member_summary, summarise
from optfb.tasks import Task, training_draws
from optfb.unrolled import meta_gradient, pairs, unroll

CHECKPOINT_VERSION = 1


@dataclass
class Result:
    spec: ExperimentSpec
    feedback: dict[str, Tensor]  # "B2".."BL" -> (d_{l-1}, d_l), (N, ...) per step; (K, ...) population
    metrics: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: Any) -> Path:
        from optfb.io import save_result

        return save_result(self, folder)


def initial_feedback(spec: ExperimentSpec, device: torch.device, dtype: torch.dtype) -> list[Tensor] | None:
    """B at outer step 0 for every member (K, ...); per-step mode repeats it along a step axis."""
    if spec.feedback.mode == "backprop":
        return None
    f = spec.feedback
    members = [
        feedback_matrices(spec.sizes, f.init, f.scale, f.fan_in, generator(spec.seed + k, "feedback"))
        for k in range(spec.population)
    ]
    b = stack(members, device, dtype)
    if f.mode == "learned_per_step":
        b = [m.unsqueeze(1).repeat(1, spec.inner.steps, 1, 1) for m in b]  # (K, N, d_{l-1}, d_l)
    return b


def meta_step(
    spec: ExperimentSpec, task: Task, feedback: list[Tensor], outer_step: int
) -> tuple[Tensor, Tensor]:
    """The meta-objective (K,) and inner costs (N, K) of outer step j, with a graph back to B."""
    draws = [training_draws(spec, spec.seed + k, outer_step) for k in range(spec.population)]
    problem = task.problem(draws, spec.inner.steps)
    params = task.initial_params(draws)
    i = spec.inner
    objective, costs, _ = unroll(
        pairs(params),
        feedback,
        problem.batches,
        i.optimizer,
        i.lr,
        spec.network.activation,
        spec.task.loss,
        spec.outer.objective,
        momentum=i.momentum,
        nesterov=i.nesterov,
        betas=i.betas,
        eps=i.eps,
        weight_decay=i.weight_decay,
        heldout=problem.heldout if spec.outer.objective == "final" else None,
        checkpoint=_checkpoint(spec),
        per_step=spec.feedback.mode == "learned_per_step",
    )
    return objective, costs


def _checkpoint(spec: ExperimentSpec) -> Any:
    return None if spec.outer.checkpoint == "none" else spec.outer.checkpoint


def _member_norms(tensors: list[Tensor]) -> Tensor:
    """Global norm over all B of each member: (K,)."""
    return torch.stack([t.detach().square().flatten(1).sum(1) for t in tensors]).sum(0).sqrt()


def run_experiment(
    spec: ExperimentSpec,
    on_progress: Callable[[int, int, dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    resume: bytes | None = None,
    on_checkpoint: Callable[[bytes, int], None] | None = None,
    checkpoint_every: int = 10,
) -> Result:
    """Meta-train B as the spec says, then evaluate it against the baselines.

    on_progress(step, total, metrics) follows every outer step; should_stop() is polled after
    each and raises Stopped; on_checkpoint(blob, step) receives every `checkpoint_every` steps a
    state that `resume=blob` continues from, to the same final result as an uninterrupted run.
    """
    device, dtype = resolve(spec)
    task = Task(spec, device, dtype)
    feedback = initial_feedback(spec, device, dtype)
    total = spec.outer.steps if spec.meta_trained else 0
    metrics: list[dict[str, Any]] = []
    start = 0
    optimizer = None
    if spec.meta_trained:
        assert feedback is not None
        for b in feedback:
            b.requires_grad_(True)
        optimizer = torch.optim.Adam(feedback, lr=spec.outer.lr, betas=spec.outer.betas)
        if resume is not None:
            start, metrics = _restore(spec, resume, feedback, optimizer, device)
    for j in range(start, total):
        assert feedback is not None and optimizer is not None
        began = time.perf_counter()
        objective, costs = meta_step(spec, task, feedback, j)
        grads = meta_gradient(objective.sum(), feedback)
        _require_finite(objective, grads, j + 1)
        norms = _member_norms(list(grads))
        if spec.outer.clip_norm is not None:
            scale = (spec.outer.clip_norm / (norms + 1e-12)).clamp(max=1.0)  # (K,)
            grads = tuple(g * scale.view(-1, *[1] * (g.dim() - 1)) for g in grads)
        for b, g in zip(feedback, grads, strict=True):
            b.grad = g
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        row = _metrics_row(j + 1, objective, costs, norms, feedback, time.perf_counter() - began)
        metrics.append(row)
        if on_progress is not None:
            on_progress(j + 1, total, row)
        if on_checkpoint is not None and ((j + 1) % checkpoint_every == 0 or j + 1 == total):
            on_checkpoint(_snapshot(spec, j + 1, feedback, optimizer, metrics), j + 1)
        if should_stop is not None and j + 1 < total and should_stop():
            raise Stopped(j + 1)
    return _finish(spec, feedback, metrics, should_stop)


def _require_finite(objective: Tensor, grads: tuple[Tensor, ...], step: int) -> None:
    if not torch.isfinite(objective).all():
        raise NonFiniteError(
            f"outer step {step}: the meta-objective is not finite; lower inner.lr or outer.lr, "
            "or set outer.clip_norm"
        )
    if not all(torch.isfinite(g).all() for g in grads):
        raise NonFiniteError(
            f"outer step {step}: the meta-gradient is not finite; set outer.clip_norm or lower outer.lr"
        )


def _metrics_row(
    step: int,
    objective: Tensor,
    costs: Tensor,
    norms: Tensor,
    feedback: list[Tensor],
    seconds: float,
) -> dict[str, Any]:
    objective = objective.detach()
    row: dict[str, Any] = {
        "outer_step": step,
        "meta_loss": objective.mean().item(),
        "first_cost": costs[0].detach().mean().item(),
        "final_cost": costs[-1].detach().mean().item(),
        "grad_norm": norms.mean().item(),
        "feedback_norm": _member_norms(feedback).mean().item(),
        "seconds": seconds,
    }
    if objective.numel() > 1:
        row["meta_loss_members"] = objective.tolist()
    return row


def _snapshot(
    spec: ExperimentSpec,
    step: int,
    feedback: list[Tensor],
    optimizer: torch.optim.Optimizer,
    metrics: list[dict[str, Any]],
) -> bytes:
    """Everything the loop carries: B, Adam's state, the step and the metrics so far. Random draws
    are keyed by (seed, outer step), so there is no generator state to keep."""
    buffer = io.BytesIO()
    torch.save(
        {
            "version": CHECKPOINT_VERSION,
            "spec": spec.model_dump(mode="json"),
            "outer_step": step,
            "feedback": [b.detach().cpu() for b in feedback],
            "optimizer": optimizer.state_dict(),
            "metrics": metrics,
        },
        buffer,
    )
    return buffer.getvalue()


def _restore(
    spec: ExperimentSpec,
    blob: bytes,
    feedback: list[Tensor],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
) -> tuple[int, list[dict[str, Any]]]:
    state = torch.load(io.BytesIO(blob), map_location=device, weights_only=True)
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointMismatch(f"checkpoint version {state.get('version')} is not {CHECKPOINT_VERSION}")
    if state["spec"] != spec.model_dump(mode="json"):
        raise CheckpointMismatch("the checkpoint was made for a different spec; it cannot resume this one")
    with torch.no_grad():
        for b, saved in zip(feedback, state["feedback"], strict=True):
            b.copy_(saved)
    optimizer.load_state_dict(state["optimizer"])
    return int(state["outer_step"]), list(state["metrics"])


def _finish(
    spec: ExperimentSpec,
    feedback: list[Tensor] | None,
    metrics: list[dict[str, Any]],
    should_stop: Callable[[], bool] | None,
) -> Result:
    per_step = spec.feedback.mode == "learned_per_step"
    final = [] if feedback is None else [b.detach() for b in feedback]
    if not all(torch.isfinite(b).all() for b in final):
        raise NonFiniteError("the learned feedback is not finite; lower outer.lr or set outer.clip_norm")
    summary = summarise(spec, [b[0] for b in final] or None, per_step, should_stop)
    summary["population"] = spec.population
    if metrics:
        summary["meta_loss"] = {"first": metrics[0]["meta_loss"], "last": metrics[-1]["meta_loss"]}
    if spec.population > 1 and final:
        summary["members"] = [
            member_summary(
                spec.model_copy(update={"seed": spec.seed + k}), [b[k] for b in final], per_step, should_stop
            )
            for k in range(spec.population)
        ]
    named = {f"B{l}": (b[0] if spec.population == 1 else b).cpu() for l, b in enumerate(final, start=2)}
    return Result(spec, named, metrics, summary)
