"""The light install: `pip install lrsearch` holds what `load_config` needs (Keras, PyYAML),
and the search stack (`lrsearch[search]`) stays out of it, of `import lrsearch` and of the
objects a loaded config builds; without it, the commands say what to install."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, TINY
from lrsearch.cli import SEARCH_STACK
from lrsearch.export import ExportedConfig, write
from lrsearch.lr import LRConfig

tomllib = pytest.importorskip("tomllib")

#: What a consumer of exported configs installs; a new base dependency costs every one of them.
LIGHT_BASE = {"keras", "pyyaml"}
#: Distributions whose import name differs from their own.
IMPORT_NAMES = {"scikit-learn": "sklearn", "optuna-dashboard": "optuna_dashboard", "grpcio": "grpc"}


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


def test_base_dependencies_stay_light_and_the_extras_hold_the_search_stack():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert names(project["dependencies"]) == LIGHT_BASE, "a consumer needs only these; put the rest in [search]"
    assert {IMPORT_NAMES.get(name, name) for name in names(extras["search"])} == set(SEARCH_STACK)
    assert "lrsearch[search]" in extras["test"]


def blocker(folder, modules) -> dict:
    """An environment whose Pythons find none of `modules`, as if they were not installed."""
    (folder / "sitecustomize.py").write_text(f"import sys\nsys.modules.update(dict.fromkeys({list(modules)!r}))\n")
    return {**os.environ, "PYTHONPATH": str(folder)}


def test_a_loaded_config_builds_its_keras_objects_without_the_search_stack(tmp_path):
    common = dict(epochs=5, batch_size=32, seed=1, steps_per_epoch=4, objective="val_accuracy",
                  direction="maximize", value=0.8, study_name="tiny", trial_number=0, lrsearch_version="0.1.0",
                  exported_at="2026-01-01T00:00:00+00:00")
    paths = [write([ExportedConfig(lr_config=LRConfig("sgd", 0.1, "one_cycle", momentum=0.9, div=10.0), **common)],
                   tmp_path / "cycle.json"),
             write([ExportedConfig(lr_config=LRConfig("adam", 1e-3, "plateau", patience=3, factor=0.5), **common)],
                   tmp_path / "plateau.yaml")]
    # Any import of the blocked stack fails; loading must not even import the backend.
    code = ("import sys, lrsearch\n"
            f"configs = [lrsearch.load_config(path) for path in {[str(p) for p in paths]!r}]\n"
            "print([m for m in ('keras', 'tensorflow') if m in sys.modules])\n"
            "for cfg in configs:\n"
            "    print(type(cfg.optimizer()).__name__, len(cfg.callbacks()))\n")
    env = blocker(tmp_path, [m for m in SEARCH_STACK if m != "tensorflow"])  # the backend is the consumer's
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "SGD 0", "Adam 1"]


@pytest.mark.parametrize("missing", ["optuna", "plotly"])
def test_a_command_without_the_search_stack_says_what_to_install(missing, tmp_path):
    env = blocker(tmp_path, [missing])
    storage = tmp_path / "trials.journal"
    done = subprocess.run([sys.executable, "-m", "lrsearch", "run", str(TINY), "--storage", str(storage)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"lrsearch run needs the search stack, and {missing} is not installed: "
                                   f"pip install 'lrsearch[search]' (in a clone: pip install -e '.[search]')")
    assert not storage.exists()
