"""Study files: what a good one provides, and a clear message for each kind of mistake."""

from __future__ import annotations

import textwrap

import pytest

from lrsearch.studyfile import Settings, StudyFileError, load_study

GOOD = textwrap.dedent('''
    """A small study."""
    import lrsearch

    settings = lrsearch.Settings(loss="mse", objective="val_loss", epochs=3)
    space = {"optimizers": ("adam",), "lr": (1e-3, 1e-1)}

    def data():
        return ([[0.0]], [[0.0]]), ([[0.0]], [[0.0]])

    def build_model(trial):
        return None
''')


def write(tmp_path, text, name="study.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_good_study_file_loads(tmp_path):
    study = load_study(write(tmp_path, GOOD))
    assert study.name == "study" and study.description == "A small study."
    assert study.settings.direction == "minimize"
    assert study.space.optimizers == ("adam",) and study.space.lr == (1e-3, 1e-1)


@pytest.mark.parametrize("text, message", [
    (GOOD.replace("def data():", "def data(:"), "syntax error at line"),
    (GOOD.replace("def build_model(trial):", "def make_model(trial):"), "defines no build_model()"),
    (GOOD.replace("def data():", "def dataset():"), "defines no data()"),
    (GOOD.replace("settings =", "config ="), "defines no `settings"),
    (GOOD.replace('"optimizers"', '"optimisers"'), "unknown space option 'optimisers'. Did you mean 'optimizers'?"),
    (GOOD.replace('epochs=3', 'epochs=0'), "line 5: epochs must be a whole number >= 1"),
    (GOOD.replace('epochs=3', 'epochs=3, keep_compiled="no"'), "keep_compiled must be True or False"),
    (GOOD.replace('import lrsearch', 'import lrsearch\nimport no_such_module'), "ModuleNotFoundError"),
])
def test_each_mistake_names_the_file_and_the_fix(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(StudyFileError) as info:
        load_study(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_file_and_wrong_suffix(tmp_path):
    with pytest.raises(StudyFileError, match="no such file"):
        load_study(tmp_path / "nope.py")
    with pytest.raises(StudyFileError, match="ends in .py|ending in .py"):
        load_study(write(tmp_path, GOOD, name="study.txt"))


@pytest.mark.parametrize("kwargs, inferred", [({"objective": "val_loss"}, "minimize"),
                                              ({"objective": "val_accuracy"}, "maximize"),
                                              ({"objective": "val_mean_absolute_error"}, "minimize")])
def test_direction_is_inferred_from_the_objective(kwargs, inferred):
    assert Settings(loss="mse", **kwargs).direction == inferred
