"""`lrsearch storage-proxy` for real: the command in a subprocess in front of the test
PostgreSQL server, workers' storages opened as grpc://HOST:PORT in this process. What is
written through it is in PostgreSQL; a proxy killed and restarted under a writing client,
and a database that drops away behind the proxy, are waited out with nothing lost;
heartbeats through it fail a vanished worker's trial and no other; bad URLs and storages
are refused."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import optuna
import pytest
from conftest import ROOT, SCRIPTED, Command, children, opened, run_cli, started, wait_for

from lrsearch import internals, results
from lrsearch.errors import StorageOpenError, UsageError
from lrsearch.storage import WriteBackStorage, open_storage, serve_proxy
from lrsearch.storage._grpc import BATCH_KEY, HEARTBEAT_KEY, last_heartbeat

pytestmark = [pytest.mark.postgres, pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed")]


def free_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return free.getsockname()[1]


class Proxy:
    """`lrsearch storage-proxy` in a subprocess, on a port it keeps across restarts."""

    def __init__(self, storage: str, tmp_path, env: dict[str, str] | None = None, port: int = 0) -> None:
        self.storage, self.tmp_path, self.env, self.port, self.starts = storage, tmp_path, env or {}, port, 0
        self.start()

    def start(self) -> None:
        self.starts += 1
        self.out, self.err = (self.tmp_path / f"proxy-{name}-{self.starts}" for name in ("out", "err"))
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lrsearch", "storage-proxy", "--storage", self.storage, "--port",
                 str(self.port), "--threads", "4"], cwd=ROOT, stdout=out, stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        deadline = time.monotonic() + 60
        while "Serving" not in self.out.read_text():
            assert self.process.poll() is None and time.monotonic() < deadline, self.err.read_text()
            time.sleep(0.05)
        self.port = int(self.out.read_text().split("grpc://127.0.0.1:")[1].split()[0])

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def signal(self, signum: int) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=30)


@pytest.fixture
def proxy(fresh_postgres, tmp_path):
    started = Proxy(fresh_postgres, tmp_path)
    yield started
    if started.process.poll() is None:
        started.signal(signal.SIGKILL)


def write_trials(storage, name: str, count: int, epochs: int = 3) -> None:
    """`count` trials as a worker writes them: reports behind each epoch, then the value."""
    behind = WriteBackStorage(storage, interval=0.05)
    study = optuna.create_study(study_name=name, storage=behind, direction="maximize", load_if_exists=True)
    for _ in range(count):
        trial = study.ask()
        for epoch in range(epochs):
            trial.report(0.1 * epoch, epoch)
        trial.set_user_attr("epochs_run", epochs)
        study.tell(trial, trial.number)
    behind.flush()


def test_a_study_written_through_the_proxy_is_in_postgresql_and_sigterm_stops_it(proxy, fresh_postgres, tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(proxy.url)
    assert storage.inner.batches  # each trial's writes behind in one call
    write_trials(storage, "through", 3)
    direct = optuna.load_study(study_name="through", storage=opened(fresh_postgres))
    assert [(t.state.name, t.value, t.intermediate_values, t.user_attrs) for t in direct.trials] == [
        ("COMPLETE", n, {0: 0.0, 1: 0.1, 2: 0.2}, {"epochs_run": 3}) for n in range(3)]
    assert not any(BATCH_KEY in t.system_attrs for t in direct.trials)
    assert all(last_heartbeat(t) is not None for t in direct.trials)  # the proxy's first, as each started

    password = urllib.parse.urlsplit(fresh_postgres).password
    line = proxy.out.read_text()
    assert line.startswith("Serving postgresql://lrsearch:***@") and password not in line
    assert f"to workers at --storage {proxy.url} with 4 threads" in line
    assert proxy.signal(signal.SIGTERM) == 0
    assert proxy.err.read_text() == ""


def test_behind_optunas_own_proxy_a_worker_writes_value_by_value(fresh_postgres):
    """Optuna's proxy would keep a batch as a trial attribute and write none of its values."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    port = free_port()
    threading.Thread(target=optuna.storages.run_grpc_proxy_server, args=(opened(fresh_postgres),),
                     kwargs={"host": "127.0.0.1", "port": port}, daemon=True).start()
    storage = wait_for(lambda: _opened_or_none(f"grpc://127.0.0.1:{port}"), "Optuna's proxy to listen")
    assert not storage.inner.batches
    write_trials(storage, "plain", 2)
    trials = optuna.load_study(study_name="plain", storage=opened(fresh_postgres)).trials
    assert [t.intermediate_values for t in trials] == [{0: 0.0, 1: 0.1, 2: 0.2}] * 2
    assert not any(BATCH_KEY in t.system_attrs for t in trials)


