"""Shared fixtures: the tiny study, temporary storages, the CLI in a subprocess, and the
PostgreSQL server that .ci/run starts."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = Path(__file__).resolve().parent / "studies" / "tiny.py"
BLOBS = ROOT / "studies" / "blobs.py"
#: Short LR range tests, for the mechanics.
SHORT_RANGE_TEST = {"iterations": 300, "beta": 0.9}


@pytest.fixture(scope="session")
def blobs_study():
    """studies/blobs.py, loaded."""
    from lrsearch.studyfile import load_study

    return load_study(BLOBS)


@pytest.fixture(scope="session")
def short_sgd(blobs_study):
    """A short SGD range test on blobs."""
    from lrsearch import rangetest

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


def run_cli(*args: str, cwd: str | Path | None = None, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    """`lrsearch ARGS` in a subprocess, as a user types it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "lrsearch", *args], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, **popen)


@pytest.fixture
def cli():
    return run_cli


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
