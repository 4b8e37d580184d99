"""Where a report goes, checked before a search starts: a folder that cannot be written is
a WriteError (exit 74) naming it, before anything is trained or stored."""

from __future__ import annotations

import pytest

import lrsearch
from conftest import TINY
from lrsearch.errors import WriteError
from lrsearch.report import check_writable, report_folder


def test_report_folder_is_the_folder_given_else_one_named_for_the_study(tmp_path):
    assert str(report_folder("tiny")) == "lrsearch-report-tiny"
    assert str(report_folder("tiny", True)) == "lrsearch-report-tiny"
    assert report_folder("tiny", tmp_path / "r") == tmp_path / "r"
    for name, folder in (("a/b", "a_b"), ("../../up", "up"), ("my study", "my study"), ("..", "study")):
        assert str(report_folder(name)) == f"lrsearch-report-{folder}"  # in the working directory, one folder


def test_check_writable_leaves_nothing_behind_and_names_what_is_in_the_way(tmp_path):
    check_writable(tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []  # the folders it made are gone again
    (tmp_path / "taken").write_text("")
    with pytest.raises(WriteError, match=r"a file is in the way of a folder on the path writing .*taken/report"):
        check_writable(tmp_path / "taken" / "report")
    assert WriteError(tmp_path, "x").exit_code == 74


def test_a_search_whose_report_folder_cannot_be_written_stops_before_it_starts(tmp_path):
    journal = tmp_path / "s.journal"
    (tmp_path / "taken").write_text("")
    with pytest.raises(WriteError, match="taken"):
        lrsearch.search(TINY, storage=str(journal), report=tmp_path / "taken" / "report", workers=1)
    assert not journal.exists()  # no study was made


def test_a_report_path_that_cannot_be_made_is_a_write_error_and_an_empty_one_bad_input(tmp_path):
    from lrsearch.errors import UsageError

    with pytest.raises(UsageError, match="the report folder is an empty path"):
        report_folder("tiny", "")
    with pytest.raises(UsageError, match="the report folder is -; a report is a folder of files: name one"):
        report_folder("tiny", "-")
    with pytest.raises(WriteError, match="file name too long writing"):
        check_writable(tmp_path / ("x" * 300))
    (tmp_path / "file").write_text("")
    with pytest.raises(WriteError, match="writing .*file/sub/report"):
        check_writable(tmp_path / "file" / "sub" / "report")
    assert lrsearch.ConfigError is lrsearch.lr.ConfigError and lrsearch.WriteError is WriteError
