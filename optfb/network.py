"""The forward network and its pseudo-gradients: errors sent backwards through B (or W^T).

Shapes follow DESIGN §2 with any number of leading batch axes (a population of independent
problems, or evaluation seeds): W_l (..., d_l, d_{l-1}), b_l (..., d_l), X (..., n, d_0),
Y (..., n, d_L) or class indices (..., n). Costs come back with the leading axes, (...).

    A_l = H_{l-1} W_l^T + b_l,  H_l = f(A_l) (l < L),  output A_L
    E_L = dC/dA_L,  E_l = (E_{l+1} B_{l+1}^T) * f'(A_l),  dW_l = E_l^T H_{l-1},  db_l = sum_i E_l

Everything is explicit tensor algebra (no autograd.grad, no custom autograd.Function), so that
autograd can differentiate a whole unrolled training run once, exactly, with respect to B.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from optfb.activations import activation as _activation

Params = Sequence[tuple[Tensor, Tensor]]
Grads = list[tuple[Tensor, Tensor]]


def affine(h: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """h W^T + b with the bias add fused into the matmul where the shapes allow it."""
    if h.dim() == 2 and w.dim() == 2:
        return torch.addmm(b, h, w.t())  # (n, d_l)
    if h.dim() == 3 and w.dim() == 3:
        return torch.baddbmm(b.unsqueeze(-2), h, w.transpose(-1, -2))  # (K, n, d_l)
    return h @ w.transpose(-1, -2) + b.unsqueeze(-2)


def forward(params: Params, x: Tensor, activation: str) -> tuple[list[Tensor], list[Tensor]]:
    """Pre-activations [A_1..A_L] and layer inputs [H_0..H_{L-1}]."""
    f, _ = _activation(activation)
    pre, inputs = [], []
    h = x
    for index, (w, b) in enumerate(params):
        inputs.append(h)
        a = affine(h, w, b)
        pre.append(a)
        if index < len(params) - 1:
            h = f(a)
    return pre, inputs


def output_error(out: Tensor, y: Tensor, loss: str) -> tuple[Tensor, Tensor]:
    """E_L = dC/dA_L in closed form, and the residual that `cost_of` turns into C.

    The residual is out - y (mse) or log softmax(out) (cross-entropy): the cost needs nothing
    else, so the unroll can keep residuals and price a whole segment of steps in one batched op.
    """
    n = out.shape[-2]
    if loss == "mse":
        residual = out - y  # (..., n, d_L)
        return residual * (1.0 / n), residual
    if loss == "cross_entropy":
        logp = torch.log_softmax(out, dim=-1)  # (..., n, d_L)
        target = torch.zeros_like(out).scatter_(-1, y.long().unsqueeze(-1), 1.0)
        return (logp.exp() - target) * (1.0 / n), logp
    raise ValueError(f"unknown loss {loss!r}; choose 'mse' or 'cross_entropy'")


def cost_of(residual: Tensor, y: Tensor, loss: str) -> Tensor:
    """The batch-mean cost (...,) from output_error's residual; leading axes may stack steps.

    mse: C = 1/(2n) sum_i ||A_L,i - Y_i||^2;  cross-entropy: C = -1/n sum_i log softmax(A_L,i)[Y_i]
    """
    n = residual.shape[-2]
    if loss == "mse":
        return residual.square().sum((-2, -1)) * (0.5 / n)
    return residual.gather(-1, y.long().unsqueeze(-1)).sum((-2, -1)) * (-1.0 / n)


def cost(params: Params, x: Tensor, y: Tensor, activation: str, loss: str) -> Tensor:
    """The cost C (...,) of the network on one batch."""
    pre, _ = forward(params, x, activation)
    return cost_of(output_error(pre[-1], y, loss)[1], y, loss)


def error_signals(
    params: Params, feedback: Sequence[Tensor] | None, x: Tensor, y: Tensor, activation: str, loss: str
) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """The output residual (see output_error), the error signals [E_1..E_L] and the layer inputs
    [H_0..H_{L-1}]. feedback is [B_2..B_L] (B_l shaped like W_l^T), or None for exact backprop.
    """
    _, fprime = _activation(activation)
    pre, inputs = forward(params, x, activation)
    e, residual = output_error(pre[-1], y, loss)
    errors = [e]
    for l in range(len(params) - 1, 0, -1):  # the error of layer l from layer l + 1 (0-based)
        # Backprop sends E_{l+1} W_{l+1}; feedback alignment sends E_{l+1} B_{l+1}^T instead.
        back = params[l][0] if feedback is None else feedback[l - 1].transpose(-1, -2)
        e = e @ back  # (..., n, d_l)
        if fprime is not None:
            e = e * fprime(pre[l - 1], inputs[l])
        errors.append(e)
    errors.reverse()
    return residual, errors, inputs


def pseudo_gradients(
    params: Params, feedback: Sequence[Tensor] | None, x: Tensor, y: Tensor, activation: str, loss: str
) -> tuple[Tensor, Grads]:
    """The output residual and [(dW_l, db_l)]: the hot path of the unroll, which prices costs later."""
    if feedback is not None and len(feedback) != len(params) - 1:
        raise ValueError(f"need {len(params) - 1} feedback matrices B_2..B_L, got {len(feedback)}")
    residual, errors, inputs = error_signals(params, feedback, x, y, activation, loss)
    return residual, weight_updates(errors, inputs)


def weight_updates(errors: Sequence[Tensor], inputs: Sequence[Tensor]) -> Grads:
    """[(dW_l, db_l)] = [(E_l^T H_{l-1}, sum_i E_l,i)] from the error signals and layer inputs."""
    return [(e.transpose(-1, -2) @ h, e.sum(-2)) for e, h in zip(errors, inputs, strict=True)]


def feedback_gradients(
    params: Params,
    feedback: Sequence[Tensor] | None,
    x: Tensor,
    y: Tensor,
    activation: str = "tanh",
    loss: str = "mse",
) -> tuple[Tensor, Grads]:
    """The cost and the pseudo-gradients [(dW_l, db_l)]; with feedback None, the true gradients."""
    residual, grads = pseudo_gradients(params, feedback, x, y, activation, loss)
    return cost_of(residual, y, loss), grads
