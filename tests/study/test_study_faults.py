"""Study files that misbehave, through `lrsearch run` as a user types it: each fault ends
the run with exit 2, a message naming the file and the function or setting, no
traceback, and no trial left RUNNING. A hanging data() gives way to --timeout and to
the first Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import optuna
import pytest

from conftest import ROOT, TINY, run_cli
from lrsearch.storage import open_storage

DATA = "def data():\n"
BUILD = "def build_model(trial):\n"
SETTINGS = "seed=3)"

#: name -> (edit of tests/studies/tiny.py as (old, new), what the message must say)
FAULTS = {
    "sys.exit(0) at import": (("import lrsearch\n", "import sys\nimport lrsearch\nsys.exit(0)\n"),
                              "importing it called sys.exit(0)"),
    "sys.exit('bye') at import": (("import lrsearch\n", "import sys\nimport lrsearch\nsys.exit('bye')\n"),
                                  "line 5: importing it called sys.exit('bye')"),
    "os._exit at import": (("import lrsearch\n", "import os\nimport lrsearch\nos._exit(1)\n"),
                           "importing it called os._exit(1)"),
    "sys.exit in data()": ((DATA, DATA + "    import sys\n    sys.exit(3)\n"), "data() called sys.exit(3)"),
    "os._exit in data()": ((DATA, DATA + "    import os\n    os._exit(1)\n"), "data() called os._exit(1)"),
    "os._exit in build_model()": ((BUILD, BUILD + "    import os\n    os._exit(7)\n"),
                                  "build_model() called os._exit(7)"),
    "build_model() raises": ((BUILD, BUILD + "    raise ValueError('no such layer')\n"),
                             "build_model() raised ValueError: no such layer"),
    "data() raises": ((DATA, DATA + "    return {}['x']\n"), "data() raised KeyError: 'x'"),
    "seed as a string": ((SETTINGS, "seed='1')"),
                         "seed must be a whole number from 0 to 2147483647 (2**31 - 1), but got '1'"),
    "seed out of range": ((SETTINGS, "seed=2**32)"), "seed must be a whole number from 0 to 2147483647"),
    "nan in the space": (("seed=3)\n", "seed=3)\nspace = lrsearch.Space(lr=(float('nan'), 0.1))\n"),
                         "lr must be a pair of finite numbers, but got (nan, 0.1)"),
    "data() returns one pair": (("return (x[:100], onehot[:100]), (x[100:], onehot[100:])", "return x, onehot"),
                                "data() returned one (x, y) pair"),
    "objective None": (('objective="val_accuracy"', "objective=None"),
                       "objective must be the name of a logged metric, but got None"),
    "a misspelt loss": (('loss="categorical_crossentropy"', 'loss="categorical_crosentropy"'),
                        "loss 'categorical_crosentropy', metrics ['accuracy']): ValueError: Could not interpret loss "
                        "identifier: categorical_crosentropy"),
    "x and y of different lengths": (("onehot[:100]), (x[100:]", "onehot[:90]), (x[100:]"),
                                     "data()'s train arrays differ in length (train x: 100, train y: 90)"),
}


def study_file(tmp_path, old: str, new: str):
    text = TINY.read_text()
    assert old in text, f"the edit {old!r} no longer applies to {TINY}"
    path = tmp_path / "mine.py"
    path.write_text(text.replace(old, new, 1))
    return path


def running_trials(journal: str) -> int:
    if not os.path.exists(journal):
        return 0
    storage = open_storage(journal)
    return sum(1 for summary in optuna.get_all_study_summaries(storage)
               for trial in optuna.load_study(study_name=summary.study_name, storage=storage).trials
               if trial.state.name == "RUNNING")


#: Faults met in a worker like another of the list, each a run of its own: with the slow tests.
LIKE_ANOTHER = ("sys.exit in data()", "os._exit in data()", "data() raises", "x and y of different lengths")


@pytest.mark.parametrize("fault", [pytest.param(fault, marks=pytest.mark.slow) if fault in LIKE_ANOTHER else fault
                                   for fault in FAULTS])
def test_a_faulty_study_file_stops_the_run_with_exit_2_and_names_itself(cli, tmp_path, fault):
    (old, new), message = FAULTS[fault]
    path = study_file(tmp_path, old, new)
    journal = str(tmp_path / "s.journal")
    result = cli("run", str(path), "--storage", journal, "--workers", "1", "--n-trials", "2", "--no-report",
                 timeout=120)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"{path}: " in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert running_trials(journal) == 0
    assert not os.path.exists(journal) or optuna.get_all_study_names(open_storage(journal)) == []  # none left behind


def test_studies_lists_every_file_even_after_one_that_exits(cli, tmp_path):
    """Listing reads the files' source: one that exits when imported is not run."""
    (tmp_path / "a_exits.py").write_text('"""Exits."""\nimport sys\nsys.exit(3)\ndef data(): pass\n'
                                         'def build_model(): pass\n')
    (tmp_path / "b_fine.py").write_text(TINY.read_text())
    result = cli("studies", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "a_exits.py  Exits." in result.stdout
    assert "b_fine.py   A tiny blobs study" in result.stdout


def start_hanging_run(tmp_path, *options: str) -> tuple[subprocess.Popen, str]:
    path = study_file(tmp_path, DATA, DATA + "    import time\n    time.sleep(600)\n")
    journal = str(tmp_path / "s.journal")
    process = subprocess.Popen([sys.executable, "-m", "lrsearch", "run", str(path), "--storage", journal,
                                "--workers", "2", "--no-report", *options], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return process, journal


def test_the_first_ctrl_c_ends_a_run_whose_data_hangs(tmp_path):
    process, journal = start_hanging_run(tmp_path)
    while "Running up to" not in process.stdout.readline():
        assert process.poll() is None, process.stderr.read()
    time.sleep(2)  # the workers are in data() now
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert time.monotonic() - started < 30
    assert "Interrupted" in err and "Traceback" not in err
    assert running_trials(journal) == 0


@pytest.fixture(scope="module")
def one_trial_study(tmp_path_factory):
    """A folder holding mine.py (tiny.py) and s.journal, where `lrsearch run` made its study
    with one trial; each test resumes a copy."""
    folder = tmp_path_factory.mktemp("resumable")
    path = study_file(folder, "seed=3)", "seed=3)")
    done = run_cli("run", str(path), "--storage", str(folder / "s.journal"), "--workers", "1", "--no-report",
                   "--epochs", "2", "--n-trials", "1")
    assert done.returncode == 0, done.stderr
    return folder


@pytest.mark.parametrize("change, message", [
    (("seed=3)\n", "seed=3)\nspace = lrsearch.Space(lr=(1e-3, 0.5))\n"), "space lr [1e-07, 1.0] -> [0.001, 0.5]"),
    (("layers.Dense(8, ", "layers.Dense(16, "), "layers Dense(8) Dense(3) -> Dense(16) Dense(3)"),
    pytest.param(('activation="relu"', 'activation="tanh"'), "the same layers, configured otherwise",
                 marks=pytest.mark.slow),
])
def test_resuming_a_study_whose_file_changed_stops_unless_accepted(cli, tmp_path, one_trial_study, change, message):
    shutil.copytree(one_trial_study, tmp_path, dirs_exist_ok=True)
    path, journal = tmp_path / "mine.py", str(tmp_path / "s.journal")
    run = ("run", str(path), "--storage", journal, "--workers", "1", "--no-report", "--epochs", "2")
    path.write_text(path.read_text().replace(*change))
    changed = cli(*run, "--n-trials", "2")
    assert changed.returncode == 2, changed.stderr
    assert message in changed.stderr and "--accept-changes" in changed.stderr and "Traceback" not in changed.stderr
    storage = open_storage(journal)
    assert len(optuna.load_study(study_name="mine", storage=storage).trials) == 1
    if "space" not in message:
        return  # accepting goes the same way whatever changed: once is enough
    accepted = cli(*run, "--n-trials", "2", "--accept-changes")
    assert accepted.returncode == 0, accepted.stderr
    assert len(optuna.load_study(study_name="mine", storage=storage).trials) == 2
    assert cli(*run, "--n-trials", "3").returncode == 0, "the accepted change is the study's record now"
