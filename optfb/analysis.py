"""Measures that compare feedback B with the forward weights (question 1) and across steps (question 2).

angle(a, b) = arccos(<a, b> / (|a| |b|)) in degrees, over the trailing axes, per leading index
B-W angle:      angle(B_l, W_l^T) as W trains
signal angle:   angle(E_l computed with B, E_l computed with W^T): Lillicrap's measure
update angle:   angle(all pseudo-gradients with B, the true gradient)
spectra:        singular values of B_l, of W_l^T, and of an iid Gaussian matrix of equal norm
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from optfb.network import Params, error_signals, weight_updates


def angle(a: Tensor, b: Tensor, dims: int = 2) -> Tensor:
    """Degrees between a and b over their last `dims` axes (leading axes are kept)."""
    axes = tuple(range(-dims, 0))
    cos = (a * b).sum(axes) / (a.norm(dim=axes) * b.norm(dim=axes)).clamp_min(1e-300)
    return torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))


def _flat(grads: Sequence[tuple[Tensor, Tensor]], lead: int) -> Tensor:
    return torch.cat([t.reshape(*t.shape[:lead], -1) for pair in grads for t in pair], dim=-1)


def probe(
    params: Params, feedback: Sequence[Tensor], x: Tensor, y: Tensor, activation: str, loss: str
) -> dict[str, list[float]]:
    """Angles at one point of training, averaged over the leading (seed) axis."""
    lead = x.dim() - 2
    _, errors_fb, inputs = error_signals(params, feedback, x, y, activation, loss)
    _, errors_bp, _ = error_signals(params, None, x, y, activation, loss)
    pseudo, true = weight_updates(errors_fb, inputs), weight_updates(errors_bp, inputs)
    return {
        "bw_angle": [
            angle(b, w.transpose(-1, -2)).mean().item()
            for b, (w, _) in zip(feedback, params[1:], strict=True)
        ],
        "signal_angle": [
            angle(ef, eb).mean().item() for ef, eb in zip(errors_fb[:-1], errors_bp[:-1], strict=True)
        ],
        "update_angle": [angle(_flat(pseudo, lead), _flat(true, lead), dims=1).mean().item()],
    }


def singular_values(m: Tensor) -> list[float] | None:
    """Singular values, averaged over any leading axes, largest first (None for a diverged matrix)."""
    if not torch.isfinite(m).all():
        return None
    s = torch.linalg.svdvals(m.double())
    return s.reshape(-1, s.shape[-1]).mean(0).tolist()


def spectra(feedback: Sequence[Tensor], params: Params, seed: int) -> dict[str, list[dict[str, object]]]:
    """Per B_l: its singular values against W_l^T's and an iid Gaussian matrix of the same norm."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for l, (b, (w, _)) in enumerate(zip(feedback, params[1:], strict=True), start=2):
        b = b.detach().double().cpu()
        w_t = w.detach().double().cpu().transpose(-1, -2)
        rand = torch.randn(b.shape[-2:], generator=gen, dtype=torch.float64)
        rand = rand * (b.reshape(-1, *b.shape[-2:]).norm(dim=(-2, -1)).mean() / rand.norm())
        out.append(
            {
                "layer": f"B{l}",
                "feedback": singular_values(b),
                "random_equal_norm": singular_values(rand),
                "forward_transpose": singular_values(w_t),
                "norm_ratio": (b.norm(dim=(-2, -1)).mean() / w_t.norm(dim=(-2, -1)).mean()).item(),
            }
        )
    return {"spectra": out}


def per_step_drift(feedback: Sequence[Tensor]) -> list[dict[str, object]]:
    """For B_l^(t) with a step axis third from last: |B_t| and angle(B_t, B_{t+1}) along t."""
    out = []
    for l, b in enumerate(feedback, start=2):
        b = b.detach().double().cpu()
        b = b.reshape(-1, *b.shape[-3:]).movedim(1, 0)  # (N, K, d_{l-1}, d_l)
        norms = b.norm(dim=(-2, -1)).mean(-1)
        turns = angle(b[1:], b[:-1]).mean(-1) if len(b) > 1 else torch.zeros(0)
        out.append({"layer": f"B{l}", "norm": norms.tolist(), "step_angle": turns.tolist()})
    return out


def json_safe(value: Any) -> Any:
    """The same nested numbers with NaN and infinities as None: JSON (and a database) has no NaN,
    and a run that diverges at a long horizon is a result, not an error."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
