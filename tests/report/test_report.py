"""Reports: the data behind each figure (checked on hand-made Optuna studies whose answers
are known), the folder written after a real blobs run, studies with nothing to show, and
a 100-trial report, whose pages share one plotly.js."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from lrsearch import results  # noqa: E402
from lrsearch.report import _data as report_data  # noqa: E402
from lrsearch.report import write_report, write_report_for  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
FIGURES = ["importance", "parallel_coordinates", "history", "learning_curves", "lr_per_epoch", "objective_vs_lr"]
LR = optuna.distributions.FloatDistribution(1e-7, 1.0, log=True)
OPTIMIZER = optuna.distributions.CategoricalDistribution(["sgd", "rmsprop", "adagrad", "adam"])
SCHEDULE = optuna.distributions.CategoricalDistribution(["constant", "time_decay", "plateau", "one_cycle"])


def add_trial(study, *, optimizer="adam", schedule="constant", lr=1e-2, momentum=None, curve=(0.5,),
              state="COMPLETE", pruned_reason=None, fail_reason=None, model_params=None):
    """Add one finished trial as lrsearch's runner records it: params (`model_params`: the
    builder's own, floats or ints), config, history, per-epoch values."""
    params = {"optimizer": optimizer, "schedule": schedule, **(model_params or {})}
    dists = {"optimizer": OPTIMIZER, "schedule": SCHEDULE}
    dists.update({name: optuna.distributions.FloatDistribution(0, 1) if isinstance(value, float)
                  else optuna.distributions.IntDistribution(1, 128) for name, value in (model_params or {}).items()})
    config = {"optimizer": optimizer, "lr": lr, "schedule": schedule}
    if schedule == "one_cycle":
        params["peak_lr"], dists["peak_lr"] = lr, LR
        params["div"], dists["div"] = 10.0, optuna.distributions.FloatDistribution(5, 25, log=True)
        config["div"] = 10.0
    else:
        params["lr"], dists["lr"] = lr, LR
    if optimizer == "sgd":
        params["momentum"], dists["momentum"] = momentum, optuna.distributions.FloatDistribution(0, 0.99)
        config.update(momentum=momentum, nesterov=False)
    curve = list(curve)
    attrs = {"config": config, "epochs_run": len(curve),
             "history": {"val_accuracy": curve, "loss": [1.0 - v for v in curve], "lr": [lr] * len(curve)}}
    if pruned_reason:
        attrs.update(pruned_reason=pruned_reason, pruned_epoch=len(curve) - 1, pruned_detail="made up")
    if fail_reason:
        attrs["fail_reason"] = fail_reason
    trial_state = optuna.trial.TrialState[state]
    study.add_trial(optuna.trial.create_trial(
        params=params, distributions=dists, user_attrs=attrs, state=trial_state,
        value=curve[-1] if trial_state == optuna.trial.TrialState.COMPLETE else None,
        intermediate_values={} if fail_reason else dict(enumerate(curve))))


def lr_driven_study(n_complete=16, n_pruned=6, n_failed=2, epochs=10, seed=0):
    """A study whose value depends on lr alone (best near 1e-2); optimizers and momentum are noise."""
    rng = np.random.default_rng(seed)
    study = optuna.create_study(direction="maximize", study_name="made-up")
    study.set_user_attr("objective", "val_accuracy")
    for i in range(n_complete + n_pruned + n_failed):
        optimizer = ["sgd", "adam", "rmsprop"][i % 3]
        lr = float(10 ** rng.uniform(-6, 0))
        final = 0.84 - 0.12 * abs(math.log10(lr) + 2)  # peaks at lr = 1e-2
        curve = [final * (1 - 0.5 ** (e + 1)) for e in range(epochs)]
        kwargs = dict(optimizer=optimizer, lr=lr, momentum=float(rng.uniform(0, 0.99)) if optimizer == "sgd" else None,
                      schedule="one_cycle" if i % 4 == 0 else "constant")
        if i < n_complete:
            add_trial(study, curve=curve, **kwargs)
        elif i < n_complete + n_pruned:
            reason = ["diverged", "stalled", "pruner"][i % 3]
            add_trial(study, curve=curve[:3], state="PRUNED", pruned_reason=reason, **kwargs)
        else:
            add_trial(study, curve=[], state="FAIL", fail_reason="ValueError: bad model", **kwargs)
    return study


