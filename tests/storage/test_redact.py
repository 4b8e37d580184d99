"""Passwords in storage URLs never survive `redact` or `redact_text`, whatever their form:
in the user info (holding '@', ':', '/', '?', or percent-encoded), in query parameters,
with driver schemes; paths and sqlite URLs stay as they are."""

from __future__ import annotations

import itertools
import urllib.parse

import pytest

from conftest import TINY
from lrsearch.storage import check_url, passwords_of, redact, redact_text
from lrsearch.storage._redact import grpc_address


@pytest.mark.parametrize("url, shown, password", [
    ("postgresql://user:pw1234@host/db", "postgresql://user:***@host/db", "pw1234"),
    ("postgresql://user:p@ss:w/rd@host/db", "postgresql://user:***@host/db", "p@ss:w/rd"),
    ("postgresql://user:p@ss:w/rd@host", "postgresql://user:***@host", "p@ss:w/rd"),
    ("postgresql://user:p%40ss@host/db", "postgresql://user:***@host/db", "p%40ss"),
    ("postgresql://user:pa?ss@host/db?sslmode=require", "postgresql://user:***@host/db?sslmode=require", "pa?ss"),
    ("postgresql://user:pa?x=1@host/db", "postgresql://user:***@host/db", "pa?x=1"),
    ("postgresql://user:pa#ss@host/db", "postgresql://user:***@host/db", "pa#ss"),
    ("postgresql://u:p/w@host/db?x=a@b", "postgresql://u:***@host/db?x=a@b", "p/w"),
    ("postgresql+psycopg://u:se@cr/et@db:5432/lr?sslmode=require",
     "postgresql+psycopg://u:***@db:5432/lr?sslmode=require", "se@cr/et"),
    ("mysql+pymysql://u:se:cr@et@db/lr?charset=utf8mb4", "mysql+pymysql://u:***@db/lr?charset=utf8mb4", "se:cr@et"),
    ("mysql://u:p&w=x@h/db", "mysql://u:***@h/db", "p&w=x"),
    ("redis://:secret@localhost:6379/0", "redis://:***@localhost:6379/0", "secret"),
    ("rediss://default:secret@cache:6380", "rediss://default:***@cache:6380", "secret"),
    ("postgresql://u:secret@[::1]:5432/lr", "postgresql://u:***@[::1]:5432/lr", "secret"),
    ("postgresql://u:secret@/lr?host=/var/run/postgresql", "postgresql://u:***@/lr?host=/var/run/postgresql", "secret"),
    ("postgresql://u:secret@db/lr#frag", "postgresql://u:***@db/lr#frag", "secret"),
    # query parameters, any case, every name drivers use
    ("postgresql://u@db/lr?password=secret", "postgresql://u@db/lr?password=***", "secret"),
    ("postgresql://u@db/lr?password=se@cret", "postgresql://u@db/lr?password=***", "se@cret"),
    ("postgresql://db/lr?user=u&PASSWORD=secret&sslmode=require",
     "postgresql://db/lr?user=u&PASSWORD=***&sslmode=require", "secret"),
    ("postgresql://db/lr?Passwd=secret", "postgresql://db/lr?Passwd=***", "secret"),
    ("mysql+pymysql://u@db/lr?pwd=secret&charset=utf8", "mysql+pymysql://u@db/lr?pwd=***&charset=utf8", "secret"),
    ("postgresql://db/lr?sslmode=verify-full&sslpassword=keypass",
     "postgresql://db/lr?sslmode=verify-full&sslpassword=***", "keypass"),
    ("postgresql://db/lr?ssl_password=keypass", "postgresql://db/lr?ssl_password=***", "keypass"),
    ("postgresql://db/lr?pass%77ord=secret", "postgresql://db/lr?pass%77ord=***", "secret"),
    ("postgresql://db/lr?password=p%26w%3D", "postgresql://db/lr?password=***", "p%26w%3D"),
    ("postgresql://u:one@db/lr?password=two", "postgresql://u:***@db/lr?password=***", "one"),
    ("postgresql://db:5432/lr?password=p@ss", "postgresql://db:5432/lr?password=***", "p@ss"),
    ("postgresql://db:5432?password=p@ss", "postgresql://db:5432?password=***", "p@ss"),
    ("postgresql:///lr?host=/tmp&password=secret", "postgresql:///lr?host=/tmp&password=***", "secret"),
])
def test_redact_hides_the_password(url, shown, password):
    assert redact(url) == shown
    assert password not in shown and urllib.parse.unquote(password) not in shown
    assert redact(shown) == shown, "redacting twice changes nothing"


