"""The storage load test at its smallest: 4 simulated workers on two machines end with an exact study, on the
journal, on PostgreSQL and through two storage proxies in front of it."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import storage_load  # noqa: E402

#: 4 workers, 2 a machine in one process, 2 trials each of 2 short epochs, a 1 x 2 confirmation.
TINY = ["--workers", "4", "--per-machine", "2", "--processes", "1", "--trials-per-worker", "2", "--epochs", "2",
        "--train-seconds", "0.02", "--confirm", "1,2", "--detail"]


def run(storage: str, capsys, *more: str) -> str:
    assert storage_load.main([*TINY, "--storages", storage, *more]) == 0
    return capsys.readouterr().out


def test_the_journal_ends_exact(capsys):
    out = run("journal", capsys)
    assert "| journal | 4 |" in out and out.count("| yes |") == 1
    assert "| worker, claim held | create_new_trial | 1.00 |" in out  # each trial created under its claim


def test_postgresql_ends_exact_and_its_connections_are_counted(postgres_url, capsys):
    out = run("postgresql", capsys, "--postgres", postgres_url)
    row = next(line for line in out.splitlines() if line.startswith("| postgresql | 4 |"))
    assert row.endswith("| yes |") and "| - |" not in row  # connections were sampled


def test_two_proxies_in_front_of_one_database_serve_one_exact_study(postgres_url, capsys):
    out = run("grpc", capsys, "--postgres", postgres_url, "--proxies", "2")
    assert "storage-proxy --threads 8, 2 of them" in out
    row = next(line for line in out.splitlines() if line.startswith("| grpc | 4 |"))
    assert row.endswith("| yes |")


def test_the_exactness_check_finds_what_is_wrong(tmp_path):
    import optuna

    args = storage_load.parse_args([*TINY, "--storages", "journal"])
    with storage_load.prepared("journal", args, str(tmp_path), n_trials=2) as (urls, truth, app):
        study = optuna.load_study(study_name=storage_load.STUDY, storage=storage_load.open_storage(truth))
        study.ask()  # left RUNNING
        study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))  # no record
        assert storage_load.check(truth, 3, args.epochs, None, 0) == ["2 trials for 3", "1 RUNNING",
                                                                      "1 incomplete records"]
        assert storage_load.check(truth, 2, args.epochs, (1, 2), 0)[-1].startswith("confirmation: 0 values")
