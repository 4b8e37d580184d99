"""One trial: the compiled epoch loop (`_epochs`), kept compiled models (`_kept_models`),
several trials at once in lanes (`_lanes`), the pruning callback, and the architecture
fingerprint. Everything here imports Keras and TensorFlow, and the trial runner Optuna:
each name is imported on first use, so that the epoch loop alone needs neither Optuna nor
the rest."""

from __future__ import annotations

import importlib

#: Name -> the module that holds it.
_MODULES = {"NONFINITE_KEY": "_epochs", "difference": "_architecture", "PruningCallback": "_pruning",
            "make_pruner": "_pruning", "TrialRunner": "_trial", "preflight": "_trial", "train": "_trial"}

__all__ = list(_MODULES)


def __getattr__(name: str):
    if name in _MODULES:
        return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