def test_data_of_a_mixed_study():
    study = lr_driven_study()
    data = report_data.collect(study)
    trials = study.get_trials()
    assert len(data.trials) == 24 and list(data.trials["number"]) == list(range(24))

    imp = data.importance
    assert imp.evaluator == "FanovaImportanceEvaluator" and imp.n_trials == 16 + 6 and imp.n_pruned == 6
    assert "lr" in imp.values and "peak_lr" not in imp.values  # one_cycle's peak_lr counts as lr
    assert set(imp.values) <= {"optimizer", "schedule", "lr", "momentum", "div"}
    assert math.isclose(sum(imp.values.values()), 1.0)
    assert max(imp.values, key=imp.values.get) == "lr"  # the only parameter the value depends on

    parallel = data.parallel
    assert list(parallel.frame.columns[:3]) == ["number", "state", "val_accuracy"]
    assert set(parallel.params) == {"optimizer", "schedule", "lr", "momentum"}  # div and nesterov never vary
    assert len(parallel.frame) == 22  # complete + pruned; failed trials reported nothing
    non_sgd = parallel.frame[parallel.frame["optimizer"] != "sgd"]
    assert non_sgd["momentum"].isna().all() and parallel.frame["momentum"].notna().any()

    history = data.history.frame
    assert list(history["number"]) == list(range(16))
    best = history["best_so_far"].to_numpy()
    assert (np.diff(best) >= 0).all() and best[-1] == max(t.value for t in trials if t.value is not None)

    for number, values in data.learning_curves.series.items():
        assert len(values) == len(trials[number].intermediate_values)
    assert len(data.learning_curves.series) == 22

    top = results.rank(trials, "maximize", {})[:5]
    assert list(data.lr_curves.series) == [t.number for t in top]
    assert all(len(v) == 10 for v in data.lr_curves.series.values())

    versus = data.objective_vs_lr
    assert len(versus) == 22 and set(versus["optimizer"]) == {"sgd", "adam", "rmsprop"}
    pruned = versus[versus["state"] == "PRUNED"].iloc[0]
    assert pruned["value"] == trials[int(pruned["number"])].intermediate_values[2]  # its last report

    assert data.pruning_reasons == {"diverged": 2, "stalled": 2, "pruner": 2}
    pruned_rows = data.trials[data.trials["state"] == "PRUNED"]
    assert (pruned_rows["pruned_epoch"] == 3).all()  # the third epoch, counted from 1 as Keras prints it
    complete_rows = data.trials[data.trials["state"] == "COMPLETE"]
    assert (complete_rows["best_epoch"] == 10).all() and (complete_rows["epochs_run"] == 10).all()
    assert data.fail_reasons == {"ValueError: bad model": 2}
    assert data.missing == {}


