"""The data a study file's `data()` returns, checked and made ready to train on.

`data()` returns ``((x_train, y_train), (x_val, y_val))``, each split with sample weights
as an optional third item, where x and y are what `model.fit` takes in memory: arrays
(or anything NumPy turns into one, such as a pandas DataFrame), or dicts or lists of
them for models with several inputs or outputs. Or it returns ``(train, val)`` as
batched `tf.data.Dataset`s or `keras.utils.PyDataset`s, which train through `model.fit`.

In-memory splits become tuples of NumPy arrays (float64 as float32), checked for
matching lengths, at least one row and, unless the settings turn it off, for NaN and inf.
"""

from __future__ import annotations

import collections.abc
import math
from typing import Any

import numpy as np

from lrsearch.errors import StudyFileError
from lrsearch.study._study_file import Study

SHAPE = ("((x_train, y_train), (x_val, y_val)), optionally with sample weights as a third item of each split, "
         "or (train_dataset, val_dataset)")
ROLES = ("x", "y", "sample_weight")


def load(study: Study) -> tuple[Any, Any]:
    """Call the study's data() and return (train, val), checked; raise StudyFileError."""
    data = study.load_data()
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise StudyFileError(study.path, f"data() must return {SHAPE}, but returned {_kind(data)}.")
    train, val = data
    if _is_array_like(train):
        raise StudyFileError(study.path, f"data() returned one (x, y) pair; it must return {SHAPE}. Split off "
                                         f"validation data, e.g. with sklearn.model_selection.train_test_split.")
    if is_dataset(train):
        if not (is_dataset(val) or isinstance(val, (tuple, list))):
            raise StudyFileError(study.path, f"data()'s validation part must be a dataset like its training part, "
                                             f"or an (x, y) pair, not {_kind(val)}.")
        if not is_dataset(val):
            return train, _split(study, "validation", val)
        if _holds_no_batch(val):
            raise StudyFileError(study.path, "data()'s validation dataset holds no batch; give it at least one "
                                             "example (a filter or take() may have emptied it).")
        return train, val
    if is_dataset(val):
        raise StudyFileError(study.path, "data() returns training arrays with a validation dataset; give both "
                                         "as arrays or both as datasets.")
    return _split(study, "train", train), _split(study, "validation", val)


def is_dataset(part: Any) -> bool:
    """Whether `part` is a tf.data dataset or a Keras PyDataset (trained through model.fit)."""
    if hasattr(part, "element_spec"):
        return True
    try:
        import keras
    except ImportError:  # pragma: no cover - lrsearch always has Keras where it trains
        return False
    return isinstance(part, keras.utils.PyDataset)


def _holds_no_batch(dataset: Any) -> bool:
    """Whether a dataset is known to be empty: a PyDataset's len(), a tf.data dataset's
    cardinality where TensorFlow knows it (not counted: it may be long)."""
    if hasattr(dataset, "cardinality"):
        return int(dataset.cardinality()) == 0
    try:
        return len(dataset) == 0
    except TypeError:  # a PyDataset without len()
        return False


def rows(split: tuple) -> int:
    """The number of rows of an in-memory split."""
    return len(leaves(split[0])[0])


def take(split: tuple, stop: int) -> tuple:
    """The first `stop` rows of an in-memory split."""
    return map_arrays(lambda a: a[:stop], split)


def leaves(tree: Any) -> list[np.ndarray]:
    """The arrays in `tree` (an array, or dicts, lists and tuples of them), in order."""
    return [array for _, array in _named_leaves(tree, "")]


def as_tuples(tree: Any) -> Any:
    """`tree` with its lists made tuples: tf.data slices a tuple element by element, but
    reads a list as one tensor (several inputs or outputs stacked, or refused)."""
    if isinstance(tree, dict):
        return {key: as_tuples(value) for key, value in tree.items()}
    if isinstance(tree, (tuple, list)):
        return tuple(as_tuples(value) for value in tree)
    return tree