@pytest.mark.parametrize("storage", [
    "lrsearch.journal",
    "runs/a b/x.journal",
    "/abs/path/with@at:colon.journal",
    "sqlite:///x.db",
    "sqlite:////data/runs@home/x.db",
    "sqlite:///C:/runs/x@y.db",
    "postgresql://u@db/lr",
    "postgresql://db:5432/lr?sslmode=require",
    "postgresql://u:@db/lr",  # an empty password: nothing to hide
    "postgresql://db/lr?password=",
    "redis://localhost:6379/0",
])
def test_redact_leaves_what_has_no_password(storage):
    assert redact(storage) == storage
    assert passwords_of(storage) == []
    assert redact_text(f"cannot open {storage} - no", storage) == f"cannot open {storage} - no"


#: Passwords that start and end with markers, so that any piece of them left shows.
PASSWORDS = [f"S3cr{middle}Zq9" for middle in ["", "@", ":", "/", "?", "#", "@:/", "a@b:c/d", "?x=1", "&y=2", "%40", " "]]
USERINFO_URLS = ["postgresql://user:{}@db.example:5432/lr?sslmode=require", "postgresql+psycopg://u:{}@db/lr",
                 "mysql+pymysql://u:{}@db", "redis://:{}@cache:6379/0", "postgresql://u:{}@/lr?host=/run/pg"]
QUERY_URLS = ["postgresql://db/lr?password={}", "postgresql://u@db:5432/lr?sslmode=require&PWD={}",
              "mysql+pymysql://u@db/lr?passwd={}&charset=utf8"]


@pytest.mark.parametrize("template, password", [
    *itertools.product(USERINFO_URLS, PASSWORDS),
    *((t, urllib.parse.quote(p, safe="")) for t, p in itertools.product(USERINFO_URLS + QUERY_URLS, PASSWORDS)),
    *((t, p) for t, p in itertools.product(QUERY_URLS, PASSWORDS) if not set("&# ") & set(p)),
])
def test_no_piece_of_a_password_survives(template, password):
    url = template.format(password)
    shown = redact(url)
    assert "S3cr" not in shown and "Zq9" not in shown, shown
    assert shown.count("***") == 1
    assert redact_text(f"error: {url} refused {password!r}", url).count("S3cr") == 0


def test_redact_text_scrubs_urls_and_every_form_of_the_password():
    url = "postgresql+psycopg://u:se%40cret@db/lr"
    message = (f"connection to {url} failed: password 'se@cret' or 'se%40cret' rejected; "
               f"also tried (mysql://root:other@h/x) and 'postgresql://u@db/lr?password=third'")
    assert redact_text(message, url) == (
        "connection to postgresql+psycopg://u:***@db/lr failed: password '***' or '***' rejected; "
        "also tried (mysql://root:***@h/x) and 'postgresql://u@db/lr?password=***'")


def test_redact_text_scrubs_a_raw_password_echoed_percent_encoded():
    url = "postgresql://u:p@ss/w@db/lr"  # a driver may show it encoded, as SQLAlchemy's URL does
    text = redact_text("login p@ss/w failed; url postgresql://u:p%40ss%2Fw@db/lr", url)
    assert text == "login *** failed; url postgresql://u:***@db/lr"