def test_learning_curves_highlight_the_top_trials_by_the_reports_ranking(tmp_path):
    from matplotlib.colors import to_hex

    from lrsearch.report import html, png
    from lrsearch.report._style import OTHER_COLOR, TOP_COLORS
    from lrsearch.results import write_confirmation

    study = lr_driven_study()
    by_value = [t.number for t in results.rank(study.get_trials(), "maximize", {})]
    write_confirmation(study, by_value[7], {10: 0.99, 11: 0.98})  # the 8th by its own value is best on fresh seeds
    data = report_data.collect(study)
    top = data.ranking[:5]
    assert top[0] == by_value[7] and top[1:] == by_value[:4]

    figure = html.curves(data.learning_curves, "t", top)
    traces = figure.data
    assert len(traces) == len(data.learning_curves.series) == 22
    grey, coloured = traces[:17], traces[17:]  # the top trials drawn last, over the others
    assert [t.name for t in coloured] == [f"#{rank}: trial {number}" for rank, number in enumerate(top, start=1)]
    assert [t.line.color for t in coloured] == list(TOP_COLORS)
    assert {t.line.color for t in grey} == {OTHER_COLOR} and max(t.line.width for t in grey) < coloured[0].line.width
    assert [t.showlegend for t in grey].count(True) == 1 and grey[0].legendgrouptitle.text == "other trials (17)"
    assert all(t.showlegend is not False for t in coloured)

    drawn = png.curves(data.learning_curves, "t", top)
    assert [text.get_text() for text in drawn.legends[0].get_texts()] == [t.name for t in coloured] + [
        "other trials (17)"]
    ax = drawn.axes[0]
    (others,) = ax.collections
    assert len(others.get_segments()) == 17 and to_hex(others.get_colors()[0]) == OTHER_COLOR
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == [t.name for t in coloured]
    assert [line.get_color() for line in lines] == list(TOP_COLORS)
    assert min(line.get_linewidth() for line in lines) > others.get_linewidths()[0]
    assert others.get_zorder() < min(line.get_zorder() for line in lines)

    page = (write_report_for(study, tmp_path / "r") / "learning_curves.html").read_text()
    assert all(f'"name":"{t.name}"' in page for t in coloured) and "the top 5 in colour" in page


def test_minimize_direction_orders_best_and_history():
    study = optuna.create_study(direction="minimize")
    for value in (0.5, 0.3, 0.4, 0.1):
        add_trial(study, curve=(0.9, value))
    data = report_data.collect(study)
    assert list(data.history.frame["best_so_far"]) == [0.5, 0.3, 0.3, 0.1]
    assert list(data.lr_curves.series) == [3, 1, 2, 0]


def test_too_few_trials_for_importance_still_reports(tmp_path):
    study = lr_driven_study(n_complete=4, n_pruned=1, n_failed=0)
    out = write_report_for(study, tmp_path / "r")
    assert not (out / "importance.html").exists() and (out / "history.png").exists()
    summary = (out / "summary.md").read_text()
    assert "## Missing" in summary and "needs at least 10 trials" in summary and "this study has 5" in summary


def test_only_pruned_and_failed_trials(tmp_path):
    study = lr_driven_study(n_complete=0, n_pruned=4, n_failed=3)
    out = write_report_for(study, tmp_path / "r")
    written = {p.name for p in out.iterdir()}
    assert {"learning_curves.png", "learning_curves.html", "objective_vs_lr.png", "parallel_coordinates.png",
            "trials.csv", "summary.md"} <= written
    assert not written & {"history.png", "lr_per_epoch.png", "importance.png"}
    summary = (out / "summary.md").read_text()
    assert "No complete trial yet" in summary
    for missing in ("importance", "history", "lr per epoch"):
        assert f"- {missing}:" in summary
    assert "| diverged |" in summary and "| ValueError: bad model | 3 |" in summary


def test_interrupted_trials_are_reported_apart_from_the_failed():
    from lrsearch.dashboard._notes import trial_note
    from lrsearch.report._summary import render
    from lrsearch.results._record import interrupt_trial

    study = lr_driven_study(n_complete=3, n_pruned=0, n_failed=1)
    running = study.ask()
    running.report(0.4, 0)
    assert interrupt_trial(study, study.trials[running.number], "its run was killed")
    summary = render(report_data.collect(study), "(in memory)", {})
    assert "| ValueError: bad model | 1 |" in summary
    assert "| interrupted (not counted, retried): cause | trials |\n|---|---|\n| its run was killed | 1 |" in summary
    note = trial_note(results.read_trial(study.trials[running.number]), results.read_study(study))
    assert note.startswith(f"### Trial {running.number}: interrupted (not counted)")
    assert "- **Interrupted**: interrupted: its run was killed, after 1 epoch(s)" in note


