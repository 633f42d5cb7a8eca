"""Meta-training: learned B beats iid B, resumes exactly, stops cleanly, refuses non-finite runs."""

from __future__ import annotations

import pytest
import torch

import optfb
from optfb.spec import ExperimentSpec


def _spec(**changes) -> ExperimentSpec:
    base = {
        "task": {"kind": "linear_teacher", "input_dim": 10, "output_dim": 5},
        "network": {"hidden": [8], "activation": "linear"},
        "feedback": {"mode": "learned", "scale": 0.5},
        "inner": {"steps": 20, "batch_size": 16, "lr": 0.02},
        "outer": {"steps": 40, "lr": 0.03},
        "eval": {"horizons": [20, 100], "seeds": 8, "analysis_points": 2},
        "device": "cpu",
    }
    for key, value in changes.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) else value
    return ExperimentSpec.model_validate(base)


def test_learned_feedback_beats_iid_random_on_held_out_seeds():
    result = optfb.run_experiment(_spec())
    at_n = result.summary["horizons"]["20"]
    # Stated margin: at least 15% lower mean cost over the N trained steps, on 8 unseen seeds.
    assert at_n["learned"]["mean_loss"] < 0.85 * at_n["random"]["mean_loss"]
    # and it still helps at 5x the trained horizon (question 3)
    at_5n = result.summary["horizons"]["100"]
    assert at_5n["learned"]["mean_loss"] < at_5n["random"]["mean_loss"]
    assert result.metrics[-1]["meta_loss"] < result.metrics[0]["meta_loss"]
    assert result.feedback["B2"].shape == (8, 5)


def test_resume_from_a_mid_run_checkpoint_equals_the_uninterrupted_run(tiny_spec):
    blobs = {}
    whole = optfb.run_experiment(
        tiny_spec, on_checkpoint=lambda blob, step: blobs.__setitem__(step, blob), checkpoint_every=2
    )
    assert sorted(blobs) == [2, 4, 6]
    resumed = optfb.run_experiment(tiny_spec, resume=blobs[4])
    assert torch.equal(whole.feedback["B2"], resumed.feedback["B2"])
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(whole.metrics) == drop(resumed.metrics)
    assert whole.summary["horizons"] == resumed.summary["horizons"]


def test_a_checkpoint_for_another_spec_is_refused(tiny_spec):
    blobs = []
    optfb.run_experiment(tiny_spec, on_checkpoint=lambda blob, step: blobs.append(blob), checkpoint_every=3)
    other = tiny_spec.model_copy(update={"seed": 7})
    with pytest.raises(ValueError, match="different spec"):
        optfb.run_experiment(other, resume=blobs[0])


def test_should_stop_is_polled_every_outer_step(tiny_spec):
    seen = []
    with pytest.raises(optfb.Stopped) as stop:
        optfb.run_experiment(
            tiny_spec, on_progress=lambda s, t, m: seen.append((s, t)), should_stop=lambda: len(seen) >= 2
        )
    assert stop.value.outer_step == 2
    assert seen == [(1, 6), (2, 6)]


def test_a_diverging_run_fails_naming_the_outer_step(tiny_spec):
    spec = tiny_spec.model_copy(
        update={
            "dtype": "float32",
            "inner": tiny_spec.inner.model_copy(update={"lr": 1e4}),
            "network": tiny_spec.network.model_copy(update={"activation": "linear"}),
        }
    )
    with pytest.raises(optfb.NonFiniteError, match="outer step 1"):
        optfb.run_experiment(spec)


def test_per_step_mode_learns_one_b_per_inner_step(tiny_spec):
    spec = tiny_spec.model_copy(
        update={"feedback": tiny_spec.feedback.model_copy(update={"mode": "learned_per_step"})}
    )
    result = optfb.run_experiment(spec)
    b2 = result.feedback["B2"]
    assert b2.shape == (5, 5, 3)
    assert not torch.equal(b2[0], b2[-1])  # the steps moved apart from their common start
    drift = result.summary["analysis"]["per_step"][0]
    assert len(drift["norm"]) == 5 and len(drift["step_angle"]) == 4
    # evaluation runs to 12 > N = 5 steps with B^(N) held
    assert result.summary["horizons"]["12"]["learned"]["steps"] == 12


def test_population_members_equal_single_runs_with_their_seeds(tiny_spec):
    spec = tiny_spec.model_copy(update={"population": 3, "seed": 4})
    batched = optfb.run_experiment(spec)
    assert batched.feedback["B2"].shape == (3, 5, 3)
    assert len(batched.summary["members"]) == 3
    single = optfb.run_experiment(tiny_spec.model_copy(update={"seed": 6}))
    torch.testing.assert_close(batched.feedback["B2"][2], single.feedback["B2"], rtol=1e-10, atol=1e-12)


