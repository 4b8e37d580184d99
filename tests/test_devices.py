"""Devices: GPUs as CUDA_VISIBLE_DEVICES, nvidia-smi or the driver name them, --gpus,
the worker slots planned over GPUs or CPU cores, the environment a slot sets; and no
TensorFlow start-up lines where the command's own process imports TensorFlow (every
command a test runs through `run_cli` is checked for them too). No GPU needed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import TINY, run_cli

from lrsearch import devices
from lrsearch.devices import Slot, parse_gpus, plan, visible_gpus
from lrsearch.errors import UsageError

# --------------------------------------------------------------------------- GPUs


@pytest.mark.parametrize("declared, expected", [
    ("0,1", ["0", "1"]),
    (" 1 , 0 ", ["1", "0"]),
    ("GPU-8a3e-41,1", ["GPU-8a3e-41", "1"]),
    ("MIG-5c1a-9f/1/0", ["MIG-5c1a-9f/1/0"]),
    ("0,bogus,1", ["0"]),  # CUDA stops at the first entry it cannot read
    ("-1", []),
    ("", []),
])
def test_visible_gpus_follow_cuda_visible_devices(monkeypatch, declared, expected):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", declared)
    assert visible_gpus() == expected


def test_visible_gpus_without_the_variable_count_the_drivers_gpus(monkeypatch, tmp_path):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(devices.shutil, "which", lambda name: None)
    for bus in ("0000:17:00.0", "0000:65:00.0"):
        (tmp_path / bus).mkdir()
    monkeypatch.setattr(devices, "DRIVER_GPUS", str(tmp_path))
    assert visible_gpus() == ["0", "1"]
    monkeypatch.setattr(devices, "DRIVER_GPUS", str(tmp_path / "absent"))
    assert visible_gpus() == []


def test_parse_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,GPU-8a3e-41")
    assert parse_gpus(None) == parse_gpus("all") == ["0", "1", "GPU-8a3e-41"]
    assert parse_gpus("none") == []
    assert parse_gpus("1, GPU-8a3e-41") == ["1", "GPU-8a3e-41"]
    for bad in ("0,0", "x", ",", "GPU-"):
        with pytest.raises(UsageError, match="--gpus takes"):
            parse_gpus(bad)
    with pytest.raises(UsageError, match=r"GPU 2 is not visible here \(visible: 0,1,GPU-8a3e-41\)"):
        parse_gpus("0,2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(UsageError, match=r"visible: none"):
        parse_gpus("0")


# --------------------------------------------------------------------------- slots


def test_plan_without_gpus_gives_one_single_threaded_worker_per_core(monkeypatch):
    monkeypatch.setattr(devices, "cpu_count", lambda: 8)
    assert plan(None, []) == [Slot(None, 1)] * 8
    assert plan(2, []) == [Slot(None, 4)] * 2
    assert plan(16, []) == [Slot(None, 1)] * 16


def test_per_gpu_without_a_gpu_in_use_says_it_has_no_effect(monkeypatch, capsys):
    from lrsearch.options import SearchOptions

    monkeypatch.setattr(devices, "cpu_count", lambda: 2)
    assert SearchOptions.of(gpus="none", per_gpu=3).slots() == [Slot(None, 1)] * 2
    assert capsys.readouterr().err == ("note: --per-gpu 3 has no effect: no GPU is used, so workers go one per CPU "
                                       "core (--workers sets how many).\n")
    SearchOptions.of(gpus="none").slots()
    assert capsys.readouterr().err == ""


def test_plan_spreads_workers_over_gpus(monkeypatch):
    monkeypatch.setattr(devices, "cpu_count", lambda: 16)
    assert plan(None, ["0", "1"]) == [Slot("0", 8), Slot("1", 8)]
    assert [s.gpu for s in plan(None, ["0", "1"], per_gpu=2)] == ["0", "1", "0", "1"]
    assert plan(3, ["GPU-a1", "GPU-b2"]) == [Slot("GPU-a1", 5), Slot("GPU-b2", 5), Slot("GPU-a1", 5)]
    with pytest.raises(UsageError, match="--per-gpu must be >= 1, but got 0"):
        plan(None, ["0"], per_gpu=0)
    with pytest.raises(UsageError, match="--workers must be >= 1, but got 0"):
        plan(0, [])


def test_slot_describe_and_environment(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert Slot(None, 1).describe() == "CPU (1 thread)" and Slot(None, 4).describe() == "CPU (4 threads)"
    assert Slot("1", 2).describe() == "GPU:1"
    assert Slot("GPU-8a3e41c2-77aa-4c1e", 2).describe() == f"GPU:{'GPU-8a3e41c2-77aa-4c1e'[:12]}..."
    assert Slot(None, 3).environment() == {"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3",
                                           "GRPC_VERBOSITY": "NONE", "OMP_NUM_THREADS": "3"}
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")  # the user's own setting wins
    assert Slot("GPU-8a3e41c2", 1).environment()["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert Slot("GPU-8a3e41c2", 1).environment()["CUDA_VISIBLE_DEVICES"] == "GPU-8a3e41c2"


def test_quiet_native_logs_sets_what_is_unset_unless_verbose(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setenv("LRSEARCH_VERBOSE", "1")
    devices.quiet_native_logs()
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    monkeypatch.delenv("LRSEARCH_VERBOSE")
    devices.quiet_native_logs()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    devices.quiet_native_logs()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"


# --------------------------------------------------------------------------- no start-up noise


def lrsearch(*args: str, cwd: Path) -> str:
    """`run_cli(ARGS)`, which fails on a line of TensorFlow's own; its stdout and stderr
    together (the command must succeed)."""
    done = run_cli(*args, cwd=cwd)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def test_find_lr_prints_no_tensorflow_start_up_lines(tmp_path):
    output = lrsearch("find-lr", str(TINY), "--optimizer", "adam", "--iterations", "100", "--storage",
                      str(tmp_path / "s.journal"), "--out", str(tmp_path / "curves"), cwd=tmp_path)
    assert "suggested lr" in output


@pytest.mark.slow  # runs of the CLI
def test_a_study_file_that_imports_keras_at_the_top_starts_without_tensorflow_lines(tmp_path):
    """The command's own process loads the study file, which then imports TensorFlow."""
    study_file = tmp_path / "keras_at_top.py"
    study_file.write_text("import keras  # as people often write it\n" + TINY.read_text())
    journal = str(tmp_path / "s.journal")
    output = lrsearch("run", str(study_file), "--storage", journal, "--n-trials", "2", "--epochs", "2",
                      "--workers", "1", "--no-confirm", "--no-report", cwd=tmp_path)
    output += lrsearch("export", str(study_file), "--storage", journal, "-o", str(tmp_path / "best.json"), cwd=tmp_path)
    assert "complete 2" in output and (tmp_path / "best.json").is_file()