def test_redact_text_scrubs_a_query_password():
    url = "postgresql://db/lr?user=u&password=p%2Bq+r"
    text = redact_text("FATAL: password 'p+q r' for user u; 'p+q+r'", url)
    assert "p+q" not in text and text.startswith("FATAL: password '***' for user u")


def test_a_short_password_is_scrubbed_where_it_stands_alone_not_inside_words():
    url = "mysql://u:p@127.0.0.1/db"
    text = redact_text(f"cannot open {url}: ImportError: Failed to import the DB access module; tried p, 'p'", url)
    assert text == "cannot open mysql://u:***@127.0.0.1/db: ImportError: Failed to import the DB access module; " \
                   "tried ***, '***'"


def test_redact_text_leaves_a_message_without_passwords():
    assert redact_text("disk full at /data", "lrsearch.journal") == "disk full at /data"
    assert redact_text("no route to db", "postgresql://u@db/lr") == "no route to db"


# --------------------------------------------------------------------------- URLs a driver misreads


@pytest.mark.parametrize("url", [
    "postgresql://u:WR@NGsecretE@127.0.0.1/db",  # a raw '@' in the password
    "postgresql+psycopg://u@corp:WR@NGsecretE@127.0.0.1:5432/db",  # and in the user name
    "postgresql://u:WR@NG/secretE@127.0.0.1/db?sslmode=require",
    "postgresql://127.0.0.1:5432/db?user=u&password=WR@NGsecretE",  # read as `user:password@host` by SQLAlchemy
    "postgresql://127.0.0.1:5432?password=WRNGsecretE@x",
])
def test_a_url_a_driver_would_misread_is_refused_showing_none_of_it(url):
    from lrsearch.errors import StorageOpenError
    from lrsearch.storage import check_url

    with pytest.raises(StorageOpenError) as refused:
        check_url(url)
    message = str(refused.value)
    assert "percent-encode '@'" in message and "%40" in message
    assert not [piece for piece in ("WR@N", "NGse", "secretE", "127.0.0.1", "u@corp") if piece in message], message


@pytest.mark.parametrize("url", [
    "postgresql://u:WR%40NGsecretE@127.0.0.1/db", "postgresql://u:p/w:x?y#z@db/lr",
    "postgresql://db/lr?password=p%40ss", "sqlite:////data/runs@home/x@y.db", "lrsearch.journal", "postgresql://u@db/lr"])
def test_a_url_drivers_read_as_written_passes(url):
    from lrsearch.storage import check_url

    check_url(url)


def test_the_command_refuses_a_raw_at_in_the_password_and_prints_no_piece_of_it(capsys):
    """Before, the driver took `NGsecretE@127.0.0.1` for the host and printed it."""
    from lrsearch.cli import main

    password = "WR@NGsecretE"
    assert main(["report", "--storage", f"postgresql://u:{password}@127.0.0.1/db", "--study-name", "x"]) == 2
    shown = capsys.readouterr()
    printed = shown.out + shown.err
    assert "percent-encode" in printed and "Traceback" not in printed
    assert not [password[a:b] for a in range(len(password)) for b in range(a + 3, len(password) + 1)
                if password[a:b] in printed], printed


def test_a_postgres_scheme_is_told_to_be_written_postgresql(capsys):
    from lrsearch.cli import main

    assert main(["report", "--storage", "postgres://u:S3cret@127.0.0.1/db", "--study-name", "x"]) == 2
    err = capsys.readouterr().err
    assert "write postgresql://, not postgres://" in err and "S3cret" not in err


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite+pysqlite://"])
def test_an_in_memory_sqlite_database_is_refused_before_any_worker_starts(url, tmp_path, capsys):
    from lrsearch.cli import main

    assert main(["run", str(TINY), "--storage", url, "--n-trials", "1"]) == 2
    assert "is an in-memory SQLite database, which each process holds alone" in capsys.readouterr().err
    check_url("sqlite:///study.db")  # a file: fine