def _opened_or_none(url: str):
    try:
        return open_storage(url, patience=0)
    except StorageOpenError:
        return None


def test_a_proxy_killed_and_restarted_under_a_writing_client_loses_nothing(proxy, fresh_postgres):
    """SIGKILL, as a machine that vanishes: the client's calls fail UNAVAILABLE until the
    proxy listens again, and its write-behind batches are written then."""
    said: list[str] = []
    storage = open_storage(proxy.url, notify=said.append)
    study_id = storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "restarted")
    writer = threading.Thread(target=write_trials, args=(storage, "restarted", 40), daemon=True)
    writer.start()
    while len(storage.get_all_trials(study_id)) < 10:
        time.sleep(0.05)
    assert proxy.signal(signal.SIGKILL) == -signal.SIGKILL
    time.sleep(2)
    proxy.start()
    writer.join(timeout=60)
    assert not writer.is_alive()

    trials = optuna.load_study(study_name="restarted", storage=opened(fresh_postgres)).trials
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert [t.value for t in complete] == sorted(t.value for t in complete) and len(complete) == 40
    assert all(t.intermediate_values == {0: 0.0, 1: 0.1, 2: 0.2} and t.user_attrs for t in complete)
    # a trial whose creation the kill hid from the client, which created another, has a heartbeat to fail it by
    hidden = [t for t in trials if t not in complete]
    assert all(t.state.name == "RUNNING" and last_heartbeat(t) for t in hidden), [t.system_attrs for t in hidden]
    assert any("unreachable since" in line and "UNAVAILABLE" in line for line in said), said
    assert any("reachable again" in line for line in said), said
    # the client's cache of the study, kept across the restart, agrees with the database
    def seen(trial):
        return trial.number, trial.state, trial.values, trial.intermediate_values, trial.user_attrs

    assert [seen(t) for t in storage.get_all_trials(study_id)] == [seen(t) for t in trials]


