"""Write a study's best learning-rate configurations to a JSON or YAML file (`export_study`
is `lrsearch export`), the one `lrsearch.export._config_file` reads (`lrsearch.load_config`)
and whose `keras` section Keras reads alone:

    optimizer = keras.optimizers.deserialize(json.load(open("best.json"))["keras"]["optimizer"])

A `--top K` file holds K such documents in `configs`, best first (`load_config(path, rank=K)`,
`[...]["configs"][K - 1]["keras"]`); `reading_hint` says which for the file written.

Exporting builds the optimizer, so it imports Keras; counting a trial's batches per epoch
(one_cycle's length) imports the runner and TensorFlow.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrsearch.errors import ready_to_write, writing
from lrsearch.lr import SCHEDULES, ConfigError, LRConfig
from lrsearch.export._config_file import (SCHEMA, SCHEMA_MANY, SCHEMA_VERSION, ExportedConfig, check_count,
                                          confirmation_document)
from lrsearch.storage import DEFAULT_STORAGE

if TYPE_CHECKING:
    import optuna

    from lrsearch.study import Study

FORMATS = ("json", "yaml")
#: The output that means standard output.
STDOUT = "-"
#: What every `keras` section says.
KERAS_NOTE = ("keras.optimizers.deserialize(keras['optimizer']) builds the optimizer with Keras alone; each "
              "callback is keras.callbacks.<class_name>(**config). Both are written from lr_config and training, "
              "which lrsearch.load_config reads.")


def export_study(study_file: "str | os.PathLike | Study | None" = None, *, storage: str = DEFAULT_STORAGE,
                 study_name: str | None = None, output: str | os.PathLike | None = None, top: int | None = None,
                 trial: int | None = None, fmt: str | None = None, verbose: bool = True) -> list[ExportedConfig]:
    """`lrsearch export`: write the pick of a stored study (or trial number `trial`, or the
    `top` best, best first) to `output` (default: ./STUDY_NAME-best.json, or .yaml with
    `fmt` "yaml"; "-": standard output) and return what was written. The study is the
    study file's (a path or a loaded `Study`), or `study_name` in `storage`; `verbose`
    prints each configuration and the file written (to stderr where the file is stdout)."""
    from lrsearch.lr import describe
    from lrsearch.results import describe_model
    from lrsearch.study import file_stem, resolve_study

    ref = resolve_study(study_file, storage=storage, study_name=study_name)
    configs = exported_configs(ref.open(), trial=trial, top=top, study_file=ref.study)
    many = top is not None
    to_stdout = output is not None and os.fspath(output) == STDOUT
    if to_stdout:  # the document alone on standard output, for a pipe; the lines below go to stderr
        sys.stdout.write(render(configs, _known(fmt) or "json", many=many))
        sys.stdout.flush()
    else:
        path = write(configs, output or f"{file_stem(ref.study_name)}-best.{fmt or 'json'}", fmt=fmt, many=many)
    if verbose:
        say = sys.stderr if to_stdout else sys.stdout
        for rank, cfg in enumerate(configs, start=1):
            fresh = f" (fresh seeds: {cfg.confirmation.describe()})" if cfg.confirmation else ""
            model = f"; model {described}" if (described := describe_model(cfg.model_params)) else ""
            print(f"{'#' + str(rank) + ' ' if top else ''}trial {cfg.trial_number}: {cfg.objective}="
                  f"{cfg.value:.4g}{fresh}  {describe(cfg.lr_config.to_dict())}{model}", file=say)
        if not to_stdout:
            print(f"Wrote {path}" + (f" ({len(configs)} configurations, best first)" if many else "")
                  + f"; {reading_hint(path, configs, many=many, fmt=fmt)}")
    return configs


def reading_hint(path: Path, configs: list[ExportedConfig], *, many: bool, fmt: str | None = None) -> str:
    """What another project runs to read the file `write(configs, path, fmt=fmt, many=many)`
    wrote: `load_config`, and Keras' own reading of the best's optimizer where the file holds one."""
    where = str(path)
    line = f"in another project: cfg = lrsearch.load_config({where!r}{', rank=1' if many else ''})"
    if many and len(configs) > 1:
        line += f" for the best (rank={'2' if len(configs) == 2 else f'2..{len(configs)}'} for the others)"
    schedule = SCHEDULES[configs[0].lr_config.schedule]
    if configs[0].steps_per_epoch is None and schedule.needs_steps:
        return line + (f"; the file holds no Keras optimizer, since the {schedule.name} schedule's length needs the "
                       f"batches per epoch: cfg.optimizer(steps_per_epoch=...) builds it.")
    document = f"json.load(open({where!r}))" if file_format(path, fmt) == "json" else f"yaml.safe_load(open({where!r}))"
    best = "['configs'][0]" if many else ""
    keras_reads = f"keras.optimizers.deserialize({document}{best}['keras']['optimizer'])"
    how = "with Keras, once lrsearch's own schedule is imported as the file's keras note says" if schedule.note \
        else "with Keras alone"
    return f"{line}, or {how}: {keras_reads}"


def file_format(out: str | os.PathLike, fmt: str | None = None) -> str:
    """The format of the file `out`: from its suffix (.json; .yaml, .yml), else `fmt`, else
    json; ConfigError where `fmt` contradicts the suffix (load_config reads by the suffix)."""
    named = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}.get(Path(out).suffix.lower())
    if fmt is not None and named is not None and fmt != named:
        raise ConfigError(f"{os.fspath(out)!r} names a {named.upper()} file, but the format asked for is {fmt}: "
                          f"name it .{'yaml' if fmt == 'yaml' else 'json'}, or leave the format out.")
    return named or fmt or "json"


def to_document(config: ExportedConfig) -> dict[str, Any]:
    """The file's document for one configuration."""
    document = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "lrsearch_version": config.lrsearch_version,
        "exported_at": config.exported_at,
        "study": {"name": config.study_name, "trial": config.trial_number, "objective": config.objective,
                  "direction": config.direction, "value": config.value},
        "training": {"epochs": config.epochs, "batch_size": config.batch_size, "seed": config.seed,
                     "steps_per_epoch": config.steps_per_epoch},
        "lr_config": config.lr_config.to_dict(),
        "keras": keras_section(config),
    }
    if config.model_params:
        document["model_params"] = dict(config.model_params)
    if config.confirmation is not None:
        document["confirmation"] = confirmation_document(config.confirmation)
    return document


