"""lrsearch's errors: one family, the exit code each gives, and a bug reported as a bug."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution

from conftest import TINY, stored_study
from lrsearch import errors
from lrsearch.cli import _main as cli
from lrsearch.export import RetrainError
from lrsearch.lr import ConfigError, SpaceError
from lrsearch.storage import open_storage


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


# --------------------------------------------------------------------------- the exit-code table

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_table_is_the_exit_codes_and_help_lists_them(capsys):
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", (ROOT / "README.md").read_text(), flags=re.MULTILINE)
    assert {int(code): meaning for code, meaning in rows} == errors.EXIT_CODES
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    shown = capsys.readouterr().out
    assert all(f"{code:>3}  " in shown for code in errors.EXIT_CODES)


def test_every_exit_code_lrsearch_can_give_is_in_the_table():
    """Each error's code, and every literal exit code in the source, against the table."""
    import lrsearch.storage._journal  # noqa: F401  (defines JournalDamagedError)

    def family(cls):
        return [cls, *(sub for child in cls.__subclasses__() for sub in family(child))]

    assert {error.exit_code for error in family(errors.LrsearchError)} <= set(errors.EXIT_CODES)
    literal = re.compile(r"(?:return|exit_code\s*=|exit\()\s*(\d+)\b")
    for path in (ROOT / "lrsearch").rglob("*.py"):
        for code in literal.findall(path.read_text()):
            assert int(code) in errors.EXIT_CODES, f"{path.relative_to(ROOT)} exits {code}, not in the table"


def damaged_journal(tmp_path) -> str:
    """A journal whose middle holds a line that is not a record."""
    journal = tmp_path / "damaged.journal"
    study = optuna.create_study(study_name="tiny", storage=open_storage(str(journal)), direction="maximize")
    study.add_trial(optuna.trial.create_trial(params={"lr": 0.1}, distributions={
        "lr": FloatDistribution(1e-7, 1.0, log=True)}, value=0.5))
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join([lines[0], "not a record\n", *lines[1:]]))
    return str(journal)


#: Each command with the arguments that make it read the storage.
READS_STORAGE = {
    "run": ["--no-report", "--workers", "1"], "worker": ["--workers", "1"], "report": [], "dashboard": [],
    "confirm": [], "export": [], "retrain": ["-o", "model.keras"], "find-lr": [],
}


def test_every_command_keeps_to_the_table(tmp_path, monkeypatch, capsys):
    """Walk the commands: a damaged journal and a missing study file are bad input (2) to
    each; repair-journal mends the journal (0)."""
    from lrsearch.cli import COMMANDS

    monkeypatch.chdir(tmp_path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    journal = damaged_journal(tmp_path)
    assert set(READS_STORAGE) | {"repair-journal", "studies", "storage-proxy"} == set(COMMANDS)
    for command, extra in READS_STORAGE.items():
        assert cli.main([command, str(TINY), "--storage", journal, *extra]) == 2, command
        assert cli.main([command, "absent.py", "--storage", journal, *extra]) == 2, command
        err = capsys.readouterr().err
        assert "Traceback" not in err and f"lrsearch {command}: error: " in err, err
    assert cli.main(["studies", "absent-folder"]) == 2
    assert cli.main(["storage-proxy", "--storage", journal]) == 2  # a journal file is no database to serve
    err = capsys.readouterr().err
    assert "Traceback" not in err and "lrsearch storage-proxy: error: " in err, err
    assert cli.main(["repair-journal", "absent.journal"]) == 2
    assert cli.main(["repair-journal", journal]) == 0


def test_a_write_that_fails_for_want_of_space_exits_74_naming_the_file(tmp_path):
    """The report folder on a disk that fills up (file size capped at 64 KiB; plotly's
    script is larger)."""
    import resource
    import signal
    import subprocess
    import sys

    journal = str(tmp_path / "r.journal")
    stored_study(journal)
    out = tmp_path / "out"

    def capped() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    result = subprocess.run([sys.executable, "-m", "lrsearch", "report", "--storage", journal, "--study-name",
                             "tiny", "-o", str(out)], capture_output=True, text=True, preexec_fn=capped, timeout=120)
    assert result.returncode == 74, result.stderr
    assert "Traceback" not in result.stderr and "bug" not in result.stderr
    assert re.search(rf"error: the file grew past the size allowed writing {re.escape(str(out))}/\S+", result.stderr)


def test_an_op_error_of_a_compiled_step_reads_as_its_cause_alone():
    """A label out of range past the first batch: TensorFlow's text, as a trial's exception
    says it, becomes one line that is the same for every batch (the failures group)."""
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    from lrsearch.study import problem_of

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    said = set()
    for bad_row in (40, 70):
        labels = [0] * 96
        labels[bad_row] = 5
        with pytest.raises(tf.errors.InvalidArgumentError) as raised:
            model.fit(tf.zeros((96, 4)), tf.constant(labels), batch_size=32, verbose=0)
        assert "defined at (most recent call last)" in str(raised.value)  # what is cut
        said.add(problem_of(raised.value))
    assert said == {"InvalidArgumentError: Received a label value of 5 which is outside the valid range of [0, 2)."}


def test_counted_is_plural_but_for_one():
    from lrsearch.errors import counted

    assert [counted(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]
