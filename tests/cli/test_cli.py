"""The command line as a user types it: help everywhere, a tiny search end to end,
resume, plain-Optuna storage, and clear errors for broken study files."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from optuna_dashboard._note import get_note_from_system_attrs

from lrsearch import results
from lrsearch.cli import COMMANDS
from lrsearch.results import read_trial
from lrsearch.storage import open_storage


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_help(cli, command):
    result = cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: lrsearch " + command in result.stdout
    assert len(result.stdout.splitlines()) > 4


def test_top_level_help_lists_every_command(cli):
    result = cli("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


def load(journal, name="tiny"):
    return optuna.load_study(study_name=name, storage=open_storage(journal))


def test_run_searches_then_resumes_and_optuna_reads_the_storage(cli, tiny_study, journal, tmp_path):
    # Rates that learn in 5 epochs: over the full range, 3 trials may all stall (lr ~1e-6), leaving no "Top".
    study_file = tmp_path / "tiny.py"
    study_file.write_text(tiny_study.read_text() + "\nspace = lrsearch.Space(lr=(1e-3, 0.5), peak_lr=(1e-3, 0.5))\n")
    first = cli("run", str(study_file), "--storage", journal, "--n-trials", "3", "--workers", "2",
                "--no-report", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    hint = next(line for line in first.stdout.splitlines() if line.startswith("Watch it live:")).split()[3:]
    assert hint[1:] == ["dashboard", str(study_file), "--storage", journal]
    assert shutil.which(hint[0]), f"{hint[0]} cannot be typed as it is printed"  # with or without an activated venv
    assert "Top" in first.stdout and "val_accuracy" in first.stdout
    # 3 trials: the priced confirmation is skipped, or where the workers' first trials traced slowly enough to
    # make a fifth of the search two trainings, 2 x 1.
    assert ("lrsearch: confirmation skipped: it would cost more than 20% of the search" in first.stderr
            or "confirming the top 2 trials on 1 fresh seed(s), priced to at most 20% of the search" in first.stderr)
    study = load(journal)
    assert len(study.trials) == 3
    assert [t.params for t in study.trials] == [  # a new study starts from the rates people start from
        {"optimizer": "adam", "schedule": "constant", "lr": 1e-3},
        {"optimizer": "sgd", "schedule": "constant", "lr": 1e-2, "momentum": 0.9},
        {"optimizer": "rmsprop", "schedule": "constant", "lr": 1e-3}]
    assert {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED"}
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    for trial in done:
        attrs = trial.user_attrs
        assert read_trial(trial).epochs_run == 5 and len(attrs["history"]["lr"]) == 5
        assert set(attrs["history"]) >= {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
        assert attrs["device"].endswith("CPU (1 thread)") and attrs["duration_s"] > 0
        assert sorted(trial.intermediate_values) == list(range(5))
        assert trial.value == pytest.approx(attrs["history"]["val_accuracy"][-1], abs=1e-6)
    attrs = study._storage.get_study_system_attrs(study._study_id)  # optuna-dashboard's notes
    assert get_note_from_system_attrs(attrs, None)["body"].startswith("## tiny")
    for trial in study.trials:
        assert get_note_from_system_attrs(attrs, trial._trial_id)["body"].startswith(f"### Trial {trial.number}: ")
    assert len(list(Path(f"{journal}.artifacts").iterdir())) == 3  # their charts

    second = cli("run", str(study_file), "--storage", journal, "--n-trials", "5", "--workers", "1",
                 "--no-report", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "Running up to 2 of 5 trials" in second.stdout
    assert len(load(journal).trials) == 5

    changed = cli("run", str(study_file), "--storage", journal, "--n-trials", "6", "--epochs", "7", "--workers", "1",
                  "--no-report", cwd=tmp_path)
    assert changed.returncode == 2 and "epochs 5 -> 7" in changed.stderr and "--accept-changes" in changed.stderr
    assert len(load(journal).trials) == 5 and "Traceback" not in changed.stderr  # accepting: test_study_faults

    optuna_cli = str(Path(sys.executable).with_name("optuna"))
    listing = subprocess.run([optuna_cli, "trials", "--study-name", "tiny", "--storage",
                              journal, "-f", "json"], capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert len(re.findall(r'"number"', listing.stdout)) == 5


BROKEN = {
    "syntax": ("def data(:\n", "syntax error at line 1"),
    "no_builder": ("import lrsearch\nsettings = lrsearch.Settings(loss='mse')\ndef data():\n    return 1\n",
                   "defines no build_model()"),
    "not_a_model": ("BUILD_NOT_MODEL", "build_model() must return a Keras model, but returned str"),
    "unknown_space_option": ("SPACE_TYPO", "unknown space option 'optimiser'"),
    "objective_not_logged": ("OBJECTIVE_TYPO", "the objective 'val_acuracy' is not logged"),
}


def broken_text(kind: str, tiny_study) -> str:
    text, _ = BROKEN[kind]
    tiny = tiny_study.read_text()
    if text == "BUILD_NOT_MODEL":
        return tiny.replace("    import keras\n", "    return 'a model'\n    import keras\n")
    if text == "SPACE_TYPO":
        return tiny + "\nspace = {'optimiser': ('sgd',)}\n"
    if text == "OBJECTIVE_TYPO":
        return tiny.replace('objective="val_accuracy"', 'objective="val_acuracy", direction="maximize"')
    return text


@pytest.mark.parametrize("kind", list(BROKEN))
def test_broken_study_file_gets_a_clear_message_and_exit_2(cli, kind, tiny_study, tmp_path):
    path = tmp_path / f"{kind}.py"
    path.write_text(broken_text(kind, tiny_study))
    result = cli("run", str(path), "--storage", str(tmp_path / "s.journal"), "--workers", "1", "--no-report")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert str(path) in result.stderr and BROKEN[kind][1] in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_option_values_exit_2(cli, tiny_study, journal):
    result = cli("run", str(tiny_study), "--storage", journal, "--n-trials", "0")
    assert result.returncode == 2 and "--n-trials: must be >= 1, but got 0" in result.stderr
    result = cli("run", str(tiny_study), "--storage", journal, "--gpus", "first")
    assert result.returncode == 2 and "--gpus takes" in result.stderr
    result = cli("run", str(tiny_study), "--storage", journal, "--seed", str(2**32))
    assert result.returncode == 2 and "--seed: must be >= 0 and <= 2147483647, but got 4294967296" in result.stderr
    assert not os.path.exists(journal)


def test_verbose_shows_the_traceback(cli, tmp_path):
    path = tmp_path / "syntax.py"
    path.write_text(textwrap.dedent("def data(:\n"))
    result = cli("run", str(path), "--verbose")
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_studies_lists_descriptions(cli):
    result = cli("studies")
    assert result.returncode == 0
    assert re.search(r"studies/blobs\.py\s+The seed's blobs problem", result.stdout)


def test_a_seeded_run_with_one_worker_is_repeatable_and_a_study_keeps_its_seed(cli, tiny_study, tmp_path):
    def run(journal, *extra):
        return cli("run", str(tiny_study), "--storage", str(tmp_path / journal), "--n-trials", "5", "--workers", "1",
                   "--confirm", "1,2", "--no-report", *extra, cwd=tmp_path)

    def outcome(journal):
        study = load(str(tmp_path / journal))
        return ([(t.params, t.state.name, t.value, sorted(t.intermediate_values.items())) for t in study.trials],
                results.read_confirmations(study), results.read_study(study).seed)

    for journal in ("a.journal", "b.journal"):
        done = run(journal, "--seed", "11")
        assert done.returncode == 0, done.stderr
    first, second = outcome("a.journal"), outcome("b.journal")
    assert first == second and first[2] == 11

    refused = run("a.journal", "--seed", "12", "--n-trials", "6")
    assert refused.returncode == 2 and "was made with seed 11, not 12" in refused.stderr
    assert "Traceback" not in refused.stderr
    plain = run("a.journal", "--n-trials", "6")  # the file's seed (3) is not the study's either
    assert plain.returncode == 2 and "--seed 11" in plain.stderr
    assert len(load(str(tmp_path / "a.journal")).trials) == 5