def keras_section(config: ExportedConfig) -> dict[str, Any]:
    """What a project with Keras alone reads: Keras' own serialized optimizer (its schedule
    inside) and the callbacks as `keras.callbacks` classes with their arguments."""
    from lrsearch.devices import import_tensorflow

    import_tensorflow()  # quietly, before Keras loads it
    import keras

    schedule = SCHEDULES[config.lr_config.schedule]
    section: dict[str, Any] = {}
    notes = [KERAS_NOTE, schedule.note]
    if config.steps_per_epoch is None and schedule.needs_steps:
        notes = [f"No optimizer: the {schedule.name} schedule's length depends on the batches per epoch, which "
                 f"the trial did not record; lrsearch.load_config(path).optimizer(steps_per_epoch=...) builds it."]
    else:
        section["optimizer"] = keras.optimizers.serialize(config.optimizer())
    section["callbacks"] = [{"class_name": name, "config": options}
                            for name, options in schedule.callbacks(config.lr_config, config.objective,
                                                                    config.direction)]
    section["note"] = " ".join(note for note in notes if note)
    return section


def exported_configs(
    study: "optuna.Study", *, trial: int | None = None, top: int | None = None, study_file: Any = None
) -> list[ExportedConfig]:
    """The best complete trial of `study` (or trial number `trial`, or the `top` best) as
    configurations to `write`, best first: by the mean over fresh seeds where the trials
    were confirmed (`lrsearch.results._ranking.rank`).

    Epochs are those the trial trained; batch size, objective and seed come from the
    study's attributes (recorded by `lrsearch run`), else from `study_file` (a loaded
    `Study`), which also counts the training batches when a one_cycle trial did not record them.
    """
    if trial is not None and top is not None:
        raise ConfigError("give either a trial number or a top count, not both.")
    if top is not None:
        check_count("top", top)
    if trial is not None:
        check_count("trial", trial, low=0)
    from lrsearch.results import confirmations, model_params, not_complete, rank, read_study, read_trial

    trials = study.get_trials(deepcopy=False)
    confirmed = confirmations(study)
    facts = _study_facts(study, study_file)
    if trial is not None:
        chosen = [t for t in trials if t.number == trial]
        if not chosen:
            raise ConfigError(f"study {study.study_name!r} has no trial {trial}; it has {len(trials)} trials "
                              f"(0-{len(trials) - 1}).")
        if chosen[0].state.name != "COMPLETE":
            raise ConfigError(f"{not_complete(chosen[0])}; only complete trials have a value to export.")
    else:
        chosen = rank(trials, study.direction.name.lower(), confirmed, facts["objective"])[:top or 1]
        if not chosen:
            raise ConfigError(f"study {study.study_name!r} has no complete trial yet, so there is nothing to export.")
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    from lrsearch._version import __version__

    configs = []
    shared = read_study(study)
    for t in chosen:
        rec = read_trial(t, shared)
        if rec.config is None:
            raise ConfigError(f"trial {t.number} has no recorded configuration; was it run by lrsearch?")
        lr_config = LRConfig.from_dict(rec.config)
        steps = rec.steps_per_epoch
        if steps is None and SCHEDULES[lr_config.schedule].needs_steps:
            steps = _steps_per_epoch(study_file, t.number)
        seed = rec.seed if rec.seed is not None else (None if facts["seed"] is None else facts["seed"] + t.number)
        configs.append(ExportedConfig(
            lr_config=lr_config, epochs=rec.epochs_run or facts["epochs"],
            batch_size=facts["batch_size"], seed=seed, steps_per_epoch=steps, objective=facts["objective"],
            direction=study.direction.name.lower(), value=float(t.value), study_name=study.study_name,
            trial_number=t.number, lrsearch_version=__version__, exported_at=now,
            model_params=model_params(t.params),
            confirmation=confirmed.get(t.number),
        ))
    return configs


