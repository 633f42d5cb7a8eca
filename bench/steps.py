"""The measured units of work: one outer step (unroll + meta-gradient w.r.t. B) for each side."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

import optfb
from bench import baseline
from bench.configs import Config, Problem
from optfb.unrolled import meta_gradient

Step = Callable[[], tuple[Tensor, tuple[Tensor, ...]]]


def optfb_step(cfg: Config, problem: Problem, checkpoint: Any = None) -> Step:
    """optfb.unroll forward and the backward pass to B; the objective is summed over any members."""

    def step() -> tuple[Tensor, tuple[Tensor, ...]]:
        meta, _, _ = optfb.unroll(
            problem.params,
            problem.feedback,
            problem.batches,
            "sgd",
            cfg.lr,
            cfg.activation,
            cfg.loss,
            "sum",
            checkpoint=checkpoint,
        )
        meta = meta.sum()
        return meta.detach(), meta_gradient(meta, problem.feedback)

    return step


def baseline_step(cfg: Config, problem: Problem) -> Step:
    """The eager baseline's forward loop and the backward pass to B."""

    def step() -> tuple[Tensor, tuple[Tensor, ...]]:
        meta, _ = baseline.unroll(
            problem.weights,
            problem.biases,
            problem.feedback,
            problem.batches,
            cfg.lr,
            cfg.activation,
            cfg.loss,
        )
        return meta.detach(), torch.autograd.grad(meta, problem.feedback)

    return step


def evaluation_step(cfg: Config, problem: Problem) -> Callable[[], Tensor]:
    """Inner training only, no graph kept (torch.no_grad): the cost of evaluating a B."""

    def step() -> Tensor:
        with torch.no_grad():
            meta, _, _ = optfb.unroll(
                problem.params, problem.feedback, problem.batches, "sgd", cfg.lr, cfg.activation, cfg.loss
            )
        return meta

    return step