def map_arrays(function, tree: Any) -> Any:
    """`tree` with `function` applied to each of its arrays."""
    if isinstance(tree, dict):
        return {key: map_arrays(function, value) for key, value in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(map_arrays(function, value) for value in tree)
    return function(tree)


def steps_per_epoch(train: Any, batch_size: int) -> int:
    """Batches per epoch: of in-memory rows at `batch_size`, or of a dataset as batched."""
    if isinstance(train, tuple):
        return max(1, math.ceil(rows(train) / batch_size))
    if not hasattr(train, "cardinality"):
        if not len(train):  # a PyDataset
            raise ValueError("the training PyDataset holds no batch (its len() is 0); give it at least one example.")
        return len(train)
    cardinality = int(train.cardinality())
    if cardinality == -1:  # tf.data.INFINITE_CARDINALITY
        raise ValueError("the training dataset repeats forever; lrsearch trains whole epochs, so remove .repeat().")
    if cardinality < 0:  # unknown: count the batches once
        cardinality = sum(1 for _ in train)
    if cardinality == 0:
        raise ValueError("the training dataset holds no batch; give it at least one example.")
    return cardinality


def first_batch(train: Any, batch_size: int) -> Any:
    """One batch of the training data, as a training step takes it."""
    if isinstance(train, tuple):
        return take(train, batch_size)
    if hasattr(train, "element_spec"):
        return next(iter(train))
    return train[0]


def _split(study: Study, name: str, part: Any) -> tuple:
    if not (isinstance(part, (tuple, list)) and len(part) in (2, 3)):
        streams = isinstance(part, collections.abc.Iterator)  # a generator, say
        raise StudyFileError(study.path, f"data()'s {name} part must be an (x, y) or (x, y, sample_weight) "
                                         f"tuple, but is {_kind(part)}." + (
                                             " To stream batches, give a tf.data.Dataset (tf.data.Dataset."
                                             "from_generator wraps a generator) or a keras.utils.PyDataset."
                                             if streams else ""))
    split = tuple(_as_arrays(item) for item in part)
    lengths = {f"{name} {role}{where}": len(array) if array.ndim else 0
               for role, item in zip(ROLES, split) for where, array in _named_leaves(item, "")}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{key}: {length}" for key, length in lengths.items())
        raise StudyFileError(study.path, f"data()'s {name} arrays differ in length ({described}); each must hold "
                                         f"one row per example.")
    if not any(lengths.values()):
        shapes = ", ".join(f"{role}{where} {array.shape}" for role, item in zip(ROLES, split)
                           for where, array in _named_leaves(item, ""))
        raise StudyFileError(study.path, f"data()'s {name} split holds no rows ({shapes}); give it at least one "
                                         f"example, one row each.")
    if study.settings.check_finite:
        for role, item in zip(ROLES, split):
            for where, array in _named_leaves(item, ""):
                _check_finite(study, f"{name} {role}{where}", array)
    return split


def _as_arrays(tree: Any) -> Any:
    """Dicts and lists of arrays keep their structure; anything else becomes one array."""
    if isinstance(tree, dict):
        return {key: _as_arrays(value) for key, value in tree.items()}
    if isinstance(tree, (tuple, list)) and tree and all(_is_array_like(item) or isinstance(item, (dict, tuple, list))
                                                        and not _is_scalar_list(item) for item in tree):
        return type(tree)(_as_arrays(item) for item in tree)
    array = np.asarray(tree)
    return array.astype("float32") if array.dtype == np.float64 else array


def _is_array_like(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype") and getattr(value, "ndim", 0) >= 1


def _is_scalar_list(value: Any) -> bool:
    """A plain list of numbers (one array's rows), not a structure of arrays."""
    return isinstance(value, (tuple, list)) and all(isinstance(v, (int, float, np.number)) for v in value)


def _named_leaves(tree: Any, where: str) -> list[tuple[str, np.ndarray]]:
    if isinstance(tree, dict):
        return [leaf for key, value in tree.items() for leaf in _named_leaves(value, f"{where}[{key!r}]")]
    if isinstance(tree, (tuple, list)):
        return [leaf for index, value in enumerate(tree) for leaf in _named_leaves(value, f"{where}[{index}]")]
    return [(where, tree)]


def _check_finite(study: Study, name: str, array: np.ndarray) -> None:
    """StudyFileError saying how many values of a float array are NaN or inf, in how many
    of its rows, and the first."""
    if not np.issubdtype(array.dtype, np.floating):
        return
    flat = array.reshape(len(array), -1)
    finite = np.isfinite(flat)
    bad = np.flatnonzero(~finite.all(axis=1))
    if not bad.size:
        return
    kinds = " and ".join(kind for kind, found in (("NaN", np.isnan(flat).any()), ("inf", np.isinf(flat).any()))
                         if found)
    value = flat[bad[0]][~finite[bad[0]]][0]
    raise StudyFileError(study.path, f"data()'s {name} holds {int((~finite).sum())} {kinds} value(s) in {bad.size} "
                                     f"of its {len(flat)} rows (the first, {value}, at row {bad[0]}); a model "
                                     f"trained on it learns nothing. Fix the data, or set "
                                     f"Settings(check_finite=False) if the model handles such values itself.")


def _kind(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"
