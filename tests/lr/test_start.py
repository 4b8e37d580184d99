"""The trials a new study starts from."""

from __future__ import annotations

from lrsearch.lr import Space, start_params


def test_a_new_study_starts_from_adam_sgd_with_momentum_and_rmsprop_at_their_usual_rates():
    assert start_params(Space()) == [
        {"optimizer": "adam", "schedule": "constant", "lr": 1e-3},
        {"optimizer": "sgd", "schedule": "constant", "lr": 1e-2, "momentum": 0.9},
        {"optimizer": "rmsprop", "schedule": "constant", "lr": 1e-3}]


def test_the_starts_keep_to_the_space_and_give_only_what_it_samples():
    space = Space(optimizers=("sgd", "adagrad"), schedules=("one_cycle",), peak_lr=(1e-4, 5e-2), momentum=(0.9, 0.9))
    assert start_params(space) == [{"optimizer": "sgd", "peak_lr": 5e-2}]  # 10 x 0.01 for a peak, clipped
    assert start_params(Space(optimizers=("adagrad",))) == []
    assert start_params(Space(optimizers=("adam",), lr=(1e-5, 1e-4))) == [{"schedule": "constant", "lr": 1e-4}]


def test_other_starts_keep_to_the_space_as_the_usual_ones_do():
    starts = (("sgd", {"lr": 0.3, "momentum": 0.5}), ("adagrad", {"lr": 2.0}))
    assert start_params(Space(), starts) == [{"optimizer": "sgd", "schedule": "constant", "lr": 0.3, "momentum": 0.5},
                                             {"optimizer": "adagrad", "schedule": "constant", "lr": 1.0}]
