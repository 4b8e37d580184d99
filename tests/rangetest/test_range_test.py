"""The LR range test: the curve's rules on known curves, the in-graph loop on real
Keras training (weights restored, divergence stop), the blobs suggestion and the
result's JSON form.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
optuna = pytest.importorskip("optuna")

from lrsearch.rangetest import _range_test as rangetest  # noqa: E402
from lrsearch.lr import LRConfig  # noqa: E402
from lrsearch.rangetest import RangeTestResult, smooth, suggest_lr  # noqa: E402
from lrsearch.lr import make_optimizer  # noqa: E402
from conftest import SHORT_RANGE_TEST  # noqa: E402


def tiny_data(rows: int = 64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 2)).astype("float32")
    y = np.eye(3, dtype="float32")[(x[:, 0] > 0).astype(int) + (x[:, 1] > 1).astype(int)]
    return x, y


def compiled_model(optimizer: str = "sgd", momentum: float | None = 0.9) -> keras.Model:
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    config = LRConfig(optimizer=optimizer, lr=1e-7, momentum=momentum if optimizer == "sgd" else None)
    model.compile(optimizer=make_optimizer(config, 1, 1), loss="categorical_crossentropy")
    return model


# --------------------------------------------------------------------------- the curve


def test_smooth_is_bias_corrected():
    assert np.allclose(smooth([2.0] * 50, 0.98), 2.0)
    assert smooth([1.0, 3.0], 0.5)[1] == pytest.approx((0.25 * 1 + 0.5 * 3) / 0.75)


def test_rules_on_a_known_curve():
    lrs = np.geomspace(1e-6, 10, 701)
    x = np.log10(lrs)
    # Falls fastest at lr 1e-3 (a logistic step), lowest at lr 1e-1, then rises.
    loss = 2.0 - 1.0 / (1.0 + np.exp(-(x + 3.0) * 4)) + 0.5 * np.maximum(x + 1.0, 0) ** 2
    suggestion, min_lr, steepest_lr = suggest_lr(lrs, loss, "min/10")
    assert min_lr == pytest.approx(0.1, rel=0.05)
    assert suggestion == pytest.approx(min_lr / 10)
    assert steepest_lr == pytest.approx(1e-3, rel=0.05)
    assert suggest_lr(lrs, loss, "steepest")[0] == steepest_lr


def synthetic_result(losses, rule: str = "min/10", stopped: str = "diverged") -> RangeTestResult:
    """A range-test result of made-up batch losses over 1e-6..10 (beta 0.9: 10 warm-up iterations)."""
    return RangeTestResult(optimizer="sgd", batch_size=32, momentum=0.0, start_lr=1e-6, end_lr=10.0,
                           iterations=len(losses), beta=0.9, diverge_factor=4.0, rule=rule,
                           losses=tuple(losses), stopped=stopped, duration_s=0.1)


#: log10 of the learning rates of the synthetic curves, 100 iterations a decade.
LOG_LRS = np.log10(np.geomspace(1e-6, 10, 701))


def clean_curve(noise: float = 0.02) -> np.ndarray:
    """Falls from 2.2 to 0.6 around lr 1e-3, then slowly to its minimum (0.35) at lr 0.3, then blows up."""
    x = LOG_LRS
    loss = 2.2 - 1.6 / (1.0 + np.exp(-3 * (x + 3))) - 0.1 * np.clip(x + 3, 0, 2.5) + 3 * np.maximum(x + 0.5, 0) ** 2
    return loss + np.random.default_rng(0).normal(0, noise, x.size)


def test_a_clean_curve_gives_no_bump_warning():
    for rule in ("min/10", "steepest"):
        result = synthetic_result(clean_curve(), rule)
        assert 0.02 < result.min_lr / 10 < 0.06 and 3e-4 < result.steepest_lr < 3e-3
        assert result.bump is None and result.warning() is None


def test_a_loss_that_never_falls_or_still_falls_at_the_end_says_the_suggestion_says_little():
    noise = np.random.default_rng(1).normal(0, 0.01, LOG_LRS.size)
    flat = synthetic_result(1.1 + noise, stopped="end")  # a model that does not learn (gradients lost)
    assert flat.warning().startswith("warning: the smoothed loss never fell by 5% of its 1.1") and \
        "the suggestion says nothing" in flat.warning()
    falling = synthetic_result(2.0 - 0.2 * (LOG_LRS + 6) + noise, stopped="end")  # too few iterations, or end_lr low
    assert falling.min_lr > 5 and "still falling at the sweep's end (lr 10)" in falling.warning()
    assert "--end-lr" in falling.warning()


def test_a_suggestion_on_a_bump_warns_what_was_seen_and_what_to_do():
    """As blobs with SGD: the smoothed loss is about 0.6 at 1e-3..1e-2, climbs to
    about 2 at lr 0.03, falls again to its minimum near 0.3, and min/10 points at the bump."""
    bump = 1.4 * np.exp(-(((LOG_LRS - np.log10(0.03)) / 0.25) ** 2))
    result = synthetic_result(clean_curve() + bump)
    assert 0.02 < result.suggestion < 0.06
    loss, low, low_lr = result.bump
    assert loss > 1.5 and 0.5 < low < 0.65 and 1e-3 < low_lr < 0.02
    warning = result.warning()
    assert warning.startswith("warning: the suggestion sits on a bump of the smoothed loss")
    assert f"({loss:.3g} at lr {result.suggestion:.3g}, {loss / low:.1f}x its {low:.3g} at lr {low_lr:.3g})" in warning
    assert "look at the curve" in warning and f"at or below lr {low_lr:.3g}" in warning and "\n" not in warning
    assert RangeTestResult.from_json(result.to_json()).bump == pytest.approx(result.bump, rel=1e-4)
    steepest = synthetic_result(clean_curve() + bump, "steepest")  # the bump's falling side is steepest: on it too
    assert 0.03 < steepest.suggestion < 0.1 and steepest.warning()


def test_bump_margin_is_relative_and_ignores_the_warm_up():
    lrs = np.geomspace(1e-4, 1, 100)
    smoothed = np.full(100, 1.0)
    smoothed[50] = 1.0 + 0.9 * rangetest.BUMP_MARGIN  # a rise within the margin
    assert rangetest.find_bump(lrs, smoothed, lrs[50]) is None
    smoothed[50] = 1.0 + 1.1 * rangetest.BUMP_MARGIN
    assert rangetest.find_bump(lrs, smoothed, lrs[50]) == (smoothed[50], 1.0, lrs[0])
    smoothed[:10] = 0.1  # the moving average's first, unsettled values do not count
    assert rangetest.find_bump(lrs, smoothed, lrs[50], warmup=10) == (smoothed[50], 1.0, lrs[10])
    assert rangetest.find_bump(lrs, smoothed, lrs[5], warmup=10) is None


def test_rules_reject_unknown_names_and_short_curves():
    with pytest.raises(ValueError, match="'valley'"):
        suggest_lr([1e-3, 1e-2, 1e-1], [1.0, 0.5, 2.0], "valley")
    with pytest.raises(ValueError, match="only 2 finite"):
        suggest_lr([1e-3, 1e-2, 1e-1], [1.0, 0.5, math.nan])


# --------------------------------------------------------------------------- the loop


def test_range_test_restores_weights_and_optimizer_state():
    model = compiled_model()
    x, y = tiny_data()
    model(x[:1])
    before = [w.copy() for w in model.get_weights()]
    losses, stopped = rangetest.run_range_test(model, (x, y), batch_size=16, iterations=200, beta=0.9)
    assert len(losses) > 20 and np.isfinite(losses[:-1]).all()
    for saved, now in zip(before, model.get_weights()):
        np.testing.assert_array_equal(saved, now)
    assert int(model.optimizer.iterations.numpy()) == 0
    assert all(not np.any(v.numpy()) for v in model.optimizer.variables if "momentum" in v.path)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-7)


def test_range_test_stops_when_the_loss_blows_up():
    model = compiled_model()
    x, y = tiny_data()
    losses, stopped = rangetest.run_range_test(model, (x, y), batch_size=16, start_lr=1e-3, end_lr=1e6,
                                              iterations=400, beta=0.9)
    assert stopped in ("diverged", "nonfinite")
    assert len(losses) < 400
    lrs = rangetest.lr_steps(1e-3, 1e6, 400)[: len(losses)]
    assert lrs[-1] > 1.0  # it learned first, then blew up at a large LR


def test_range_test_reads_tf_data_datasets():
    tf = pytest.importorskip("tensorflow")
    model = compiled_model("adam")
    dataset = tf.data.Dataset.from_tensor_slices(tiny_data()).batch(16)
    losses, stopped = rangetest.run_range_test(model, dataset, batch_size=16, iterations=120, beta=0.9)
    assert len(losses) > 20


class Batches(keras.utils.PyDataset):
    """A PyDataset of (x, y) batches, yielded as lists, that counts its passes."""

    def __init__(self, x, y, batch):
        super().__init__()
        self.x, self.y, self.batch, self.passes = x, y, batch, 0

    def __len__(self):
        return math.ceil(len(self.x) / self.batch)

    def __getitem__(self, index):
        rows = slice(index * self.batch, (index + 1) * self.batch)
        return [self.x[rows], self.y[rows]]

    def on_epoch_end(self):
        self.passes += 1


def test_range_test_reads_a_keras_py_dataset_pass_after_pass():
    model = compiled_model("adam")
    batches = Batches(*tiny_data(), 16)
    losses, stopped = rangetest.run_range_test(model, batches, batch_size=16, iterations=120, beta=0.9)
    assert len(losses) > 20
    assert batches.passes >= len(losses) // len(batches) - 1  # 4 batches a pass: it went round


def test_range_test_reads_inputs_and_outputs_given_as_lists():
    """Two inputs of different widths and two outputs, each given as a Python list (tf.data
    would stack a list into one tensor, or refuse it)."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(96, 4)).astype("float32"), rng.normal(size=(96, 3)).astype("float32")
    first, second = (a[:, 0] > 0).astype("int32"), (b[:, 0] > 0).astype("int32")
    keras.backend.clear_session(free_memory=False)
    inputs = [keras.Input((4,)), keras.Input((3,))]
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()(inputs))
    model = keras.Model(inputs, [keras.layers.Dense(2, activation="softmax")(hidden),
                                 keras.layers.Dense(2, activation="softmax")(hidden)])
    model.compile(optimizer=make_optimizer(LRConfig(optimizer="adam", lr=1e-7), 1, 1),
                  loss=["sparse_categorical_crossentropy"] * 2)
    losses, stopped = rangetest.run_range_test(model, ([a, b], [first, second]), batch_size=16, iterations=60,
                                               beta=0.9)
    assert len(losses) > 20 and np.isfinite(losses[:20]).all()


