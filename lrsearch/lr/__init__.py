"""The learning-rate settings: one description per optimizer and schedule (`_catalogue`),
a configuration (`LRConfig`), the search space (`Space`), and the Keras objects a
configuration builds (`_keras_objects`: optimizer, schedules, callbacks; `_one_cycle`:
lrsearch's 1cycle schedule).

Adding an optimizer or a schedule touches `_catalogue` alone. Nothing here imports Keras
until a Keras object is asked for, so `load_config` and the parent process stay light.
"""

from __future__ import annotations

import importlib

from lrsearch.lr._catalogue import OPTIMIZERS, PARAMS, PLATEAU_MIN_LR, SCHEDULES, Param, config_field
from lrsearch.lr._config import ConfigError, LRConfig, describe
from lrsearch.lr._space import Space, SpaceError, suggest
from lrsearch.lr._start import STARTS, start_params

#: Keras objects by name -> their module, imported (with Keras) on first use.
_KERAS_OBJECTS = {"LearningRateMonitor": "_keras_objects", "ReduceLROnPlateau": "_keras_objects",
                  "make_callbacks": "_keras_objects", "make_optimizer": "_keras_objects", "OneCycle": "_one_cycle",
                  "one_cycle_rate": "_one_cycle", "ONE_CYCLE_ANNIHILATION": "_one_cycle",
                  "ONE_CYCLE_FINAL_DIV": "_one_cycle"}

__all__ = ["OPTIMIZERS", "PARAMS", "PLATEAU_MIN_LR", "SCHEDULES", "STARTS",
           "ConfigError", "LRConfig", "Param", "Space", "SpaceError", "config_field", "describe", "start_params",
           "suggest",
           *_KERAS_OBJECTS]


def __getattr__(name: str):
    if name in _KERAS_OBJECTS:
        return getattr(importlib.import_module(f"{__name__}.{_KERAS_OBJECTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
