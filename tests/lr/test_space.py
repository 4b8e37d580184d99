"""The search space: every branch reachable, conditional parameters only on their branch,
every sample a valid Keras configuration."""

from __future__ import annotations

import itertools

import optuna
import pytest

from lrsearch.lr import OPTIMIZERS, SCHEDULES, LRConfig, Space, SpaceError, suggest

CONDITIONAL = {"momentum": "sgd", "decay": "time_decay", "patience": "plateau", "factor": "plateau",
               "div": "one_cycle", "peak_lr": "one_cycle"}


def sample(space: Space, n: int, seed: int = 0) -> list[tuple[dict, LRConfig]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        config = suggest(trial, space)
        out.append((trial.params, config))
        study.tell(trial, 0.0)
    return out


def test_every_optimizer_and_schedule_is_reached_with_only_its_own_parameters():
    seen = set()
    for params, config in sample(Space(), 400):
        seen.add((config.optimizer, config.schedule))
        for name, owner in CONDITIONAL.items():
            on_branch = owner in (config.optimizer, config.schedule)
            assert (name in params) == on_branch, (name, params)
        assert ("lr" in params) == (config.schedule != "one_cycle")
        assert 1e-7 <= config.lr <= 1.0
    assert seen == set(itertools.product(OPTIMIZERS, SCHEDULES))


def test_every_sample_builds_keras_objects():
    from lrsearch.lr import make_callbacks, make_optimizer

    for _, config in sample(Space(), 60, seed=1):
        optimizer = make_optimizer(config, steps_per_epoch=16, epochs=10)
        callbacks = make_callbacks(config, "val_accuracy", "maximize")
        assert type(optimizer).__name__.lower() == config.optimizer
        assert len(callbacks) == (config.schedule == "plateau")
        if config.schedule in ("time_decay", "one_cycle"):
            assert not isinstance(optimizer._learning_rate, float) and callbacks == []


def test_narrowed_space_fixes_choices_and_ranges():
    space = Space(optimizers=("sgd",), schedules=("constant",), lr=(1e-4, 1e-1), momentum=(0.9, 0.9))
    for params, config in sample(space, 30):
        assert set(params) == {"lr"}
        assert config.optimizer == "sgd" and config.momentum == 0.9
        assert 1e-4 <= config.lr <= 1e-1


@pytest.mark.parametrize("options, message", [
    ({"optimizers": ("sgd", "lion")}, "unknown optimizer 'lion'"),
    ({"schedules": ()}, "at least one"),
    ({"lr": (1e-1, 1e-4)}, "low <= high"),
    ({"lr": (0.0, 1.0)}, "> 0"),
    ({"momentum": (0.0, 1.0)}, "[0, 1)"),
    ({"factor": (0.1, 1.0)}, "factor must lie in (0, 1)"),
    ({"nesterov": "yes"}, "nesterov must be true, false or None"),
    ({"learning_rate": (1e-3, 1e-1)}, "unknown space option 'learning_rate'"),
])
def test_bad_space_names_the_problem(options, message):
    with pytest.raises((SpaceError, TypeError)) as info:
        Space.from_dict(options)
    assert message in str(info.value)