def test_the_summary_notes_a_top_trial_that_sat_at_the_plateau_floor(tmp_path):
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("objective", "val_accuracy")
    add_trial(study, curve=[0.5, 0.7, 0.8, 0.8, 0.8], schedule="constant")
    add_trial(study, curve=[0.5, 0.6, 0.7, 0.7, 0.7], schedule="constant")
    add_trial(study, curve=[0.5, 0.6, 0.7, 0.7, 0.7], schedule="plateau")
    add_trial(study, curve=[0.5, 0.6, 0.7, 0.7, 0.7], lr=1e-7, schedule="constant")  # low, but no floor it reached
    like = study.trials[2]
    history = dict(like.user_attrs["history"], lr=[1e-2, 1e-3, 1e-7, 1e-7, 1e-7])
    study.add_trial(optuna.trial.create_trial(params=like.params, distributions=like.distributions, value=0.7,
                                              user_attrs=dict(like.user_attrs, history=history)))
    data = report_data.collect(study)
    assert data.at_floor == {4: (3, 5)}
    summary = (write_report_for(study, tmp_path / "r") / "summary.md").read_text()
    assert "Trial 4 spent 3 of its 5 epochs at the plateau schedule's floor (lr 1e-07)" in summary
    assert all(f"Trial {n} spent" not in summary for n in range(4))


def test_empty_study(tmp_path):
    out = write_report_for(optuna.create_study(), tmp_path / "r")
    assert sorted(p.name for p in out.iterdir()) == ["summary.md", "trials.csv"]
    assert "Trials: none." in (out / "summary.md").read_text()
    assert (out / "trials.csv").read_text().startswith("number,state,value,confirmed_mean,confirmed_std,"
                                                       "confirmed_seeds,confirmed_diverged,optimizer")


def assert_one_plotly_js(folder: Path) -> None:
    """The folder's pages all load the one plotly.min.js beside them, by a relative path
    (so they open offline, and the folder can move), and none inlines it."""
    assert [p.name for p in folder.glob("*.js")] == ["plotly.min.js"]
    pages = list(folder.glob("*.html"))
    assert pages
    for page in pages:
        text = page.read_text()
        assert re.findall(r'<script[^>]*\bsrc="([^"]*)"', text) == ["plotly.min.js"], page.name
        assert "Plotly.newPlot" in text and len(text) < 500_000, page.name


def test_hundred_trials_report_is_complete_quiet_and_small(tmp_path, capfd):
    """A 100-trial, 200-epoch study in a journal file, as `lrsearch run` leaves it: every
    figure, nothing printed, under 5 MiB in all (the time it took is printed for the
    record, not asserted)."""
    from lrsearch.storage import open_storage

    path = str(tmp_path / "big.journal")
    study = optuna.create_study(direction="maximize", study_name="big", storage=open_storage(path))
    rng = np.random.default_rng(1)
    for i in range(100):
        lr = float(10 ** rng.uniform(-6, 0))
        final = 0.84 - 0.1 * abs(math.log10(lr) + 2)
        curve = list(final * (1 - np.exp(-np.arange(1, 201) / 20)))
        if i % 3:
            add_trial(study, optimizer=["sgd", "adam"][i % 2], lr=lr, momentum=0.9, curve=curve)
        else:
            add_trial(study, lr=lr, curve=curve[:20], state="PRUNED", pruned_reason="pruner")
    capfd.readouterr()
    started = time.perf_counter()
    out = write_report(path, "big", tmp_path / "r")
    seconds = time.perf_counter() - started
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
    assert {f"{name}.png" for name in FIGURES} <= {p.name for p in out.iterdir()}
    assert_one_plotly_js(out)
    size = sum(p.stat().st_size for p in out.iterdir())
    assert size < 5 * 2**20, f"{size / 2**20:.2f} MiB"
    print(f"100-trial report: {seconds:.1f} s, {size / 2**20:.2f} MiB")