class Relay:
    """A TCP relay to PostgreSQL that the test takes down and up again, with the
    connections through it: a database outage for the proxy alone."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.links, self.listener = target, [], None
        self.port = self.up(0)

    def up(self, port: int) -> int:
        self.listener = socket.create_server(("127.0.0.1", port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()
        return self.listener.getsockname()[1]

    def down(self) -> None:
        for end in [self.listener, *self.links]:  # shut down first: a thread blocked on it would keep it open
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()
        self.links = []

    def _accept(self, listener) -> None:
        while True:
            try:
                near = listener.accept()[0]
            except OSError:
                return
            far = socket.create_connection(self.target)
            self.links += [near, far]
            for a, b in ((near, far), (far, near)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            end.close()


def test_a_database_outage_behind_the_proxy_is_waited_out_by_the_client(fresh_postgres, tmp_path):
    """The proxy waits 1 s (LRSEARCH_STORAGE_PATIENCE), then answers UNAVAILABLE, which the
    client waits through with its own patience; the proxy says both ends of the outage."""
    parts = urllib.parse.urlsplit(fresh_postgres)
    relay = Relay((parts.hostname, parts.port or 5432))
    behind = parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{relay.port}").geturl()
    proxy = Proxy(behind, tmp_path, env={"LRSEARCH_STORAGE_PATIENCE": "1"})
    try:
        said: list[str] = []
        storage = open_storage(proxy.url, notify=said.append)
        write_trials(storage, "outage", 1)
        relay.down()
        threading.Timer(4, relay.up, args=(relay.port,)).start()
        write_trials(storage, "outage", 2)
        assert [t.state.name for t in storage.get_all_trials(storage.get_study_id_from_name("outage"))] == [
            "COMPLETE"] * 3
        assert any("UNAVAILABLE: the proxy's storage postgresql://lrsearch:***@" in line for line in said), said
        logged = proxy.err.read_text()
        assert "unreachable since" in logged and "reachable again" in logged and parts.password not in logged
    finally:
        proxy.signal(signal.SIGKILL)
        relay.down()


def test_heartbeats_through_the_proxy_fail_a_vanished_workers_trial_only(fresh_postgres, tmp_path, monkeypatch):
    """A trial whose worker stops beating is stale after the grace period, for sweepers
    through the proxy (by its attribute) and for those that reach the database directly
    (by the database's heartbeats, which the proxy records too); one that beats is not."""
    monkeypatch.setenv("LRSEARCH_HEARTBEAT", "1,3")
    proxy = Proxy(fresh_postgres, tmp_path, env={"LRSEARCH_HEARTBEAT": "1,3"})
    try:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = open_storage(proxy.url)
        assert storage.is_heartbeat_enabled() and storage.get_heartbeat_interval() == 1
        study = optuna.create_study(study_name="beats", storage=storage)
        vanished, alive = study.ask(), study.ask()
        storage.set_trial_system_attr(alive._trial_id, HEARTBEAT_KEY, "2000-01-01T00:00:00+00:00")
        assert last_heartbeat(storage.get_trial(alive._trial_id)).year > 2000  # stamped by the proxy's clock
        study_id = internals.study_id(study)
        direct = opened(fresh_postgres)
        deadline = time.monotonic() + 4.5
        while time.monotonic() < deadline:
            storage.record_heartbeat(alive._trial_id)
            time.sleep(0.5)
        assert storage.stale_trial_ids(study_id) == [vanished._trial_id]
        assert direct.stale_trial_ids(study_id) == [vanished._trial_id]
        assert results.fail_stale_trials(study) == 1
        failed = storage.get_trial(vanished._trial_id)
        assert failed.state.name == "FAIL" and "stopped sending heartbeats" in failed.user_attrs["fail_reason"]
        storage.record_heartbeat(vanished._trial_id)  # its worker comes back: no error, nothing changes
        assert storage.get_trial(vanished._trial_id).state.name == "FAIL"
    finally:
        proxy.signal(signal.SIGKILL)


def test_a_worker_that_starts_before_its_proxy_waits_for_it(fresh_postgres, tmp_path):
    port, started = free_port(), []
    threading.Timer(1, lambda: started.append(Proxy(fresh_postgres, tmp_path, port=port))).start()
    try:
        write_trials(open_storage(f"grpc://127.0.0.1:{port}", wait_to_open=True), "early", 1)
    finally:
        while not started:
            time.sleep(0.1)
        started[0].signal(signal.SIGKILL)
    assert len(optuna.load_study(study_name="early", storage=opened(fresh_postgres)).trials) == 1


@pytest.mark.slow
def test_a_run_and_a_worker_of_another_machine_through_the_proxy_lose_nothing_to_its_restart_or_to_that_machine(
        proxy, fresh_postgres, tmp_path):
    """The issue's end to end: `lrsearch run` and an `lrsearch worker` on a second "machine"
    (another host name) through the proxy; the proxy killed and restarted while both hold
    trials; then that machine vanishes, and its trial is failed by its heartbeats through
    the proxy and retried. Exact counts, no traceback."""
    if subprocess.run(["unshare", "-u", "true"], capture_output=True).returncode != 0:
        pytest.skip("`unshare -u` (a second host name) needs root or user namespaces")
    heartbeat, gate = {"LRSEARCH_HEARTBEAT": "1,4"}, tmp_path / "gate"
    gate.mkdir()
    run = Command(tmp_path, "run", str(SCRIPTED), "--storage", proxy.url, "--n-trials", "8", "--workers", "1",
                  "--lanes", "1", "--no-report", "--no-confirm", env={**heartbeat, "LRSEARCH_TEST_SLOW": "3"})
    wait_for(lambda: "Running up to" in run.stdout(), "the run to start")
    machine2 = Command(tmp_path, "worker", str(SCRIPTED), "--storage", proxy.url, "--workers", "1", "--lanes", "1",
                       env={**heartbeat, "LRSEARCH_TEST_GATE": str(gate)},
                       wrap=["unshare", "-u", "sh", "-c", 'hostname machine2 && exec "$0" "$@"'])
    number, pid = next(iter(wait_for(lambda: started(gate), "machine2 to start a trial").items()))
    assert pid in children(machine2.pid)
    assert proxy.signal(signal.SIGKILL) == -signal.SIGKILL
    time.sleep(2)
    proxy.start()
    wait_for(lambda: "reachable again" in run.stderr(), "the run to reach the restarted proxy")
    os.killpg(machine2.pid, signal.SIGKILL)  # the whole machine: its `lrsearch worker` and the worker process

    assert run.wait() == 0, run.stderr()
    done = optuna.load_study(study_name="scripted", storage=opened(fresh_postgres)).trials
    usable = [t for t in done if t.state.name in ("COMPLETE", "PRUNED") and not results.interruption(t)]
    assert len(usable) == 8 and not [t for t in done if t.state.name in ("RUNNING", "WAITING")]
    lost = done[number]
    assert lost.user_attrs["worker"] == f"machine2:{pid}" and "stopped sending heartbeats" in lost.user_attrs[
        "fail_reason"]
    assert "Traceback" not in run.stdout() + run.stderr()


def test_no_proxy_listening_is_an_open_error_naming_the_url():
    port = free_port()
    with pytest.raises(StorageOpenError, match=rf"cannot open storage grpc://127.0.0.1:{port}: ConnectionError: no "
                                               rf"storage proxy answers at 127.0.0.1:{port} within 3 s"):
        open_storage(f"grpc://127.0.0.1:{port}")


@pytest.mark.parametrize("storage, problem", [
    ("trials.journal", "is a journal file"), ("redis://localhost:6379", "is a Redis journal"),
    ("grpc://127.0.0.1:13000", "is a storage proxy already")])
def test_the_proxy_serves_databases_only(storage, problem):
    with pytest.raises(UsageError, match=problem):
        serve_proxy(storage)


def test_a_bad_storage_or_a_taken_port_exits_2_with_one_line(proxy, fresh_postgres):
    refused = run_cli("storage-proxy", "--storage", "trials.journal", timeout=60)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    taken = run_cli("storage-proxy", "--storage", fresh_postgres, "--port", str(proxy.port), timeout=60)
    assert taken.returncode == 2 and f"cannot listen on 127.0.0.1:{proxy.port}" in taken.stderr, taken.stderr
    assert urllib.parse.urlsplit(fresh_postgres).password not in taken.stderr


def test_optunas_client_without_its_private_channel_is_used_as_it_is(monkeypatch):
    """`internals.grpc_storage_proxy` falls back to Optuna's own channel (gRPC's default
    reconnection backoff); `internals.grpc_proxy_server` needs Optuna's servicer."""
    from lrsearch.errors import InternalError

    port = free_port()
    assert internals.grpc_storage_proxy("127.0.0.1", port, []) is not None  # Optuna's own modules loaded first
    monkeypatch.setitem(sys.modules, "optuna.storages._grpc.auto_generated.api_pb2_grpc", None)  # as if gone
    plain = internals.grpc_storage_proxy("127.0.0.1", port, [("grpc.max_reconnect_backoff_ms", 1000)])
    assert isinstance(plain, optuna.storages.GrpcStorageProxy)
    monkeypatch.setitem(sys.modules, "optuna.storages._grpc.servicer", None)  # as if the module were gone
    with pytest.raises(InternalError, match="optuna.storages._grpc's servicer is gone"):
        internals.grpc_proxy_server(optuna.storages.InMemoryStorage(), None, [], [])
