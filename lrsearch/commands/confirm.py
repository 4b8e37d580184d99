"""Retrain the best trials of an existing study on fresh seeds and record each value, so
that the summary, the report and `lrsearch export` rank by the mean over seeds rather
than by one lucky draw. `lrsearch run` does this at its end (--confirm K,N); this command
does it for a study that skipped it or stopped during it. Trainings recorded already are
kept, so a larger --seeds adds seeds and a larger --top adds trials."""

from __future__ import annotations

import argparse
import sys

from lrsearch.commands._common import add_study_arguments, add_worker_arguments, at_least, plan_slots, seconds
from lrsearch.confirm import DEFAULT_SEEDS, DEFAULT_TOP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study_arguments(parser, file_required=True)
    parser.add_argument("--top", type=at_least(1), default=DEFAULT_TOP, metavar="K",
                        help=f"how many of the best complete trials to retrain (default: {DEFAULT_TOP})")
    parser.add_argument("--seeds", type=at_least(1), default=DEFAULT_SEEDS, metavar="N",
                        help=f"fresh seeds per trial (default: {DEFAULT_SEEDS})")
    parser.add_argument("--timeout", type=seconds, help="stop starting trainings after this many seconds")
    add_worker_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from lrsearch import confirm, record
    from lrsearch.errors import UsageError
    from lrsearch.commands._common import load_optuna_study, resolve_study
    from lrsearch.searching import Timer, check_unchanged, finish, prestarted, supervise
    from lrsearch.workers import Confirming, Job

    slots = plan_slots(args)
    ref = resolve_study(args)
    study = load_optuna_study(ref)
    settings = ref.study.settings
    epochs = record.read_study(study).epochs or settings.epochs
    check_unchanged(study, ref.study_name, accept=False, objective=settings.objective, epochs=epochs,
                    batch_size=settings.batch_size, space=ref.study.space.to_dict())
    if not confirm.rank(study.get_trials(deepcopy=False), study.direction.name.lower(), {}):
        raise UsageError(f"study {ref.study_name!r} has no complete trial yet, so there is nothing to confirm.")
    confirming = Confirming(args.top, args.seeds, after_running=False)
    recorded_seed = record.read_study(study).seed  # the study's, which its trials and fresh seeds derive from
    job = Job(study_path=str(ref.study.path), storage=ref.storage, study_name=ref.study_name, n_trials=0,
              epochs=epochs, seed=settings.seed if recorded_seed is None else recorded_seed, confirm=True)
    tasks = confirm.plan(study, args.top, args.seeds)
    outcome = None
    if tasks:
        with prestarted(slots[:len(tasks)]) as pool:  # no more workers than trainings
            outcome = supervise(pool, job, study, timer=Timer(args.timeout), confirming=confirming)
    else:
        print(f"The top {args.top} trials are confirmed on {args.seeds} fresh seed(s) already.")
    finish(outcome, study, hint=f"lrsearch confirm {args.study_file}", storage=ref.storage)
    if outcome and outcome.interrupted:
        print("Interrupted. Run the same command again to go on.", file=sys.stderr)
        return 130
    return 0
