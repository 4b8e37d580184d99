"""Shared fixtures: the tiny study, temporary storages, the CLI in a subprocess, and the
PostgreSQL server that .ci/run starts."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = Path(__file__).resolve().parent / "studies" / "tiny.py"
#: A study whose trials can wait at a gate (a folder) until a test opens it.
SCRIPTED = Path(__file__).resolve().parent / "studies" / "scripted.py"
BLOBS = ROOT / "studies" / "blobs.py"
#: Short LR range tests, for the mechanics.
SHORT_RANGE_TEST = {"iterations": 300, "beta": 0.9}


@pytest.fixture(scope="session")
def blobs_study():
    """studies/blobs.py, loaded."""
    from lrsearch.study import load_study

    return load_study(BLOBS)


@pytest.fixture(scope="session")
def short_sgd(blobs_study):
    """A short SGD range test on blobs."""
    from lrsearch.rangetest import _range_test as rangetest

    return rangetest.find_lr(blobs_study, "sgd", **SHORT_RANGE_TEST)


@pytest.fixture
def optuna_study():
    """An empty in-memory Optuna study that maximizes."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction="maximize")


@pytest.fixture
def tiny_study() -> Path:
    return TINY


@pytest.fixture
def journal(tmp_path) -> str:
    return str(tmp_path / "trials.journal")


@pytest.fixture(autouse=True)
def _seed():
    """A fixed seed for whatever randomness a test uses in-process."""
    import random

    import numpy as np

    random.seed(0)
    np.random.seed(0)


#: What TensorFlow's native libraries and its Python logger print when left alone (and gRPC's
#: native library, in the same format): no lrsearch command may print it.
TENSORFLOW_NOISE = re.compile(r"oneDNN|cudart|cuda drivers|cuInit|TF-TRT|absl|cpu_feature_guard|WARNING:tensorflow"
                              r"|^[IWEF]\d{4} ", re.MULTILINE)


