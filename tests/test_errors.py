"""lrsearch's errors: one family, the exit code each gives, and a bug reported as a bug."""

from __future__ import annotations

import pytest

from lrsearch import errors
from lrsearch.cli import _main as cli
from lrsearch.export import RetrainError
from lrsearch.lr import ConfigError, SpaceError


@pytest.mark.parametrize("error, code", [
    (errors.UsageError, 2), (errors.StudyFileError, 2), (errors.StudyFileExit, 2), (SpaceError, 2),
    (ConfigError, 2), (RetrainError, 2), (errors.StorageOpenError, 2), (errors.StorageUnavailableError, 75),
    (errors.InternalError, 70),
])
def test_every_error_is_an_lrsearch_error_with_its_exit_code(error, code):
    assert issubclass(error, errors.LrsearchError)
    assert error.exit_code == code


def test_bad_input_errors_are_value_errors_as_python_convention_has_it():
    for error in (errors.UsageError, SpaceError, ConfigError, RetrainError):
        assert issubclass(error, ValueError)
    assert not issubclass(errors.StudyFileError, errors.UsageError)


def test_study_file_error_crosses_processes():
    import pickle

    copy = pickle.loads(pickle.dumps(errors.StudyFileExit("studies/x.py", "called sys.exit(1)")))
    assert type(copy) is errors.StudyFileExit and str(copy) == "studies/x.py: called sys.exit(1)"


@pytest.mark.parametrize("verbose", [False, True])
def test_an_unexpected_exception_is_reported_as_a_bug_not_as_bad_input(monkeypatch, capsys, verbose):
    def broken(args):
        raise KeyError("trial_id")  # as a renamed Keras or Optuna internal would

    monkeypatch.setattr("lrsearch.cli._studies.main", broken)
    code = cli.main(["studies", *(["--verbose"] if verbose else [])])
    err = capsys.readouterr().err
    assert code == errors.InternalError.exit_code
    assert "internal error: KeyError: 'trial_id'" in err and "bug in lrsearch" in err
    assert ("Traceback (most recent call last)" in err) == verbose


def test_usage_errors_keep_their_message_and_code_without_a_traceback(capsys):
    code = cli.main(["repair-journal", "no-such.journal"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == "lrsearch repair-journal: error: no journal file 'no-such.journal'."