def test_baselines_run_without_meta_training(tiny_spec):
    for mode in ("random", "backprop"):
        spec = tiny_spec.model_copy(update={"feedback": tiny_spec.feedback.model_copy(update={"mode": mode})})
        result = optfb.run_experiment(spec)
        assert result.metrics == []
        assert set(result.summary["horizons"]["5"]) == {"random", "backprop"}
        assert ("B2" in result.feedback) == (mode == "random")


def test_evaluate_long_horizons_and_summary_analysis(tiny_spec):
    result = optfb.run_experiment(tiny_spec)
    stats = optfb.evaluate(tiny_spec, result.feedback, steps=200, seeds=[0, 1, 2])
    assert len(stats["loss_curve"]) == 200 and stats["seeds"] == 3
    assert stats["final_loss"] < stats["loss_curve"][0]
    analysis = result.summary["analysis"]
    assert set(analysis["angles"]) == {"learned", "random"}
    assert 0 <= analysis["angles"]["learned"]["bw_angle"][-1][0] <= 180
    spectrum = analysis["spectra"][0]
    assert len(spectrum["feedback"]) == 3 and spectrum["norm_ratio"] > 0


def test_evaluation_seeds_are_never_training_draws(tiny_spec):
    from optfb.tasks import evaluation_draws, training_draws

    train = {training_draws(tiny_spec, tiny_spec.seed, j) for j in range(100)}
    evals = {evaluation_draws(tiny_spec, s) for s in range(100)}
    keys = lambda draws: {k for d in draws for k in (d.teacher, d.data, d.init)}  # noqa: E731
    assert not keys(train) & keys(evals)


def test_divergence_at_a_long_horizon_is_reported_as_null_not_nan(tiny_spec):
    import json

    spec = tiny_spec.model_copy(
        update={
            "dtype": "float32",
            "feedback": tiny_spec.feedback.model_copy(update={"mode": "random"}),
            "network": tiny_spec.network.model_copy(update={"activation": "linear"}),
            "inner": tiny_spec.inner.model_copy(update={"lr": 3.0}),
            "eval": tiny_spec.eval.model_copy(update={"horizons": [300]}),
        }
    )
    result = optfb.run_experiment(spec)
    stats = result.summary["horizons"]["300"]["random"]
    assert stats["diverged_seeds"] == 2 and stats["final_loss"] is None
    json.loads(json.dumps(result.summary, allow_nan=False))


def test_digits_reports_test_accuracy_with_the_final_objective():
    spec = ExperimentSpec.model_validate(
        {
            "task": {"kind": "digits"},
            "network": {"hidden": [16], "activation": "tanh", "init": "xavier"},
            "feedback": {"mode": "learned", "scale": 0.2},
            "inner": {"optimizer": "adam", "lr": 0.01, "steps": 30, "batch_size": 32},
            "outer": {"steps": 2, "lr": 0.003, "objective": "final"},
            "eval": {"horizons": [30], "seeds": 2, "analysis_points": 2},
            "device": "cpu",
        }
    )
    result = optfb.run_experiment(spec)
    for kind in ("learned", "random", "backprop"):
        stats = result.summary["horizons"]["30"][kind]
        assert 0.3 < stats["test_accuracy"] <= 1.0  # ten classes: chance is 0.1
        assert stats["test_loss"] > 0


def test_evaluate_checks_feedback_shapes_and_takes_a_backprop_result(tiny_spec):
    population = optfb.run_experiment(tiny_spec.model_copy(update={"population": 2}))
    with pytest.raises(ValueError, match=r"B2 has shape \(2, 5, 3\).*result.feedback\['B2'\]\[k\]"):
        optfb.evaluate(tiny_spec, population.feedback, steps=5)
    one = optfb.evaluate(tiny_spec, {"B2": population.feedback["B2"][1]}, steps=5)
    assert len(one["loss_curve"]) == 5
    backprop = optfb.evaluate(tiny_spec, {}, steps=5)
    assert backprop == optfb.evaluate(tiny_spec, None, steps=5)


def test_should_stop_also_stops_the_evaluation(tiny_spec):
    spec = tiny_spec.model_copy(update={"feedback": tiny_spec.feedback.model_copy(update={"mode": "random"})})
    with pytest.raises(optfb.Stopped):
        optfb.run_experiment(spec, should_stop=lambda: True)


def test_checkpointed_meta_training_learns_the_same_feedback(tiny_spec):
    def run(checkpoint):
        outer = tiny_spec.outer.model_copy(update={"checkpoint": checkpoint})
        return optfb.run_experiment(tiny_spec.model_copy(update={"outer": outer}))

    torch.testing.assert_close(run(2).feedback["B2"], run("none").feedback["B2"], rtol=1e-10, atol=1e-12)
