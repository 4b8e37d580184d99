"""`lrsearch find-lr`: the curve files (`lrsearch.report._range_test_curve`), what the
command prints, stores and reuses, the blobs SGD bump warning in the report, and bad
input.
"""

from __future__ import annotations

import argparse
import os

import pytest

optuna = pytest.importorskip("optuna")

from conftest import BLOBS  # noqa: E402
from lrsearch.rangetest import stored_result  # noqa: E402
from lrsearch.report import save_curve  # noqa: E402


def test_save_curve_writes_png_and_html(short_sgd, tmp_path):
    png, html = save_curve(short_sgd, tmp_path / "curves")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = html.read_text()
    assert '"type":"log"' in page and f"suggestion {short_sgd.suggestion:.3g}" in page
    assert (tmp_path / "curves" / "plotly.min.js").is_file()


def parse(argv: list[str]) -> argparse.Namespace:
    from lrsearch.cli import _find_lr as find_lr

    parser = argparse.ArgumentParser()
    find_lr.add_arguments(parser)
    return parser.parse_args(argv)


def test_find_lr_command_prints_stores_and_reuses(tmp_path, capsys):
    from lrsearch.cli import _find_lr as find_lr

    argv = [str(BLOBS), "--optimizer", "sgd", "--iterations", "300", "--storage", str(tmp_path / "s.journal"),
            "--out", str(tmp_path / "out")]
    assert find_lr.main(parse(argv)) == 0
    first = capsys.readouterr().out
    assert "suggested lr" in first and "rule min/10" in first and "stored as" in first
    assert (tmp_path / "out" / "find_lr-sgd-b32.png").is_file()
    assert find_lr.main(parse(argv)) == 0
    assert "reused study user attribute 'find_lr:sgd:32'" in capsys.readouterr().out


def test_find_lr_command_warns_of_the_blobs_sgd_bump_and_the_report_shows_it(tmp_path, capsys):
    """The issue's case: on blobs, SGD's min/10 suggestion (~0.046) sits on a bump of the smoothed loss."""
    from lrsearch.cli import _find_lr as find_lr
    from lrsearch.report import write_report
    from lrsearch.storage import open_storage

    storage = str(tmp_path / "s.journal")
    assert find_lr.main(parse([str(BLOBS), "--optimizer", "sgd", "--storage", storage,
                               "--out", str(tmp_path / "out")])) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("  warning: the suggestion sits on a bump of the smoothed loss"), lines
    assert "look at the curve" in lines[1] and lines[2].startswith("  curve: ")
    result = stored_result(optuna.load_study(study_name="blobs", storage=open_storage(storage)), "sgd", 32)
    assert result.bump.loss > 1.5 * result.bump.low
    summary = (write_report(storage, "blobs", tmp_path / "report") / "summary.md").read_text()
    assert f"## LR range tests\n\n- {result.describe()}\n  - {result.warning()}\n" in summary


def test_find_lr_command_rejects_bad_input(tmp_path):
    from lrsearch.cli import _find_lr as find_lr
    from lrsearch.errors import UsageError, WriteError

    base = [str(BLOBS), "--storage", str(tmp_path / "s.journal")]
    with pytest.raises(UsageError, match="--iterations must be > 0"):
        find_lr.main(parse([*base, "--iterations", "0"]))
    with pytest.raises(UsageError, match="--momentum applies to sgd only"):
        find_lr.main(parse([*base, "--momentum", "0.9"]))
    sgd = [*base, "--optimizer", "sgd"]
    with pytest.raises(UsageError, match=r"momentum must lie in \[0, 1\), but got 2.0"):
        find_lr.main(parse([*sgd, "--momentum", "2"]))
    with pytest.raises(UsageError, match="end_lr must be > start_lr"):
        find_lr.main(parse([*sgd, "--start-lr", "1", "--end-lr", "0.1"]))
    (tmp_path / "a file").write_text("")
    with pytest.raises(WriteError, match="a file is in the way of a folder on the path writing"):
        find_lr.main(parse([*sgd, "--out", str(tmp_path / "a file")]))
    assert sorted(os.listdir(tmp_path)) == ["a file"]  # no storage made, no study in it
