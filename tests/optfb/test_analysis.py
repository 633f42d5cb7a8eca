"""The analysis measures: zero angles when B is W^T, and spectra of matrices with known values."""

from __future__ import annotations

import torch

from optfb.analysis import angle, probe, singular_values
from tests.optfb.tiny import tiny_batches, tiny_feedback, tiny_params

SIZES = [4, 5, 3, 2]


def test_angles_vanish_for_backprop_feedback_and_not_for_random():
    params = tiny_params(SIZES)
    ((x, y),) = tiny_batches(SIZES, 1, n=7)
    exact = probe(params, [w.T for w, _ in params[1:]], x, y, "tanh", "mse")
    for name in ("bw_angle", "signal_angle", "update_angle"):
        assert max(exact[name]) < 1e-4, (name, exact[name])
    random = probe(params, tiny_feedback(SIZES), x, y, "tanh", "mse")
    assert len(random["bw_angle"]) == 2 and len(random["signal_angle"]) == 2
    assert min(random["bw_angle"]) > 1 and random["update_angle"][0] > 1


def test_angle_and_singular_values_on_known_matrices():
    a = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(angle(a, b), torch.tensor(90.0, dtype=torch.float64))
    torch.testing.assert_close(angle(a, -a), torch.tensor(180.0, dtype=torch.float64))
    assert singular_values(torch.diag(torch.tensor([3.0, 1.0]))) == [3.0, 1.0]
    assert singular_values(torch.full((2, 2), float("nan"))) is None
