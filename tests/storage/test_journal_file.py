"""The journal file on a disk that fills up while a study writes to it: a WriteError
naming the journal, and no record left cut short."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from lrsearch.storage import check_journal

#: Trials written to a journal until its file may not grow further (a full disk).
WRITER = textwrap.dedent("""
    import resource, signal, sys
    import optuna
    from lrsearch.errors import WriteError
    from lrsearch.storage import open_storage

    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="s", storage=open_storage(sys.argv[1]))
    try:
        for number in range(1000):
            trial = study.ask()
            trial.suggest_float("lr", 1e-5, 1.0, log=True)
            trial.set_user_attr("history", {"loss": [0.5] * 20})
            study.tell(trial, 0.5)
    except WriteError as error:
        print(f"{type(error).__name__}: {error}; exit {error.exit_code}")
""")


def test_a_full_disk_under_a_study_is_a_write_error_naming_the_journal(tmp_path):
    journal = str(tmp_path / "full.journal")
    result = subprocess.run([sys.executable, "-c", WRITER, journal], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == f"WriteError: the file grew past the size allowed writing {journal}; exit 74", \
        result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    data = open(journal, "rb").read()
    assert 0 < len(data) <= 4096 and data.endswith(b"\n"), "the record the write cut short is gone"
    check_journal(journal)
