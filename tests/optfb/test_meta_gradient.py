"""The meta-gradient dObjective/dB through the whole unroll, against central finite differences."""

from __future__ import annotations

import pytest
import torch

import optfb
from optfb.unrolled import meta_gradient
from tests.optfb.tiny import tiny_batches, tiny_feedback, tiny_params

SIZES = [4, 3, 3, 2]
STEPS = 4


def _objective(feedback, optimizer, objective, loss="mse", activation="tanh", checkpoint=None, per_step=None):
    classes = loss == "cross_entropy"
    batches = tiny_batches(SIZES, STEPS, classes=classes)
    heldout = tiny_batches(SIZES, 1, n=9, seed=99, classes=classes)[0]
    meta, _, _ = optfb.unroll(
        tiny_params(SIZES),
        feedback,
        batches,
        optimizer=optimizer,
        lr=0.3,
        activation=activation,
        loss=loss,
        objective=objective,
        heldout=heldout,
        checkpoint=checkpoint,
        momentum=0.8,
        weight_decay=0.01,
        per_step=per_step,
    )
    return meta


def _finite_difference(feedback, f, eps=1e-6):
    grads = []
    for b in feedback:
        g = torch.zeros_like(b)
        for i in range(b.numel()):
            with torch.no_grad():
                b.view(-1)[i] += eps
                up = f(feedback).item()
                b.view(-1)[i] -= 2 * eps
                down = f(feedback).item()
                b.view(-1)[i] += eps
            g.view(-1)[i] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


def _check(feedback, f):
    feedback = [b.clone().requires_grad_() for b in feedback]
    exact = torch.autograd.grad(f(feedback), feedback)
    numeric = _finite_difference([b.detach().clone() for b in feedback], f)
    for e, n in zip(exact, numeric, strict=True):
        assert e.abs().max() > 1e-6, "a vanishing meta-gradient would make this check empty"
        torch.testing.assert_close(e, n, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("objective", ["sum", "mean", "final"])
@pytest.mark.parametrize("per_step", [False, True])
def test_meta_gradient_matches_finite_differences(optimizer, objective, per_step):
    feedback = tiny_feedback(SIZES, steps=STEPS if per_step else None)
    _check(feedback, lambda fb: _objective(fb, optimizer, objective, per_step=per_step))


@pytest.mark.parametrize("activation", ["sigmoid", "softplus", "linear"])
def test_meta_gradient_other_smooth_activations_cross_entropy(activation):
    _check(tiny_feedback(SIZES), lambda fb: _objective(fb, "adam", "sum", "cross_entropy", activation))


@pytest.mark.parametrize("checkpoint", [1, 3, "sqrt"])
def test_checkpointed_unroll_gives_the_same_meta_gradient(checkpoint):
    feedback = [b.requires_grad_() for b in tiny_feedback(SIZES)]
    eager = torch.autograd.grad(_objective(feedback, "adam", "sum"), feedback)
    saved = meta_gradient(_objective(feedback, "adam", "sum", checkpoint=checkpoint), feedback)
    for a, b in zip(eager, saved, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)


def test_per_step_feedback_holds_its_last_set_beyond_n():
    fb = tiny_feedback(SIZES, steps=2)
    last = [b[-1] for b in fb]
    batches = tiny_batches(SIZES, 5)
    _, per_step_costs, _ = optfb.unroll(
        tiny_params(SIZES), [torch.stack([b[0], b[1], b[1], b[1], b[1]]) for b in fb], batches
    )
    _, held_costs, _ = optfb.unroll(tiny_params(SIZES), fb, batches)
    torch.testing.assert_close(per_step_costs, held_costs)
    _, static_tail, _ = optfb.unroll(tiny_params(SIZES), last, batches)
    assert not torch.allclose(static_tail, held_costs)  # the first step really used B^(1)


def test_backprop_unroll_is_plain_gradient_descent():
    params = tiny_params(SIZES)
    batches = tiny_batches(SIZES, 3)
    _, _, final = optfb.unroll(params, None, batches, lr=0.1)
    ws = [t.clone().requires_grad_() for pair in params for t in pair]
    for x, y in batches:
        pairs = [(ws[i], ws[i + 1]) for i in range(0, len(ws), 2)]
        h = x
        for i, (w, b) in enumerate(pairs):
            h = h @ w.T + b
            h = torch.tanh(h) if i < len(pairs) - 1 else h
        c = 0.5 * ((h - y) ** 2).sum() / len(x)
        g = torch.autograd.grad(c, ws)
        ws = [(w - 0.1 * gi).detach().requires_grad_() for w, gi in zip(ws, g, strict=True)]
    for mine, ref in zip([t for pair in final for t in pair], ws, strict=True):
        torch.testing.assert_close(mine, ref.detach())


def test_final_objective_needs_heldout():
    with pytest.raises(ValueError, match="heldout"):
        optfb.unroll(tiny_params(SIZES), None, tiny_batches(SIZES, 2), objective="final")


def test_population_per_step_checkpointed_meta_gradient_equals_member_by_member():
    """K problems in one program: each member's meta-gradient is its own single-problem one."""
    members = range(3)
    params = [tiny_params(SIZES, seed=s) for s in members]
    feedback = [tiny_feedback(SIZES, seed=10 + s, steps=STEPS) for s in members]
    data = [tiny_batches(SIZES, STEPS, seed=20 + s) for s in members]
    stacked_params = [
        (torch.stack([p[l][0] for p in params]), torch.stack([p[l][1] for p in params])) for l in range(3)
    ]
    stacked_fb = [torch.stack([f[l] for f in feedback]).requires_grad_() for l in range(2)]
    batches = [
        (torch.stack([d[t][0] for d in data]), torch.stack([d[t][1] for d in data])) for t in range(STEPS)
    ]
    meta, costs, _ = optfb.unroll(
        stacked_params, stacked_fb, batches, optimizer="adam", lr=0.1, checkpoint=2, per_step=True
    )
    assert meta.shape == (3,) and costs.shape == (STEPS, 3)
    grads = meta_gradient(meta.sum(), stacked_fb)
    for k in members:
        fb = [b.clone().requires_grad_() for b in feedback[k]]
        m, _, _ = optfb.unroll(params[k], fb, data[k], optimizer="adam", lr=0.1)
        torch.testing.assert_close(meta[k], m)
        for g, mine in zip(torch.autograd.grad(m, fb), grads, strict=True):
            torch.testing.assert_close(mine[k], g)


def test_unroll_without_grad_gives_the_same_costs_in_short_segments():
    batches = tiny_batches(SIZES, 150)
    with_grad = optfb.unroll(tiny_params(SIZES), tiny_feedback(SIZES), batches)
    with torch.no_grad():
        without = optfb.unroll(tiny_params(SIZES), tiny_feedback(SIZES), batches)
    torch.testing.assert_close(without[1], with_grad[1].detach())
    assert without[1].shape == (150,)
