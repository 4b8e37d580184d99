"""A gallery of study kinds (tests/gallery/), each run through `lrsearch run` with few epochs.

Each test checks that the run ends cleanly with every trial finished, that its trials took
the training path they should (lrsearch's compiled epoch loop for in-memory arrays,
`model.fit` for tf.data), and that the best trial, retrained on two fresh seeds, beats
the untrained model on the study's objective in the study's direction.
"""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest

import lrsearch
from lrsearch import results
from lrsearch.storage import open_storage
from lrsearch.study import data as lrdata, load_study

GALLERY = Path(__file__).resolve().parent.parent / "gallery"
FAST = ("Trials train with lrsearch's compiled epoch loop (in-memory arrays), one trial at a time, because each "
        "worker's share of the work is too small for lanes (a larger n_trials, --n-trials, or more trainings to "
        "confirm allow them).")
FALLBACK = "Trials train with model.fit (slower), because data() returns datasets, which only model.fit iterates, one trial at a time."
PATH_LINE = "Trials train with "

KINDS = [
    pytest.param("binary_auc", FAST, id="binary_auc", marks=pytest.mark.slow),
    pytest.param("regression_mae", FAST, id="regression_mae", marks=pytest.mark.slow),
    pytest.param("cnn_tfdata", FALLBACK, id="cnn_tfdata", marks=pytest.mark.slow),
    pytest.param("lstm_sequences", FAST, id="lstm_sequences", marks=pytest.mark.slow),
    # no custom train_step, so the fast loop trains it (a worker just does not keep it compiled, nor in lanes)
    pytest.param("subclassed", FAST.replace(FAST[FAST.index("each"):], "the model is not a plain Sequential or "
                                            "functional model with a config."), id="subclassed",
                 marks=pytest.mark.slow),
    pytest.param("two_inputs", FAST, id="two_inputs", marks=pytest.mark.slow),
    pytest.param("varying_architecture", FAST.split(", because")[0] + ", because build_model() suggests its own "
                 "parameters, so trials seldom share the compiled step that lanes share and each new one would trace "
                 "the lanes' step again (--lanes K trains in lanes all the same).", id="varying_architecture"),
    pytest.param("multi_output", FAST, id="multi_output", marks=pytest.mark.slow),
]


def untrained_value(study_file: Path, params: dict) -> float:
    """The objective of the study's model, built with `params` and not trained, on the validation data."""
    import keras

    study = load_study(study_file)
    settings = study.settings
    _, val = lrdata.load(study)
    keras.utils.set_random_seed(settings.seed)
    model = study.build_model(optuna.trial.FixedTrial(params))
    model.compile(optimizer="sgd", loss=settings.loss, metrics=settings.compile_metrics)
    if lrdata.is_dataset(val):
        logs = model.evaluate(val, return_dict=True, verbose=0)
    else:
        x, y, *weights = val
        logs = model.evaluate(x, y, sample_weight=weights[0] if weights else None, batch_size=256,
                              return_dict=True, verbose=0)
    key = settings.objective.removeprefix("val_")
    assert key in logs, f"evaluate logged {sorted(logs)}, not {key!r}"
    return float(logs[key])


@pytest.mark.parametrize("kind, path_line", KINDS)
def test_gallery_study(cli, tmp_path, capsys, kind, path_line):
    study_file = GALLERY / f"{kind}.py"
    journal = str(tmp_path / "x.journal")
    started = time.monotonic()
    result = cli("run", str(study_file), "--storage", journal, "--n-trials", "4", "--workers", "1", "--no-report",
                 "--confirm", "1,2", timeout=240)
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]

    paths = [line[line.index(PATH_LINE):] for line in result.stderr.splitlines() if PATH_LINE in line]
    assert paths == [path_line], paths

    study = optuna.load_study(study_name=kind, storage=open_storage(journal))
    states = [trial.state for trial in study.trials]
    assert len(states) >= 4, states
    assert all(state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for state in states), states
    assert optuna.trial.TrialState.COMPLETE in states, states

    settings = load_study(study_file).settings
    confirmed = results.confirmations(study)
    top = results.rank(study.trials, settings.direction, {}, settings.objective)[0]  # ties: the lower loss
    assert list(confirmed) == [top.number] and len(confirmed[top.number].values) == 2
    best = confirmed[top.number].mean  # on two fresh seeds: not one lucky draw
    assert best is not None, f"the best trial diverged on both fresh seeds: {confirmed}"
    untrained = untrained_value(study_file, top.params)
    print(f"\n{kind}: {seconds:.1f}s, best {settings.objective} {best:.4f} on fresh seeds vs untrained "
          f"{untrained:.4f} ({settings.direction}); {paths[0]}")
    if settings.direction == "minimize":
        assert best < untrained, (best, untrained)
    else:
        assert best > untrained, (best, untrained)

    capsys.readouterr()
    (exported,) = lrsearch.export_study(study_file, storage=journal, output=tmp_path / "best.json")
    printed, model = capsys.readouterr().out.splitlines()[0], results.describe_model(exported.model_params)
    assert exported.trial_number == top.number and printed.startswith(f"trial {top.number}: ")
    assert printed.endswith(f"; model {model}") if model else "; model" not in printed, printed