@pytest.mark.parametrize("bad, message", [
    ({"start_lr": 0.0}, "start_lr"), ({"end_lr": 1e-8}, "end_lr must be > start_lr"),
    ({"iterations": 0}, "iterations"), ({"beta": 1.0}, "beta"), ({"diverge_factor": 1.0}, "diverge_factor"),
])
def test_range_test_checks_its_arguments(bad, message):
    with pytest.raises(ValueError, match=message):
        rangetest.run_range_test(compiled_model(), tiny_data(), batch_size=16, **bad)


def test_blobs_sgd_suggestion_lies_between_001_and_1(blobs_study):
    """The issue's check: the seed tutorial found 0.1 best and 1.0 unstable."""
    result = rangetest.find_lr(blobs_study, "sgd")
    assert result.rule == "min/10"
    assert 0.01 <= result.suggestion <= 1.0, result.describe()
    assert result.momentum == 0.0 and result.batch_size == 32
    assert len(result.lrs) == len(result.losses) == len(result.smoothed)
    assert result.lrs[0] == pytest.approx(1e-7)


def test_a_model_that_suggests_its_own_width_is_range_tested_with_one_drawn_by_the_study_seed(capfd):
    from lrsearch.study import load_study

    study = load_study(Path(__file__).resolve().parent.parent / "gallery" / "varying_architecture.py")
    first, again = (rangetest.find_lr(study, "adam", **SHORT_RANGE_TEST) for _ in range(2))
    assert len(first.losses) > 10 and first.losses == again.losses
    assert "A new study created" not in "".join(capfd.readouterr())


def test_find_lr_checks_momentum(blobs_study):
    with pytest.raises(ValueError, match="momentum applies to sgd only"):
        rangetest.find_lr(blobs_study, "adam", momentum=0.9)


def test_result_round_trips_through_json(short_sgd):
    again = RangeTestResult.from_json(short_sgd.to_json())
    assert again.inputs() == short_sgd.inputs()
    assert again.lrs == short_sgd.lrs
    assert np.allclose(again.losses, short_sgd.losses, rtol=1e-5)
    assert again.suggestion == pytest.approx(short_sgd.suggestion, rel=1e-3)
