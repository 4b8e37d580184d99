"""lrsearch.storage: journal files and SQLite in tmp_path, wrong URLs, the settings read
from the environment, the optuna CLI hint; PostgreSQL where LRSEARCH_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import os

from pathlib import Path

import optuna
import pytest

from lrsearch.errors import StorageOpenError, UsageError
from lrsearch.storage import ResilientStorage, _open as storage, open_storage, rdb_under


def roundtrip(opened, name: str = "s") -> list[float]:
    """Create a study in `opened`, finish a trial, and read it back through a second study object."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=opened, load_if_exists=True)
    study.tell(study.ask(), 0.25)
    return [t.value for t in optuna.load_study(study_name=name, storage=opened).get_trials()]


def test_a_path_is_a_journal_file_that_another_opening_reads(tmp_path):
    path = str(tmp_path / "trials.journal")
    opened = storage.open_storage(path)
    assert isinstance(opened, ResilientStorage) and isinstance(opened.inner, optuna.storages.JournalStorage)
    assert roundtrip(opened) == [0.25]
    assert (tmp_path / "trials.journal").stat().st_size > 0
    assert roundtrip(storage.open_storage(path)) == [0.25, 0.25]  # the same file, seen by a new process


def test_sqlite_is_an_rdb_with_heartbeats(tmp_path):
    opened = storage.open_storage(f"sqlite:///{tmp_path / 'x.db'}")
    assert rdb_under(opened) is not None and opened.is_heartbeat_enabled()
    assert roundtrip(opened) == [0.25]


@pytest.mark.parametrize("url", ["sqlite:////no/such/folder/x.db", "nosuchdb://host/db"])
def test_a_storage_that_cannot_be_opened_is_a_storage_open_error(url):
    with pytest.raises(StorageOpenError, match=r"cannot open storage"):
        storage.open_storage(url)


def test_a_new_journal_in_folders_that_do_not_exist_yet_makes_them():
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        journal = os.path.join(folder, "new", "sub", "j.journal")
        study = storage.open_study(journal, "s", direction="minimize")
        study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
        assert os.path.isfile(journal) and len(study.trials) == 1


def test_a_journal_path_starting_with_a_tilde_is_under_home_as_the_shell_would_have_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert roundtrip(storage.open_storage("~/runs/x.journal")) == [0.25]
    assert (tmp_path / "home" / "runs" / "x.journal").stat().st_size > 0
    assert not (tmp_path / "~").exists()


def test_reading_a_sqlite_file_that_does_not_exist_creates_none(tmp_path):
    typo = tmp_path / "typo.db"
    with pytest.raises(UsageError, match=r"no storage file '.*typo.db'; run `lrsearch run` first"):
        storage.open_study(f"sqlite:///{typo}", "s")
    assert not typo.exists()
    assert storage.open_study(f"sqlite:///{typo}", "s", direction="minimize").direction.name == "MINIMIZE"


def test_a_password_never_shows_in_the_open_error():
    with pytest.raises(StorageOpenError) as caught:
        storage.open_storage("nosuchdb://user:s3cret@host/db")
    assert "s3cret" not in str(caught.value) and "user:***@host" in str(caught.value)
    assert "nosuchdb:// names no database that SQLAlchemy knows; give a journal file's path" in str(caught.value)


@pytest.mark.parametrize("url, or_postgresql", [("postgresql+pg8000://u:p@127.0.0.1/db", True),
                                               ("mysql+mysqldb://u:p@127.0.0.1/db", False)])
def test_a_url_whose_driver_is_not_installed_says_which_lrsearch_installs(url, or_postgresql):
    with pytest.raises(StorageOpenError) as caught:
        storage.open_study(url, "s", direction="minimize")
    message = str(caught.value)
    assert message.startswith(f"cannot open storage {url.replace(':p@', ':***@')}: ImportError: "), message
    assert "lrsearch installs one database driver, psycopg" in message
    assert f"install the one a {url.partition('://')[0]}:// URL names with pip" in message
    assert ("or write postgresql://" in message) == or_postgresql


def test_open_study_creates_with_a_direction_and_otherwise_reads_only_what_exists(tmp_path):
    from lrsearch.errors import UsageError

    path = str(tmp_path / "trials.journal")
    with pytest.raises(UsageError, match="no storage file .*trials.journal'; run `lrsearch run` first"):
        storage.open_study(path, "s")
    assert not (tmp_path / "trials.journal").exists()  # reading never creates an empty journal
    made = storage.open_study(path, "s", direction="maximize")
    made.tell(made.ask(), 0.5)
    assert storage.open_study(path, "s", direction="maximize").trials[0].value == 0.5  # loaded, not created anew
    read = storage.open_study(path, "s", sampler=optuna.samplers.RandomSampler(seed=1))
    assert read.direction.name == "MAXIMIZE" and [t.value for t in read.trials] == [0.5]
    assert isinstance(read.sampler, optuna.samplers.RandomSampler)
    with pytest.raises(UsageError, match=r"no study 'other' in .*trials.journal; it holds \['s'\]"):
        storage.open_study(path, "other")


