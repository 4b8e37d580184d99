"""Every command is a library function, and the command only parses its arguments, calls it
and maps its errors to exit codes: `lrsearch.write_report`, `lrsearch.repair_journal`,
`lrsearch.study.list_studies` and `lrsearch.study.resolve_study` called directly, and the
commands over them in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

import lrsearch
from conftest import TINY, stored_study
from lrsearch.cli import main
from lrsearch.errors import UsageError
from lrsearch.study import StudyRef, list_studies, resolve_study


def test_resolve_study_names_the_study_from_the_file_or_the_name():
    ref = resolve_study(TINY)
    assert (ref.storage, ref.study_name, ref.study.name) == ("lrsearch.journal", "tiny", "tiny")
    assert resolve_study(TINY, study_name="x", load=False) == StudyRef("lrsearch.journal", "x", None, str(TINY))
    assert resolve_study(storage="db.journal", study_name="x") == StudyRef("db.journal", "x", None)
    assert resolve_study(ref.study, storage=Path("a.journal")).study is ref.study  # a loaded study as it is
    with pytest.raises(UsageError, match="give a study file, or --study-name"):
        resolve_study(storage="db.journal")


def test_write_report_of_a_study_file_reads_the_stored_study_and_prints_nothing(tmp_path, monkeypatch, capsys):
    journal = str(tmp_path / "r.journal")
    stored_study(journal)
    monkeypatch.chdir(tmp_path)
    folder = lrsearch.write_report(study_file=TINY, storage=journal)
    assert folder == Path("lrsearch-report-tiny") and (tmp_path / folder / "summary.md").is_file()
    assert "| 2 | 0.8 |" in (folder / "summary.md").read_text() and capsys.readouterr().out == ""
    with pytest.raises(UsageError, match="no study 'nope' in .*r.journal; it holds \\['tiny'\\]"):
        lrsearch.write_report(journal, "nope")
    with pytest.raises(UsageError, match="no storage file 'absent.journal'"):
        lrsearch.write_report("absent.journal", "tiny")
    assert not (tmp_path / "absent.journal").exists()


def test_the_report_command_prints_where_the_summary_is(tmp_path, capsys):
    journal = str(tmp_path / "r.journal")
    stored_study(journal, "other")
    assert main(["report", "--storage", journal, "--study-name", "other", "-o", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out == f"Report: {tmp_path / 'out'}/summary.md\n"
    assert main(["report", str(TINY), "--storage", journal]) == 2
    assert "lrsearch report: error: no study 'tiny' in" in capsys.readouterr().err
    missing = str(tmp_path / "studies" / "nofile.py")  # a mistyped path names the file too
    assert main(["report", missing, "--storage", journal]) == 2
    assert f"lrsearch report: error: no file {missing!r}, and no study 'nofile' in" in capsys.readouterr().err


def test_list_studies_gives_each_file_its_description_or_what_is_wrong(tmp_path, capsys):
    (tmp_path / "good.py").write_text(TINY.read_text())
    (tmp_path / "bare.py").write_text(TINY.read_text().split('"""', 2)[2])
    (tmp_path / "broken.py").write_text("def data(:\n")
    found = list_studies(tmp_path)
    assert [(path.name, text.split(":")[0]) for path, text in found] == [
        ("bare.py", "(no description"), ("broken.py", "(broken"), ("good.py", "A tiny blobs study for the tests")]
    assert "syntax error" in found[1][1]
    (tmp_path / "helper.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n")  # no study file
    (tmp_path / "half.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\ndef data(): pass\n")
    assert list_studies(tmp_path) == found + [(tmp_path / "half.py", "(broken: defines no build_model() function.)")]
    assert not (tmp_path / "ran").exists(), "listing a folder ran a file of it"
    (tmp_path / "helper.py").unlink(), (tmp_path / "half.py").unlink()
    with pytest.raises(UsageError, match="no folder"):
        list_studies(tmp_path / "absent")
    with pytest.raises(UsageError, match="good.py' is a file; give the folder that holds the study files"):
        list_studies(tmp_path / "good.py")
    assert main(["studies", str(tmp_path)]) == 0
    width = len(str(tmp_path / "broken.py"))
    assert capsys.readouterr().out.splitlines()[2] == f"{str(tmp_path / 'good.py'):<{width}}  {found[2][1]}"
    (tmp_path / "empty").mkdir()
    assert list_studies(tmp_path / "empty") == [] and main(["studies", str(tmp_path / "empty")]) == 0
    assert capsys.readouterr().out == f"No study files in {tmp_path / 'empty'}.\n"


def test_studies_shows_a_docstrings_first_paragraph_whole_wrapped_at_words(tmp_path, capsys):
    from lrsearch.cli._studies import table

    first = ("A tiny blobs study whose first sentence runs on across the lines of its docstring, longer than "
             "a terminal is wide: 200 rows, 5 epochs.")
    docstring = '"""' + first.replace(" across ", "\nacross ") + '\n\nA second paragraph, not shown."""'
    (tmp_path / "long.py").write_text(TINY.read_text().replace('"""A tiny blobs study for the tests: 200 rows, 5 '
                                                               'epochs."""', docstring))
    found = list_studies(tmp_path)
    assert found == [(tmp_path / "long.py", first)]
    assert main(["studies", str(tmp_path)]) == 0 and capsys.readouterr().out == f"{tmp_path / 'long.py'}  {first}\n"
    lines = table(found, columns=len(str(tmp_path / "long.py")) + 2 + 40)
    indent = " " * (len(str(tmp_path / "long.py")) + 2)
    assert lines[0].startswith(f"{tmp_path / 'long.py'}  A tiny blobs") and len(lines) == 4
    assert all(len(line) <= len(indent) + 40 and line.startswith(indent) for line in lines[1:])
    assert " ".join(line.strip() for line in lines).endswith(first)  # whole words, none lost


def test_repair_journal_is_the_library_function_of_the_command(tmp_path, capsys):
    journal = tmp_path / "r.journal"
    stored_study(str(journal))
    with open(journal, "ab") as f:
        f.write(b'{"op_code": 4, "cut sh')
    result = lrsearch.repair_journal(str(journal))
    assert result.repaired and result.damage.line == result.records_kept + 1
    assert main(["repair-journal", str(journal)]) == 0
    assert "no damage found" in capsys.readouterr().out
    assert main(["repair-journal", str(tmp_path / "absent.journal")]) == 2
    assert "error: no journal file" in capsys.readouterr().err
