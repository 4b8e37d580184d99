"""Run each notebook top to bottom in quick mode (LRSEARCH_QUICK=1), as a reader would.

A notebook's own last cells assert what it demonstrates (for 01, the seed's findings), so a
failing check shows up here as the cell's error and traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CELL_TIMEOUT_S = 600


def execute(name: str, monkeypatch: pytest.MonkeyPatch):
    """Execute notebooks/`name` in a fresh kernel, in the notebooks folder; return the notebook."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("LRSEARCH_QUICK", "1")  # the kernel inherits this process's environment
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    return notebook


def stdout_of(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def image_count(code_cells) -> int:
    """How many PNG figures the cells displayed."""
    return sum("image/png" in o.get("data", {}) for c in code_cells for o in c.outputs)


def test_notebooks_are_committed_without_outputs():
    import nbformat

    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert paths
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        with_outputs = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and c.outputs]
        assert not with_outputs, f"{path.name}: cells {with_outputs} have outputs; clear them before committing"


@pytest.mark.slow  # the seed tutorial's figures, trained in the notebook
def test_notebook_01_learning_rate_dynamics_reproduces_the_seed(monkeypatch):
    notebook = execute("01_learning_rate_dynamics.ipynb", monkeypatch)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert "50 epochs per run (quick mode)" in stdout_of(code[0])
    assert "assert" in code[-1].source
    assert "All of the seed's findings checked hold." in stdout_of(code[-1])
    assert image_count(code) >= 7


@pytest.mark.slow  # a real search of a study defined in its cells, in two spawned workers: about a minute
def test_notebook_02_defines_a_study_searches_it_in_workers_reports_exports_and_retrains(monkeypatch):
    notebook = execute("02_search_blobs.ipynb", monkeypatch)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert "define_study(" in code[1].source and "lrsearch.search(blobs" in code[2].source  # defined in its cells
    assert "16 trials of 20 epochs (quick mode)" in stdout_of(code[1])
    printed = "".join(stdout_of(c) for c in code)
    assert "Study 'blobs': 16 trials" in printed and "outcome: finished" in printed  # the search's own summary
    assert "Wrote " in printed and '"schema"' in printed  # the exported file
    assert "assert" in code[-1].source
    assert "All checks hold." in stdout_of(code[-1])
    assert image_count(code) >= 4  # importance, parallel coordinates, objective vs lr, the retrained curves


@pytest.mark.slow  # range tests and two trainings in the notebook
def test_notebook_03_lr_range_test_1cycle_beats_a_constant_rate(monkeypatch):
    notebook = execute("03_lr_range_test_1cycle.ipynb", monkeypatch)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert "20 epochs per run (quick mode)" in stdout_of(code[0])
    assert "suggested lr" in "".join(stdout_of(c) for c in code)
    assert "assert" in code[-1].source
    assert "All checks hold." in stdout_of(code[-1])
    assert image_count(code) >= 3  # the range test curve, the LR per epoch, loss and accuracy