def test_redact_text_scrubs_pieces_of_a_password_a_driver_split():
    url = "postgresql://u:WR@NGsecretE@127.0.0.1/db"
    text = redact_text("failed to resolve host 'NGsecretE@127.0.0.1': password 'WR@NGsecretE'", url)
    assert text == "failed to resolve host '***@127.0.0.1': password '***'"
    assert redact("postgresql://user:Qk7X/:%&Z?= ZZq9@db.example:5432/lr") == "postgresql://user:***@db.example:5432/lr"


# --------------------------------------------------------------------------- database errors in one plain line


def test_describe_error_gives_the_drivers_first_line_without_sql():
    import sqlalchemy

    from lrsearch.storage import describe_error

    engine = sqlalchemy.create_engine("sqlite://")
    with engine.connect() as connection, pytest.raises(sqlalchemy.exc.OperationalError) as caught:
        connection.execute(sqlalchemy.text("SELECT secret_column FROM no_such_table WHERE id = :id"), {"id": 42})
    assert "[SQL: " in str(caught.value)
    try:
        raise RuntimeError("a commit failed") from caught.value
    except RuntimeError as wrapped:
        assert describe_error(wrapped) == "no such table: no_such_table"
    text = redact_text(f"a worker could not start: OperationalError: {caught.value}", "")
    assert text == "a worker could not start: OperationalError: (sqlite3.OperationalError) no such table: no_such_table"
    assert describe_error(FileNotFoundError(2, "No such file or directory")) == \
        "FileNotFoundError: [Errno 2] No such file or directory"


def test_a_connection_closed_mid_query_is_one_plain_line_without_sql(fresh_postgres, monkeypatch, capfd):
    """PostgreSQL ends the connection of a query that waits for a lock: the outage (given
    up at once) and Optuna's and SQLAlchemy's logs of it say so in one line each, with no
    statement, parameters, link or traceback."""
    import threading
    import time

    import optuna
    import psycopg
    import sqlalchemy

    from lrsearch.errors import StorageUnavailableError
    from lrsearch.storage import open_storage

    monkeypatch.setenv("LRSEARCH_STORAGE_PATIENCE", "0")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(fresh_postgres)
    study = optuna.create_study(study_name="s", storage=storage)
    study.tell(study.ask(), 1.0)
    url = sqlalchemy.engine.make_url(fresh_postgres)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    schema = url.query["options"].partition("=")[2]
    with psycopg.connect(dsn) as locker, psycopg.connect(dsn, autocommit=True) as killer:
        locker.execute(f'LOCK TABLE "{schema}".trials IN ACCESS EXCLUSIVE MODE')
        locker_pid = locker.info.backend_pid

        def end_the_waiting_query() -> None:
            for _ in range(500):
                waiting = killer.execute("SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                                         (locker_pid,)).fetchall()
                if waiting:
                    killer.execute("SELECT pg_terminate_backend(%s)", waiting[0])
                    return
                time.sleep(0.02)

        ender = threading.Thread(target=end_the_waiting_query)
        ender.start()
        with pytest.raises(StorageUnavailableError) as lost:
            storage.get_all_trials(study._study_id)
        ender.join()
        locker.rollback()
    shown = f"{lost.value}\n{capfd.readouterr().err}"
    assert "terminating connection due to administrator command" in str(lost.value), shown
    for raw in ("[SQL:", "[parameters:", "sqlalche.me", "SELECT", "Traceback", url.password,
                "slower alternative"):  # Optuna's read after the failed one: the outage, not a slower way
        assert raw not in shown, shown


@pytest.mark.parametrize("url, address", [
    ("grpc://proxy:13000", ("proxy", 13000)),
    ("grpc://10.0.0.5:1/", ("10.0.0.5", 1)),
    ("grpc://[::1]:13000", ("[::1]", 13000)),  # as gRPC takes an IPv6 host
    ("GRPC://proxy-1.cluster.local:65535", ("proxy-1.cluster.local", 65535)),
])
def test_a_storage_proxy_url_is_its_address_and_shows_as_it_is(url, address):
    assert grpc_address(url) == address and redact(url) == url