@pytest.fixture(scope="module")
def blobs_journal(tmp_path_factory):
    """A real search on the seed's blobs problem: 12 trials of 6 epochs in a journal file."""
    from lrsearch.storage import open_storage
    from lrsearch.study import load_study
    from lrsearch.training import TrialRunner, make_pruner

    path = str(tmp_path_factory.mktemp("blobs") / "blobs.journal")
    study = optuna.create_study(direction="maximize", study_name="blobs", storage=open_storage(path),
                                sampler=optuna.samplers.TPESampler(seed=0), pruner=make_pruner("hyperband", 6))
    study.set_user_attr("objective", "val_accuracy")
    study.optimize(TrialRunner(load_study(ROOT / "studies" / "blobs.py"), epochs=6), n_trials=12)
    return path


def test_report_command_after_a_blobs_run(blobs_journal, tmp_path):
    import matplotlib.image
    import pandas as pd

    from lrsearch.cli import main
    from lrsearch.storage import open_storage

    out = tmp_path / "report"
    assert main(["report", "--storage", blobs_journal, "--study-name", "blobs", "-o", str(out)]) == 0
    study = optuna.load_study(study_name="blobs", storage=open_storage(blobs_journal))
    assert_one_plotly_js(out)
    for name in FIGURES:
        image = matplotlib.image.imread(out / f"{name}.png")
        assert image.shape[0] > 200 and image.shape[1] > 400 and image.std() > 0.01  # not blank
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 12 and set(trials["state"]) <= {"COMPLETE", "PRUNED"}
    epochs_run = (out / "trials.csv").read_text().splitlines()[1].split(",")[list(trials.columns).index("epochs_run")]
    assert epochs_run.isdigit()  # a count reads 20, not 20.0
    summary = (out / "summary.md").read_text()
    best = study.best_trial
    assert f"| {best.number} | {best.value:.4g} |" in summary
    assert "## Missing" not in summary and "FanovaImportanceEvaluator" in summary
    assert "A plain `optuna-dashboard` shows Optuna's default instead: PED-ANOVA over the complete trials" in summary


def test_the_summaries_show_the_models_own_parameters_and_mark_every_tie():
    """build_model's own parameters beside each top trial's learning-rate settings, in the
    printed summary and summary.md; ties marked wherever they are in the ranked table: the
    pick and trial 1 within their confirmation's noise, trials 3 and 2 equal to 4 digits
    (their tie decides nothing)."""
    from lrsearch.report._summary import render
    from lrsearch.run._progress import summary

    study = optuna.create_study(direction="maximize", study_name="arch")
    study.set_user_attr("objective", "val_accuracy")
    for value, units, dropout in ((0.9, 32, 0.25), (0.88, 16, 0.1), (0.812341, 8, 0.0), (0.812344, 64, 0.5),
                                  (0.7, 4, 0.3)):
        add_trial(study, curve=[value], model_params={"units": units, "dropout": dropout})
    results.write_confirmation(study, 0, {1: 0.86, 2: 0.80, 3: 0.83})
    results.write_confirmation(study, 1, {1: 0.84, 2: 0.78, 3: 0.82})

    printed = summary(study).splitlines()
    rows = {int(line.split()[0]): line for line in printed if re.match(r"\s+\d+\s+[= ]?\s*\d", line)}
    assert list(rows) == [0, 1, 3, 2, 4]
    assert [number for number, line in rows.items() if " = " in line] == [1, 2]
    assert " = 0.8133 +- 0.031 (3 seeds)" in rows[1] and re.match(r"\s+2\s+=\s+0.8123 ", rows[2])
    assert rows[0].endswith("adam lr=0.01 constant; model units=32, dropout=0.25")
    assert results.TIES_LEGEND in printed

    markdown = render(report_data.collect(study), "memory", {})
    assert "| val_accuracy | on fresh seeds (mean +- std) | best (epoch) | epochs | configuration | model |" in markdown
    assert "| 0 | 0.9 | 0.83 +- 0.03 (3 seeds) |" in markdown and "| 1 | 0.88 | = 0.8133 +- 0.031 (3 seeds) |" in markdown
    assert "| 3 | 0.8123 |" in markdown and "| 2 | = 0.8123 |" in markdown and "| 4 | 0.7 |" in markdown
    assert "| adam lr=0.01 constant | units=32, dropout=0.25 |" in markdown
    assert results.TIES_LEGEND in markdown
