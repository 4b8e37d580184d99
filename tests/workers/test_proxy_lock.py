"""The study's lock through Optuna's gRPC storage proxy, for real: the proxy server in front of the test
PostgreSQL in a process of its own, and spawned processes (no TensorFlow) that claim trials through proxy
clients: as the lock alone orders them ("lock; count the claimed trials; create the next one if fewer than N;
unlock"), and by ticket, as lrsearch's workers there do (`_claims.Claim.start`)."""

from __future__ import annotations

import multiprocessing
import random
import socket
import time
import warnings

import optuna
import pytest
from optuna.storages import GrpcStorageProxy
from optuna.trial import TrialState

from lrsearch import internals
from lrsearch.results import worker_tag
from lrsearch.storage import NoWaitingTrial, ResilientStorage, WriteBackStorage
from lrsearch.workers._claims import Claim, MachineLock, claimed_trials, keep_tickets
from lrsearch.workers._proxy_lock import LEASE, ProxyLock, lock_name
from lrsearch.workers._study_lock import study_lock

SPAWN = multiprocessing.get_context("spawn")
#: Seconds a test waits for its processes: a safety net against a hung lock, not a speed requirement.
PATIENCE = 120


def _quiet() -> None:
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # RDB says each study it creates: each lock taken


def _serve(url: str, port: int) -> None:
    _quiet()
    optuna.storages.run_grpc_proxy_server(optuna.storages.get_storage(url), host="127.0.0.1", port=port)


def _client(port: int) -> GrpcStorageProxy:
    _quiet()
    return GrpcStorageProxy(host="127.0.0.1", port=port)


@pytest.fixture
def proxy(fresh_postgres):
    """The port of Optuna's gRPC proxy in front of a fresh PostgreSQL schema, served by a process of its own."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = SPAWN.Process(target=_serve, args=(fresh_postgres, port), daemon=True)
    server.start()
    try:
        _client(port).wait_server_ready(timeout=PATIENCE)
        yield port
    finally:
        server.kill()
        server.join()


def _claim_until_full(port: int, study_name: str, n_trials: int, lease: float) -> None:
    """A worker's claims through a proxy client of its own: under the study's lock, count the claimed
    trials and create the next one while there are fewer than `n_trials`; train it (a short sleep) outside."""
    storage = _client(port)
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=optuna.samplers.RandomSampler())
    lock = ProxyLock(storage, internals.study_id(study), lease=lease)
    while True:
        lock.acquire()
        try:
            if claimed_trials(study) >= n_trials:
                return
            trial = study.ask()
        finally:
            lock.release()
        time.sleep(random.uniform(0.0, 0.02))
        study.tell(trial, 0.0)


def _claim_by_ticket(port: int, study_name: str, n_trials: int, parent: bool) -> None:
    """A machine of one worker, claiming as lrsearch's do through the proxy (`Claim.start`, its trials
    taken from the waiting ones), and, if `parent`, making tickets first as a run's parent does."""
    _quiet()
    url = f"grpc://127.0.0.1:{port}"
    storage = WriteBackStorage(ResilientStorage(_client(port), url), interval=0.05)
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=optuna.samplers.RandomSampler())
    lock = study_lock(storage, url, internals.study_id(study))
    if parent:
        keep_tickets(study, lock, n_trials, 5)
    claim = Claim(MachineLock.create(SPAWN), lock)
    assert claim.tickets

    def objective(trial) -> float:
        claim.release()
        time.sleep(random.uniform(0.0, 0.02))
        return trial.suggest_float("x", 0, 1)

    while True:
        claim.acquire()
        try:
            if not claim.start(study, n_trials, lambda: study.optimize(objective, n_trials=1)):
                break
        finally:
            claim.release()
    storage.flush()


def _hold_and_hang(port: int, study_id: int, taken) -> None:
    ProxyLock(_client(port), study_id).acquire()
    taken.set()
    time.sleep(PATIENCE)


def _claim_in(target, args: list[tuple]) -> None:
    """`target(*a)` in a spawned process for each `a` of `args`; each must exit 0 within PATIENCE."""
    workers = [SPAWN.Process(target=target, args=a) for a in args]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(PATIENCE)
        if worker.is_alive():
            worker.kill()
    assert [worker.exitcode for worker in workers] == [0] * len(args)


