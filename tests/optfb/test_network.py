"""Pseudo-gradients: exact backprop when B = W^T, and the explicit feedback-alignment formula."""

from __future__ import annotations

import pytest
import torch

from optfb.network import feedback_gradients
from tests.optfb.tiny import tiny_batches, tiny_feedback, tiny_params

SIZES = [4, 5, 3, 2]


@pytest.mark.parametrize("activation", ["linear", "tanh", "sigmoid", "relu", "softplus"])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_backprop_equals_autograd(activation, loss):
    params = [(w.requires_grad_(), b.requires_grad_()) for w, b in tiny_params(SIZES)]
    ((x, y),) = tiny_batches(SIZES, 1, n=7, classes=loss == "cross_entropy")
    cost, grads = feedback_gradients(params, None, x, y, activation, loss)
    reference = torch.autograd.grad(cost, [t for pair in params for t in pair])
    for mine, ref in zip([t for pair in grads for t in pair], reference, strict=True):
        torch.testing.assert_close(mine, ref, rtol=1e-12, atol=1e-14)


def test_cost_is_the_documented_loss():
    params = tiny_params(SIZES)
    ((x, y),) = tiny_batches(SIZES, 1, n=7)
    cost, _ = feedback_gradients(params, None, x, y, "tanh", "mse")
    h = x
    for i, (w, b) in enumerate(params):
        h = h @ w.T + b
        h = torch.tanh(h) if i < len(params) - 1 else h
    assert torch.allclose(cost, 0.5 * ((h - y) ** 2).sum() / 7)


def test_feedback_alignment_formula_with_random_b():
    """E_l = (E_{l+1} B_{l+1}^T) * f'(A_l), written out layer by layer for a 4-5-3-2 tanh network."""
    params = tiny_params(SIZES)
    b2, b3 = tiny_feedback(SIZES)
    ((x, y),) = tiny_batches(SIZES, 1, n=7)
    (w1, c1), (w2, c2), (w3, c3) = params
    a1 = x @ w1.T + c1
    h1 = torch.tanh(a1)
    a2 = h1 @ w2.T + c2
    h2 = torch.tanh(a2)
    a3 = h2 @ w3.T + c3
    e3 = (a3 - y) / 7
    e2 = (e3 @ b3.T) * (1 - torch.tanh(a2) ** 2)
    e1 = (e2 @ b2.T) * (1 - torch.tanh(a1) ** 2)
    expected = [(e1.T @ x, e1.sum(0)), (e2.T @ h1, e2.sum(0)), (e3.T @ h2, e3.sum(0))]
    _, grads = feedback_gradients(params, [b2, b3], x, y, "tanh", "mse")
    for (dw, db), (ew, eb) in zip(grads, expected, strict=True):
        torch.testing.assert_close(dw, ew)
        torch.testing.assert_close(db, eb)
    # and it is not backprop: random B gives a different hidden-layer update
    _, true = feedback_gradients(params, None, x, y, "tanh", "mse")
    assert not torch.allclose(grads[0][0], true[0][0])


def test_leading_axes_are_independent_problems():
    members = [tiny_params(SIZES, seed=s) for s in range(3)]
    feedback = [tiny_feedback(SIZES, seed=10 + s) for s in range(3)]
    data = [tiny_batches(SIZES, 1, seed=20 + s, classes=True)[0] for s in range(3)]
    stacked = [
        (torch.stack([m[l][0] for m in members]), torch.stack([m[l][1] for m in members])) for l in range(3)
    ]
    fb = [torch.stack([f[l] for f in feedback]) for l in range(2)]
    x = torch.stack([d[0] for d in data])
    y = torch.stack([d[1] for d in data])
    cost, grads = feedback_gradients(stacked, fb, x, y, "sigmoid", "cross_entropy")
    for k in range(3):
        c_k, g_k = feedback_gradients(members[k], feedback[k], *data[k], "sigmoid", "cross_entropy")
        torch.testing.assert_close(cost[k], c_k)
        for (dw, db), (ew, eb) in zip(grads, g_k, strict=True):
            torch.testing.assert_close(dw[k], ew)
            torch.testing.assert_close(db[k], eb)


def test_wrong_number_of_feedback_matrices_is_refused():
    params = tiny_params(SIZES)
    ((x, y),) = tiny_batches(SIZES, 1)
    with pytest.raises(ValueError, match="need 2 feedback matrices"):
        feedback_gradients(params, tiny_feedback(SIZES)[:1], x, y)