@pytest.mark.parametrize("direction", [None, "minimize"])
def test_open_study_on_a_storage_that_cannot_be_opened_redacts_the_password(tmp_path, direction):
    with pytest.raises(StorageOpenError, match="cannot open storage nosuchdb://user:\\*\\*\\*@host/db"):
        storage.open_study("nosuchdb://user:s3cret@host/db", "s", direction=direction)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(StorageOpenError, match="cannot open storage .*x.journal: FileExistsError"):
        storage.open_study(str(tmp_path / "a_file" / "x.journal"), "s", direction="maximize")  # a file, no folder


def test_what_is_a_url_and_what_an_rdb():
    assert not storage.is_url("trials.journal") and storage.is_url("sqlite:///x.db")
    assert storage.is_rdb("postgresql://h/db") and not storage.is_rdb("redis://h") and not storage.is_rdb("x.journal")
    assert storage.is_url("grpc://proxy:13000") and not storage.is_rdb("grpc://proxy:13000")


@pytest.mark.parametrize("url", ["grpc://proxy", "grpc://proxy:13000/db", "grpc://user:s3cret@proxy:13000",
                                 "grpc://proxy:13000?password=s3cret", "grpc://proxy:0", "grpc://proxy:70000",
                                 "grpc://:13000", "grpcs://proxy:13000"])
def test_a_grpc_url_that_is_no_proxy_address_is_refused_before_connecting(url):
    with pytest.raises(StorageOpenError, match="grpc://HOST:PORT") as caught:
        storage.open_storage(url)
    assert "s3cret" not in str(caught.value)


def test_heartbeat_settings_default_and_from_the_environment(monkeypatch):
    monkeypatch.delenv("LRSEARCH_HEARTBEAT", raising=False)
    assert storage.heartbeat_settings() == (storage.HEARTBEAT_INTERVAL, storage.GRACE_PERIOD)
    monkeypatch.setenv("LRSEARCH_HEARTBEAT", "2,7")
    assert storage.heartbeat_settings() == (2, 7)


@pytest.mark.parametrize("text", ["2", "a,b", "5,5", "0,3"])
def test_bad_heartbeat_settings_say_what_is_expected(monkeypatch, text):
    monkeypatch.setenv("LRSEARCH_HEARTBEAT", text)
    with pytest.raises(UsageError, match=rf"INTERVAL,GRACE.*but got '{text}'"):  # bad input: exit 2
        storage.heartbeat_settings()


def test_storage_patience(monkeypatch):
    monkeypatch.setenv("LRSEARCH_STORAGE_PATIENCE", "0")
    assert storage.storage_patience() == 0.0
    for text in ("soon", "-3", "nan"):
        monkeypatch.setenv("LRSEARCH_STORAGE_PATIENCE", text)
        with pytest.raises(UsageError, match=f"a number of seconds >= 0, but got '{text}'"):
            storage.storage_patience()


def test_the_optuna_cli_hint_quotes_and_redacts():
    hint = storage.optuna_cli_hint("postgresql://u:pw@h/db", "my study")
    assert hint == "optuna trials --study-name 'my study' --storage 'postgresql://u:***@h/db'"
    hint = storage.optuna_cli_hint("grpc://proxy:13000", "s")
    assert hint.startswith("optuna trials --study-name s --storage DATABASE_URL  (the database behind grpc://proxy")


def test_postgresql_when_a_server_is_given(postgres_url, unique_name):
    opened = storage.open_storage(postgres_url)
    assert opened.is_heartbeat_enabled()
    assert roundtrip(opened, unique_name) == [0.25]
    optuna.delete_study(study_name=unique_name, storage=opened)


def test_a_journal_in_another_folder_locks_with_a_link_that_leads_to_it_and_a_broken_lock_goes(tmp_path, monkeypatch):
    """Optuna's lock links to the journal: a relative path to another folder made a link that
    led nowhere, whose age Optuna could not read to break it, so every later process spun
    on a killed writer's lock for ever."""
    import os
    import time

    from lrsearch.storage import journal_lock
    from lrsearch.storage._journal import LOCK_GRACE_S

    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    optuna.create_study(study_name="s", storage=open_storage("sub/x.journal"))
    lock = journal_lock("sub/x.journal")
    assert lock.acquire()
    try:
        assert Path(os.readlink("sub/x.journal.lock")).resolve() == (tmp_path / "sub" / "x.journal")
    finally:
        lock.release()

    os.symlink("sub/x.journal", "sub/x.journal.lock")  # as a killed writer left it before: leads to sub/sub/x.journal
    stale = time.time() - LOCK_GRACE_S - 1
    os.utime("sub/x.journal.lock", (stale, stale), follow_symlinks=False)
    started = time.monotonic()
    storage = open_storage("sub/x.journal")
    optuna.load_study(study_name="s", storage=storage).enqueue_trial({})  # a write: takes the lock
    assert time.monotonic() - started < 5 and not os.path.lexists("sub/x.journal.lock")
