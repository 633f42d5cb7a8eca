"""The functional inner optimisers agree with torch.optim for a fixed sequence of gradients."""

from __future__ import annotations

import pytest
import torch

from optfb.optimizers import InnerOptimizer


def _sequence():
    gen = torch.Generator().manual_seed(0)
    p0 = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    grads = [torch.randn(4, 3, generator=gen, dtype=torch.float64) for _ in range(6)]
    grads[2][0, 0] = 0.0  # an exact zero must not upset Adam
    return p0, grads


@pytest.mark.parametrize(
    ("mine", "reference"),
    [
        (
            InnerOptimizer("sgd", lr=0.1, weight_decay=0.01),
            lambda p: torch.optim.SGD([p], lr=0.1, weight_decay=0.01),
        ),
        (
            InnerOptimizer("momentum", lr=0.1, momentum=0.8),
            lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.8),
        ),
        (
            InnerOptimizer("momentum", lr=0.1, momentum=0.8, nesterov=True),
            lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.8, nesterov=True),
        ),
        (
            InnerOptimizer("adam", lr=0.01, betas=(0.8, 0.99), eps=1e-8),
            lambda p: torch.optim.Adam([p], lr=0.01, betas=(0.8, 0.99), eps=1e-8),
        ),
    ],
)
def test_matches_torch_optim(mine, reference):
    p0, grads = _sequence()
    params, slots = (p0.clone(),), mine.init((p0,))
    ref = p0.clone().requires_grad_()
    opt = reference(ref)
    for step, g in enumerate(grads, start=1):
        params, slots = mine.update(params, slots, (g,), step)
        ref.grad = g.clone()
        opt.step()
        torch.testing.assert_close(params[0], ref.detach(), rtol=1e-12, atol=1e-12)


def test_adam_meta_gradient_is_finite_through_zero_gradients():
    g = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = InnerOptimizer("adam", lr=0.1)
    p = torch.ones(3, dtype=torch.float64)
    (new,), _ = opt.update((p,), opt.init((p,)), (g,), 1)
    (d,) = torch.autograd.grad(new.sum(), g)
    assert torch.isfinite(d).all()


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="unknown inner optimizer 'rmsprop'"):
        InnerOptimizer("rmsprop")