def run_cli(*args: str, cwd: str | Path | None = None, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    """`lrsearch ARGS` in a subprocess, as a user types it: with none of TensorFlow's or gRPC's
    logging variables set, and failing the test if it prints a line of their own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "GRPC_")) and k != "LRSEARCH_VERBOSE"}
    env["PYTHONUNBUFFERED"] = "1"
    done = subprocess.run([sys.executable, "-m", "lrsearch", *args], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, **popen)
    noise = TENSORFLOW_NOISE.findall(f"{done.stdout}\n{done.stderr}")
    assert not noise, f"lrsearch {' '.join(args)} printed native log lines {noise}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture
def cli():
    return run_cli


#: Held shared by each test of the PostgreSQL server, and alone by a test that stops or restarts
#: it (the `server` fixture): across xdist workers, and across test runs on this machine.
POSTGRES_LOCK = Path(tempfile.gettempdir()) / "lrsearch-tests-postgres.lock"


@pytest.fixture(autouse=True)
def _postgres_turn(request):
    """Tests of the one PostgreSQL server run beside each other, and one that stops or
    restarts it runs alone."""
    names = set(request.fixturenames)
    if not names & {"postgres_url", "fresh_postgres", "server"}:
        yield
        return
    with open(POSTGRES_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if "server" in names else fcntl.LOCK_SH)
        yield


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL server of .ci/run (LRSEARCH_TEST_POSTGRES_URL). Missing in CI is a failure."""
    url = os.environ.get("LRSEARCH_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("LRSEARCH_TEST_POSTGRES_URL is not set: .ci/run should start PostgreSQL")
        pytest.skip("no PostgreSQL: set LRSEARCH_TEST_POSTGRES_URL (as .ci/run does) to run this test")
    return url


@pytest.fixture
def unique_name() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


#: A safety net against a hung run, not a speed requirement.
PATIENCE = 300


class Command:
    """`lrsearch ARGS` started in the background in its own session (so that a test can
    send Ctrl-C to its whole process group, as a terminal does), output kept in files."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None,
                 wrap: list[str] | None = None) -> None:
        """`wrap`: a command line that runs the lrsearch command (e.g. under `unshare`)."""
        self.out, self.err = tmp_path / f"out-{uuid.uuid4().hex[:6]}", tmp_path / f"err-{uuid.uuid4().hex[:6]}"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen(
                [*(wrap or []), sys.executable, "-m", "lrsearch", *args], cwd=tmp_path, stdout=out, stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def ctrl_c(self) -> None:
        os.killpg(self.pid, signal.SIGINT)

    def wait(self) -> int:
        return self.process.wait(timeout=PATIENCE)

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()


def wait_for(condition, what: str):
    """Poll `condition` until it returns something truthy."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def started(gate: Path) -> dict[int, int]:
    """Trial number -> pid of the worker running it, for the trials waiting at `gate`."""
    return {int(p.name.split("-")[1]): int(p.read_text()) for p in gate.glob("started-*")}


def children(pid: int) -> set[int]:
    """Process ids whose parent is `pid` (from /proc: psutil and pgrep may be missing)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


#: Storages the tests read, opened once each: a poll must not open a connection pool a call.
_OPENED: dict[str, object] = {}


def opened(storage: str):
    """The storage at `storage` (a journal file or URL), opened once for the tests' reads."""
    if storage not in _OPENED:
        from lrsearch.storage import open_storage

        _OPENED[storage] = open_storage(storage)
    return _OPENED[storage]


def close(storage: str) -> None:
    """Close the connections that the tests' reads hold to `storage`."""
    from lrsearch.storage import rdb_under

    rdb = rdb_under(_OPENED.pop(storage, None))
    if rdb is not None:
        rdb.engine.dispose()


def trials(storage: str, name: str = "scripted") -> list:
    import optuna

    return optuna.load_study(study_name=name, storage=opened(storage)).get_trials(deepcopy=False)


def states(storage: str, name: str = "scripted") -> list[str]:
    return [t.state.name for t in trials(storage, name)]


@pytest.fixture
def fresh_postgres(postgres_url):
    """A URL of the test server whose tables live in a new, empty schema: a fresh
    database for one test, dropped afterwards."""
    import sqlalchemy

    schema = f"lrsearch_{uuid.uuid4().hex[:10]}"
    engine = sqlalchemy.create_engine(postgres_url, pool_pre_ping=True)  # the server may restart meanwhile
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{postgres_url}{'&' if '?' in postgres_url else '?'}options=-csearch_path%3D{schema}"
    yield url
    close(url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def pytest_collection_modifyitems(items):
    """The tests of the PostgreSQL server first, those that stop or restart it leading: xdist
    hands each worker a run of the list, so they queue in one worker instead of holding
    several workers while they wait for the lock."""
    def rank(item) -> int:
        names = set(item.fixturenames)
        return 0 if "server" in names else 1 if names & {"postgres_url", "fresh_postgres"} else 2

    items.sort(key=rank)


def stored_study(journal: str, name: str = "tiny") -> None:
    """A study in `journal` with three complete trials as lrsearch's runner records them."""
    import optuna
    from optuna.distributions import FloatDistribution

    from lrsearch.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=open_storage(journal), direction="maximize")
    study.set_user_attr("objective", "val_accuracy")
    for i, lr in enumerate((1e-3, 1e-2, 1e-1)):
        curve = [0.5 + 0.1 * i, 0.6 + 0.1 * i]
        study.add_trial(optuna.trial.create_trial(
            params={"lr": lr}, distributions={"lr": FloatDistribution(1e-7, 1.0, log=True)}, value=curve[-1],
            intermediate_values=dict(enumerate(curve)),
            user_attrs={"config": {"optimizer": "adam", "lr": lr, "schedule": "constant"}, "epochs_run": 2,
                        "history": {"val_accuracy": curve, "loss": [1 - v for v in curve], "lr": [lr, lr]}}))
