"""optuna-dashboard's private API: its notes."""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import sys
from typing import Any, Callable

from lrsearch.internals._guard import MISSING, unsupported
from lrsearch.internals._optuna import storage_of, study_id, trial_id


def note_key(trial: int | None) -> str:
    """The study attribute of optuna-dashboard's note version of trial id `trial` (None: the study's)."""
    return _dashboard_note("note_ver_key")(trial)


def save_note(study, trial, body: str) -> None:
    """Write `body` as the dashboard's note of `trial` (a FrozenTrial of `study`; None: the
    study's own): optuna-dashboard's public `save_note` takes only a live Trial."""
    trial = None if trial is None else trial_id(trial)
    _dashboard_note("save_note_with_version")(storage_of(study), study_id(study), trial, 1, body)


def _dashboard_note(name: str) -> Callable:
    notes = sys.modules.get("optuna_dashboard._note", MISSING)
    notes = _note_module_alone() if notes is MISSING else notes
    if getattr(notes, name, None) is None:
        raise unsupported("optuna-dashboard", "optuna_dashboard._note" + f".{name}" * (notes is not None))
    return getattr(notes, name)


@functools.cache
def _note_module_alone() -> Any:
    """optuna-dashboard's `_note` (None if gone), by itself where it loads so: the package's
    `__init__` imports its web app and Optuna's importance (scikit-learn, SciPy): a second."""
    with contextlib.suppress(Exception):
        where = importlib.util.find_spec("optuna_dashboard").submodule_search_locations[0]
        alone = importlib.util.spec_from_file_location("lrsearch._dashboard_note", f"{where}/_note.py")
        module = importlib.util.module_from_spec(alone)
        alone.loader.exec_module(module)
        return module
    with contextlib.suppress(ImportError):
        return importlib.import_module("optuna_dashboard._note")
