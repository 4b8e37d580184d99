"""Train a study's pick (by the mean over fresh seeds where confirmed, as `lrsearch export`
chooses), or trial N, again as the search trained it, and save the Keras model with its
history beside it (model.keras, model.history.json). --full-data trains on the training and
validation rows together for a final model, reporting training metrics only. The model is
saved compiled with the trial's optimizer at its last learning rate and no schedule, so it
loads with plain keras.saving.load_model where lrsearch is not installed; where it names the
study file's own functions or classes (a loss, a metric, a layer), the output says how to
load it: lrsearch.load_model(path, study_file), or Keras' custom_objects naming them."""

from __future__ import annotations

import argparse

from lrsearch.cli._arguments import add_study_arguments, at_least
from lrsearch.study import MAX_SEED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study_arguments(parser, file_required=True)
    parser.add_argument("--trial", type=int, metavar="N", help="retrain trial number N instead of the pick")
    parser.add_argument("-o", "--output", required=True, metavar="MODEL.keras",
                        help="where to save the model (.keras); its history goes beside it as .history.json")
    parser.add_argument("--full-data", action="store_true",
                        help="train on the training and validation rows together (a final model: nothing is "
                             "held out, so only training metrics are reported)")
    parser.add_argument("--seed", type=at_least(0, MAX_SEED), help="seed to train on (default: the trial's own)")
    parser.add_argument("--epochs", type=at_least(1), help="epochs to train (default: the study's)")


def main(args: argparse.Namespace) -> int:
    from lrsearch.errors import UsageError
    from lrsearch.export import retrain

    for name in ("seed", "epochs"):
        value = getattr(args, name)
        if value is not None and value < (1 if name == "epochs" else 0):
            raise UsageError(f"--{name} must be >= {1 if name == 'epochs' else 0}, but got {value}.")
    retrain(args.study_file, storage=args.storage, study_name=args.study_name, trial=args.trial,
            output=args.output, full_data=args.full_data, seed=args.seed, epochs=args.epochs)
    return 0
