"""Every command is a library function, and the command only parses its arguments, calls it
and maps its errors to exit codes: `lrsearch.write_report`, `lrsearch.repair_journal`,
`lrsearch.study.list_studies` and `lrsearch.study.resolve_study` called directly, and the
commands over them in-process."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution

import lrsearch
from conftest import TINY
from lrsearch.cli import main
from lrsearch.errors import UsageError
from lrsearch.storage import open_storage
from lrsearch.study import StudyRef, list_studies, resolve_study


def stored_study(journal: str, name: str = "tiny") -> None:
    """A study in `journal` with three complete trials as lrsearch's runner records them."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=open_storage(journal), direction="maximize")
    study.set_user_attr("objective", "val_accuracy")
    for i, lr in enumerate((1e-3, 1e-2, 1e-1)):
        curve = [0.5 + 0.1 * i, 0.6 + 0.1 * i]
        study.add_trial(optuna.trial.create_trial(
            params={"lr": lr}, distributions={"lr": FloatDistribution(1e-7, 1.0, log=True)}, value=curve[-1],
            intermediate_values=dict(enumerate(curve)),
            user_attrs={"config": {"optimizer": "adam", "lr": lr, "schedule": "constant"}, "epochs_run": 2,
                        "history": {"val_accuracy": curve, "loss": [1 - v for v in curve], "lr": [lr, lr]}}))


def test_resolve_study_names_the_study_from_the_file_or_the_name():
    ref = resolve_study(TINY)
    assert (ref.storage, ref.study_name, ref.study.name) == ("lrsearch.journal", "tiny", "tiny")
    assert resolve_study(TINY, study_name="x", load=False) == StudyRef("lrsearch.journal", "x", None)
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


def test_list_studies_gives_each_file_its_description_or_what_is_wrong(tmp_path, capsys):
    (tmp_path / "good.py").write_text(TINY.read_text())
    (tmp_path / "bare.py").write_text(TINY.read_text().split('"""', 2)[2])
    (tmp_path / "broken.py").write_text("def data(:\n")
    found = list_studies(tmp_path)
    assert [(path.name, text.split(":")[0]) for path, text in found] == [
        ("bare.py", "(no description"), ("broken.py", "(broken"), ("good.py", "A tiny blobs study for the tests")]
    assert "syntax error" in found[1][1]
    with pytest.raises(UsageError, match="no folder"):
        list_studies(tmp_path / "absent")
    assert main(["studies", str(tmp_path)]) == 0
    width = len(str(tmp_path / "broken.py"))
    assert capsys.readouterr().out.splitlines()[2] == f"{str(tmp_path / 'good.py'):<{width}}  {found[2][1]}"
    (tmp_path / "empty").mkdir()
    assert list_studies(tmp_path / "empty") == [] and main(["studies", str(tmp_path / "empty")]) == 0
    assert capsys.readouterr().out == f"No study files in {tmp_path / 'empty'}.\n"


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
