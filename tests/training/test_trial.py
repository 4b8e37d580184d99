"""The runner's data checks: NaN or inf in in-memory data is a study-file error that names
the array, how many values and rows, and the first bad row, before any trial trains on it."""

from __future__ import annotations

import textwrap

import pytest

from lrsearch.errors import StudyFileError
from lrsearch.study import load_study

STUDY = textwrap.dedent('''
    """Blobs with one bad value."""
    import numpy as np
    import lrsearch

    settings = lrsearch.Settings(loss="categorical_crossentropy", metrics=["accuracy"], objective="val_accuracy",
                                 epochs=2, check_finite={check})

    def data():
        x = np.ones((50, 2), dtype="float64")
        y = np.eye(3, dtype="float32")[np.arange(50) % 3]
        xv, yv = x[:10].copy(), y[:10].copy()
        {damage}
        return (x, y), (xv, yv)

    def build_model(trial):
        import keras
        return keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="softmax")])
''')


def study(tmp_path, damage: str, check: bool = True):
    path = tmp_path / "bad.py"
    path.write_text(STUDY.format(damage=damage, check=check))
    return load_study(path)


@pytest.mark.parametrize("damage, message", [
    ("x[17, 1] = np.nan", "data()'s train x holds 1 NaN value(s) in 1 of its 50 rows (the first, nan, at row 17)"),
    ("yv[3, 0] = np.inf; yv[5, 2] = -np.inf; yv[5, 1] = np.nan",
     "data()'s validation y holds 3 NaN and inf value(s) in 2 of its 10 rows (the first, inf, at row 3)"),
])
def test_nonfinite_data_is_refused_with_the_array_and_row(tmp_path, damage, message):
    from lrsearch.study import load as load_data

    with pytest.raises(StudyFileError, match="bad.py") as error:
        load_data(study(tmp_path, damage))
    assert message in str(error.value) and "check_finite=False" in str(error.value)


def test_the_check_can_be_turned_off_and_clean_data_passes(tmp_path):
    from lrsearch.study import load as load_data

    train, _ = load_data(study(tmp_path, "x[0, 0] = np.nan", check=False))
    assert train[0].dtype == "float32"
    load_data(study(tmp_path, "pass"))
