"""The unrolled inner training run, differentiable with respect to the feedback matrices.

    theta_t = update(theta_{t-1}, pseudo_grad(theta_{t-1}, B or B_t, batch_t)),  t = 1..N
    meta-objective: sum_t C_t ("sum"), (1/N) sum_t C_t ("mean"), C(theta_N; held-out) ("final")

Each step's pseudo-gradients are plain tensor algebra, so one backward pass through the whole run
gives the exact meta-gradient dObjective/dB. With checkpointing, segments of k inner steps keep
only their starting state and are recomputed during the backward pass: the same gradient in
O(N/k + k) memory instead of O(N).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint as _checkpoint

from optfb.network import Params, cost, cost_of, pseudo_gradients
from optfb.optimizers import InnerOptimizer, Tensors

Batches = Sequence[tuple[Tensor, Tensor]]
OBJECTIVES = ("sum", "mean", "final")
# "auto" checkpointing starts when the eager unroll would keep more than this.
AUTO_CHECKPOINT_BYTES = 1 << 30
# Without autograd, residuals are priced every this many steps.
NO_GRAD_SEGMENT = 64


def flatten(params: Params) -> Tensors:
    return tuple(t for pair in params for t in pair)


def pairs(flat: Tensors) -> list[tuple[Tensor, Tensor]]:
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


def feedback_at(feedback: Sequence[Tensor] | None, t: int, per_step: bool) -> Sequence[Tensor] | None:
    """The feedback used at inner step t (0-based); a per-step set holds its last B beyond N."""
    if feedback is None or not per_step:
        return feedback
    return [b.select(-3, min(t, b.shape[-3] - 1)) for b in feedback]


def inner_step(
    opt: InnerOptimizer,
    params: Tensors,
    slots: Tensors,
    step: int,
    feedback: Sequence[Tensor] | None,
    x: Tensor,
    y: Tensor,
    activation: str,
    loss: str,
) -> tuple[Tensors, Tensors, Tensor]:
    """One inner step (step counts from 1): new params, new slots, and the residual that prices
    C_step (network.cost_of), so that costs can be computed for many steps at once."""
    residual, grads = pseudo_gradients(pairs(params), feedback, x, y, activation, loss)
    params, slots = opt.update(params, slots, flatten(grads), step)
    return params, slots, residual


@dataclass(frozen=True)
class Run:
    """What every inner step of one unroll shares: the optimiser, the feedback and the data."""

    opt: InnerOptimizer
    feedback: Sequence[Tensor] | None
    per_step: bool
    batches: Batches
    activation: str
    loss: str

    def steps(
        self, params: Tensors, slots: Tensors, start: int, stop: int
    ) -> tuple[Tensors, Tensors, Tensor]:
        """Inner steps start..stop-1 (0-based): the state after them and their costs (k, ...)."""
        residuals, targets = [], []
        for t in range(start, stop):
            x, y = self.batches[t]
            fb = feedback_at(self.feedback, t, self.per_step)
            params, slots, r = inner_step(
                self.opt, params, slots, t + 1, fb, x, y, self.activation, self.loss
            )
            residuals.append(r)
            targets.append(y)
        # One batched op prices every step of the segment: fewer autograd nodes than one per step.
        return params, slots, cost_of(torch.stack(residuals), torch.stack(targets), self.loss)

    def recomputed(
        self, params: Tensors, slots: Tensors, start: int, stop: int
    ) -> tuple[Tensors, Tensors, Tensor]:
        """`steps` under activation checkpointing: the forward pass keeps nothing of the segment but
        its inputs, and the segment runs again during the backward pass.

        Reentrant checkpointing: the segment's forward runs without a graph at all, where the
        non-reentrant kind keeps a graph of placeholders per step (measured: ~60 kB per inner step
        on the M benchmark, most of the budget at N = 5000). It needs the feedback as an explicit
        input, and the meta-gradient taken with .backward() rather than torch.autograd.grad.
        """
        n, m = len(params), len(slots)
        feedback = list(self.feedback or ())

        def body(*inputs: Tensor) -> Tensors:
            run = replace(self, feedback=list(inputs[n + m :]) if feedback else None)
            p, s, c = run.steps(inputs[:n], inputs[n : n + m], start, stop)
            return (*p, *s, c)

        out = _checkpoint(body, *params, *slots, *feedback, use_reentrant=True, preserve_rng_state=False)
        return tuple(out[:n]), tuple(out[n : n + m]), out[-1]


def segment_length(checkpoint: Any, steps: int, step_bytes: int) -> int:
    """How many inner steps one recomputed segment holds (steps itself: no checkpointing)."""
    if checkpoint is None or checkpoint == "none":
        return steps
    if checkpoint == "auto":
        checkpoint = "sqrt" if steps * step_bytes > AUTO_CHECKPOINT_BYTES else "none"
        return segment_length(checkpoint, steps, step_bytes)
    if checkpoint == "sqrt":
        return max(1, math.isqrt(steps))
    if isinstance(checkpoint, int) and not isinstance(checkpoint, bool) and checkpoint >= 1:
        return min(checkpoint, steps)
    raise ValueError(f"checkpoint must be None, 'none', 'auto', 'sqrt' or a positive int, not {checkpoint!r}")


def step_bytes(params: Tensors, x: Tensor) -> int:
    """A rough count of what autograd keeps per inner step: activations and parameter-sized temporaries."""
    n = x.shape[-2]
    lead = x.numel() // (n * x.shape[-1])
    widths = x.shape[-1] + sum(b.shape[-1] for b in params[1::2])
    return x.element_size() * (4 * lead * n * widths + 6 * sum(p.numel() for p in params))


def unroll(
    params: Params,
    feedback: Sequence[Tensor] | None,
    batches: Batches,
    optimizer: str = "sgd",
    lr: float = 0.01,
    activation: str = "tanh",
    loss: str = "mse",
    objective: str = "sum",
    *,
    momentum: float = 0.9,
    nesterov: bool = False,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    heldout: tuple[Tensor, Tensor] | None = None,
    checkpoint: Any = None,
    per_step: bool | None = None,
) -> tuple[Tensor, Tensor, list[tuple[Tensor, Tensor]]]:
    """Train the forward weights for len(batches) steps; return (meta_objective, costs (N, ...), params).

    feedback: [B_2..B_L], per-step tensors with an N axis third from last ((..., N, d_{l-1}, d_l)),
    or None for exact backprop. per_step: None infers it from the ranks of B and W.
    objective "final" is the cost of the final params on `heldout`. With checkpointing, take the
    meta-gradient with `.backward()` (torch.autograd.grad cannot reach through reentrant segments).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {OBJECTIVES}")
    if objective == "final" and heldout is None:
        raise ValueError("objective 'final' needs heldout=(x, y)")
    steps = len(batches)
    if steps < 1:
        raise ValueError("unroll needs at least one batch")
    if per_step is None:
        per_step = feedback is not None and feedback[0].dim() > params[1][0].dim()
    run = Run(
        InnerOptimizer(optimizer, lr, momentum, nesterov, betas, eps, weight_decay),
        feedback,
        per_step,
        batches,
        activation,
        loss,
    )
    flat = flatten(params)
    slots = run.opt.init(flat)
    if torch.is_grad_enabled():
        k = segment_length(checkpoint, steps, step_bytes(flat, batches[0][0]))
        segment = run.steps if k == steps else run.recomputed
    else:  # nothing is kept for a backward pass: price short segments so memory stays flat in N
        k, segment = min(steps, NO_GRAD_SEGMENT), run.steps
    chunks = []
    for start in range(0, steps, k):
        flat, slots, costs = segment(flat, slots, start, min(start + k, steps))
        chunks.append(costs)
    costs = torch.cat(chunks)
    final = pairs(flat)
    if objective == "sum":
        meta = costs.sum(0)
    elif objective == "mean":
        meta = costs.mean(0)
    else:
        assert heldout is not None
        meta = cost(final, heldout[0], heldout[1], activation, loss)
    return meta, costs, final


def meta_gradient(objective: Tensor, feedback: Sequence[Tensor]) -> tuple[Tensor, ...]:
    """d(objective)/d(feedback) through a possibly checkpointed unroll, by backward(): reentrant
    segments cannot be reached by torch.autograd.grad. feedback must be leaf tensors; their .grad
    fields are left as they were."""
    before = [b.grad for b in feedback]
    for b in feedback:
        b.grad = None
    objective.backward()
    grads = tuple(torch.zeros_like(b) if b.grad is None else b.grad for b in feedback)
    for b, g in zip(feedback, before, strict=True):
        b.grad = g
    return grads