def _assert_exact(url: str, study_id: int, n_trials: int) -> None:
    """The study holds `n_trials` complete trials numbered 0..n_trials-1, and no lock is left: read from
    the database without a cache (Optuna's caches keep one trial a number)."""
    storage = optuna.storages.RDBStorage(url)
    trials = storage.get_all_trials(study_id, deepcopy=False)
    assert sorted(trial.number for trial in trials) == list(range(n_trials))
    assert {trial.state for trial in trials} == {TrialState.COMPLETE}
    assert [study.study_name for study in storage.get_all_studies()] == [storage.get_study_name_from_id(study_id)]
    storage.engine.dispose()


@pytest.mark.postgres
def test_workers_behind_the_proxy_claim_exactly_n_trials(proxy, fresh_postgres, capfd):
    storage, n_trials = _client(proxy), 60
    study_id = internals.study_id(optuna.create_study(study_name="claims", storage=storage))
    _claim_in(_claim_until_full, [(proxy, "claims", n_trials, LEASE)] * 8)
    _assert_exact(fresh_postgres, study_id, n_trials)
    assert "broke the claim lock" not in capfd.readouterr().err  # the holders live: no lock outlasts the lease


@pytest.mark.postgres
def test_workers_behind_the_proxy_claim_exactly_n_trials_by_ticket_and_take_those_left_waiting(proxy, fresh_postgres):
    storage, n_trials = _client(proxy), 40
    study = optuna.create_study(study_name="claims", storage=storage)
    study.enqueue_trial({"x": 0.5})  # one the user enqueued, which counts toward the 40 as a ticket does
    _claim_in(_claim_by_ticket, [(proxy, "claims", n_trials, i < 2) for i in range(6)])  # 2 make tickets too
    _assert_exact(fresh_postgres, internals.study_id(study), n_trials)  # none left waiting, none over
    assert 0.5 in [trial.params["x"] for trial in study.get_trials()]


def test_a_claim_by_ticket_creates_no_trial_where_none_waits(tmp_path):
    from optuna.storages.journal import JournalFileBackend

    storage = WriteBackStorage(optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "j.log"))))
    study = optuna.create_study(storage=storage)
    with storage.only_waiting_trials():
        with pytest.raises(NoWaitingTrial):
            study.ask()
        assert study.trials == []
        study.enqueue_trial({"x": 1.0})
        assert study.ask().number == 0  # a waiting trial is taken as Optuna takes it
    assert study.ask().number == 1  # outside the block, ask creates one as ever
    storage.flush()


@pytest.mark.postgres
def test_a_holder_killed_while_holding_the_lock_blocks_the_others_for_the_lease_only(proxy, fresh_postgres, capfd):
    storage, n_trials, lease = _client(proxy), 12, 1.0
    study_id = internals.study_id(optuna.create_study(study_name="claims", storage=storage))
    taken = SPAWN.Event()
    holder = SPAWN.Process(target=_hold_and_hang, args=(proxy, study_id, taken))
    holder.start()
    assert taken.wait(PATIENCE)
    holder.kill()
    holder.join()

    started = time.monotonic()
    # three waiters that may break the dead holding at once
    _claim_in(_claim_until_full, [(proxy, "claims", n_trials, lease)] * 3)
    assert lease <= time.monotonic() - started < lease + 30
    _assert_exact(fresh_postgres, study_id, n_trials)
    said = capfd.readouterr().err
    assert "broke the claim lock" in said and worker_tag(holder.pid) in said, said


@pytest.mark.postgres
def test_the_study_lock_of_a_storage_over_the_proxy_is_the_proxy_lock(proxy):
    from lrsearch.storage import ResilientStorage, WriteBackStorage

    client = _client(proxy)
    layers = WriteBackStorage(ResilientStorage(client, f"grpc://127.0.0.1:{proxy}"))
    lock = study_lock(layers, f"grpc://127.0.0.1:{proxy}", 7)
    assert isinstance(lock, ProxyLock) and lock.storage is client
    lock.acquire()
    assert client.get_study_id_from_name(lock_name(7)) == lock.held
    lock.release()
    lock.release()  # a second release frees nothing
    with pytest.raises(KeyError):
        client.get_study_id_from_name(lock_name(7))
