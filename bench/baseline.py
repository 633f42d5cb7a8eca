"""The eager baseline: the obvious per-step loop of feedback-alignment training, not tuned.

The same mathematics as optfb.unroll with plain SGD and the "sum" objective (DESIGN §2):

    A_l = H_{l-1} W_l^T + b_l,  H_l = f(A_l),  C_t on minibatch t,  E_L = dC/dA_L
    E_l = (E_{l+1} B_{l+1}^T) * f'(A_l),  dW_l = E_l^T H_{l-1},  db_l = sum_i E_l,i
    W_l <- W_l - lr dW_l,  b_l <- b_l - lr db_l;   objective = sum_t C_t

Plain Python lists of 2-D tensors, one op per line of the formulas, f' recomputed from A; autograd
differentiates the whole loop once for the meta-gradient with respect to B.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

ACTIVATIONS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor] | None]] = {
    "linear": (lambda a: a, None),  # f' = 1: no product
    "tanh": (torch.tanh, lambda a: 1 - torch.tanh(a) ** 2),
    "sigmoid": (torch.sigmoid, lambda a: torch.sigmoid(a) * (1 - torch.sigmoid(a))),
    "relu": (torch.relu, lambda a: (a > 0).to(a.dtype)),
    "softplus": (F.softplus, torch.sigmoid),
}


def cost_and_error(out: Tensor, y: Tensor, loss: str) -> tuple[Tensor, Tensor]:
    """The batch-mean cost and E_L = dC/dA_L."""
    n = out.shape[0]
    if loss == "mse":
        diff = out - y
        return 0.5 * (diff**2).sum() / n, diff / n
    if loss == "cross_entropy":
        probs = torch.softmax(out, dim=1)
        onehot = F.one_hot(y, out.shape[1]).to(out.dtype)
        return F.cross_entropy(out, y), (probs - onehot) / n
    raise ValueError(f"unknown loss {loss!r}")


def unroll(
    weights: Sequence[Tensor],
    biases: Sequence[Tensor],
    feedback: Sequence[Tensor],
    batches: Sequence[tuple[Tensor, Tensor]],
    lr: float,
    activation: str,
    loss: str,
) -> tuple[Tensor, list[Tensor]]:
    """N steps of SGD with errors sent back through B; returns (sum of costs, [C_1..C_N])."""
    f, fprime = ACTIVATIONS[activation]
    W, b, B = list(weights), list(biases), list(feedback)
    layers = len(W)
    costs = []
    for x, y in batches:
        # forward
        hs, pre = [x], []
        h = x
        for l in range(layers):
            a = h @ W[l].t() + b[l]
            pre.append(a)
            if l < layers - 1:
                h = f(a)
                hs.append(h)
        c, e = cost_and_error(pre[-1], y, loss)
        costs.append(c)
        # errors through B, pseudo-gradients
        dW: list[Tensor] = [torch.empty(0)] * layers
        db: list[Tensor] = [torch.empty(0)] * layers
        for l in range(layers - 1, -1, -1):
            dW[l] = e.t() @ hs[l]
            db[l] = e.sum(0)
            if l > 0:
                e = e @ B[l - 1].t()
                if fprime is not None:
                    e = e * fprime(pre[l - 1])
        # plain SGD
        W = [W[l] - lr * dW[l] for l in range(layers)]
        b = [b[l] - lr * db[l] for l in range(layers)]
    return torch.stack(costs).sum(), costs