def write(configs: list[ExportedConfig], out: str | os.PathLike, *, fmt: str | None = None,
          many: bool = False) -> Path:
    """Write one configuration (or, with `many`, a ranked list) as JSON or YAML."""
    out = Path(out)
    text = render(configs, file_format(out, _known(fmt)), many=many)
    ready_to_write(out)
    with writing(out):
        out.write_text(text, encoding="utf-8")
    return out


def render(configs: list[ExportedConfig], fmt: str, *, many: bool = False) -> str:
    """The text of one configuration (or, with `many`, a ranked list) in `fmt`, json or yaml."""
    if many:
        document: Any = {"schema": SCHEMA_MANY, "schema_version": SCHEMA_VERSION,
                         "configs": [to_document(c) for c in configs]}
    else:
        document = to_document(configs[0])
    if _known(fmt) == "yaml":
        import yaml

        return yaml.safe_dump(document, sort_keys=False)
    return json.dumps(document, indent=2, allow_nan=False) + "\n"


def _known(fmt: str | None) -> str | None:
    """`fmt` if it is None or one of `FORMATS`; ConfigError otherwise."""
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"format must be one of {list(FORMATS)}, but got {fmt!r}.")
    return fmt


def _study_facts(study: "optuna.Study", study_file: Any) -> dict[str, Any]:
    """epochs, batch_size, objective, seed: the study's attributes, else the study file's."""
    from lrsearch.results import read_study

    recorded = read_study(study)
    settings = getattr(study_file, "settings", None)
    facts = {}
    for key in ("epochs", "batch_size", "objective", "seed"):
        value = getattr(recorded, key)
        value = getattr(settings, key, None) if value is None else value
        if value is None and key != "seed":
            raise ConfigError(f"study {study.study_name!r} does not record its {key} (it was not made by "
                              f"`lrsearch run`); give the study file.")
        facts[key] = value
    return facts


def _steps_per_epoch(study_file: Any, number: int) -> int:
    """Batches per epoch of the study's training data, for a trial that did not record it
    (one_cycle's length depends on it)."""
    if study_file is None:
        raise ConfigError(f"trial {number} uses a schedule whose length depends on the batches per epoch, and "
                          f"does not record them; give the study file so that export can count them.")
    from lrsearch.training import TrialRunner

    return TrialRunner(study_file).steps_per_epoch()
