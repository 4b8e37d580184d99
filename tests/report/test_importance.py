"""Parameter importance with known answers: searches over lrsearch's conditional space
(`space.suggest`, the TPE sampler of `lrsearch.workers.open_study`, the Hyperband pruner of `pruning.py`,
pruned trials as the runner leaves them) on a plain objective whose value depends on one
parameter, no Keras; the report's `importance` must rank that parameter first, and
`lrsearch dashboard`'s importance panel must show the same values."""

from __future__ import annotations

import json
import math
from wsgiref.util import setup_testing_defaults

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from lrsearch.report import importance  # noqa: E402
from lrsearch.lr import Space, suggest  # noqa: E402

EPOCHS = 60
SEEDS = (2, 4, 6, 7)
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


@pytest.fixture(autouse=True, scope="module")
def _quiet_optuna():
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(verbosity)


def search(final, seed: int, n_trials: int = 60, storage=None) -> "optuna.Study":
    """A maximising search in which a trial's value climbs from 1/3 towards `final(config)`
    (plus noise) over EPOCHS epochs, reported each epoch and pruned as lrsearch prunes."""
    rng = np.random.default_rng(seed)

    def objective(trial):
        target = final(suggest(trial, Space())) + rng.normal(0, 0.01)
        for epoch in range(EPOCHS):
            value = 1 / 3 + (target - 1 / 3) * (1 - math.exp(-10 * (epoch + 1) / EPOCHS))
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study = optuna.create_study(
        study_name=f"known-{seed}", direction="maximize", storage=storage,
        sampler=optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True, seed=seed),
        pruner=optuna.pruners.HyperbandPruner(min_resource=EPOCHS // 20, max_resource=EPOCHS, reduction_factor=3))
    study.optimize(objective, n_trials=n_trials)
    return study


def lr_only(config) -> float:
    """Any lr above 1e-3 trains as well as another; below, the lower the worse (as on blobs)."""
    return 0.2 + 0.63 * min(1.0, max(0.0, (math.log10(config.lr) + 7) / 4))


def sgd_momentum(config) -> float:
    """Only SGD with momentum above 0.8 is good."""
    return 0.85 if config.optimizer == "sgd" and config.momentum > 0.8 else 0.5


def plateau_factor(config) -> float:
    """Only ReduceLROnPlateau with a factor below 0.15 is good."""
    return 0.85 if config.schedule == "plateau" and config.factor < 0.15 else 0.5


def ranked(study) -> dict[str, float]:
    trials = study.get_trials(deepcopy=False)
    imp = importance(trials, "maximize")
    states = [t.state.name for t in trials]
    assert imp.n_pruned == states.count("PRUNED") > 0 and imp.n_trials == len(trials)
    return imp.values


@pytest.mark.parametrize("seed", SEEDS)
def test_lr_that_alone_sets_the_value_ranks_first(seed):
    values = ranked(search(lr_only, seed))
    assert max(values, key=values.get) == "lr" and values["lr"] > 0.5, values


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("final, answers", [(sgd_momentum, {"momentum", "optimizer"}),
                                            (plateau_factor, {"factor", "schedule"})], ids=["momentum", "factor"])
def test_conditional_parameter_that_sets_the_value_ranks_first(final, answers, seed):
    values = ranked(search(final, seed))
    assert max(values, key=values.get) in answers and sum(values.get(n, 0) for n in answers) > 0.5, values


def test_dashboard_panel_shows_the_report_importances():
    pytest.importorskip("optuna_dashboard")
    from lrsearch.dashboard import ReportImportance

    storage = optuna.storages.InMemoryStorage()
    study = search(lr_only, 0, n_trials=30, storage=storage)
    app = ReportImportance(storage)

    def get(path: str):
        environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
        setup_testing_defaults(environ)
        status = []
        body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
        return status[0], json.loads(body)

    status, body = get(f"/api/studies/{study._study_id}/param_importances")
    expected = importance(study.get_trials(deepcopy=False), "maximize").values
    assert status.startswith("200") and len(body["param_importances"]) == 1
    panel = body["param_importances"][0]
    assert {p["name"]: p["importance"] for p in panel} == pytest.approx(expected)
    assert [p["name"] for p in panel] == list(expected)
    assert {p["name"]: p["distribution"] for p in panel}["lr"] == "FloatDistribution"
    status, body = get("/api/studies")  # everything else is optuna-dashboard's
    assert status.startswith("200") and [s["study_name"] for s in body["study_summaries"]] == ["known-0"]
