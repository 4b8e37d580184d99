"""What the user sees while a study runs and when it ends: a live progress bar, the
top trials and the pruning reasons counted. Reads the storage only; no TensorFlow."""

from __future__ import annotations

import collections
import math
import sys
import time

from tqdm import tqdm

from lrsearch.errors import counted
from lrsearch.lr import describe


#: Seconds between two reads of the study for the progress bar, at least.
PROGRESS_INTERVAL = 1.0
#: The most of its time a run spends reading the study for its bar: where a read takes longer (a
#: storage that many machines' runs share, through a busy proxy), the bar is refreshed less often.
READ_SHARE = 0.05


class LiveProgress:
    """A tqdm bar (on `out`) of finished trials, refreshed from the storage at most once a second."""

    def __init__(self, study, n_trials: int, out=None) -> None:
        self.study = study
        self._next = 0.0  # when (monotonic) to read the study again
        self.bar = tqdm(total=n_trials, desc=study.study_name, unit="trial", file=out or sys.stderr,
                        dynamic_ncols=True, smoothing=0.1)
        self.tick(force=True)

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next:
            return
        trials = self.study.get_trials(deepcopy=False)  # one read a tick: many machines' runs share the storage
        self._next = now + max(PROGRESS_INTERVAL, (time.monotonic() - now) / READ_SHARE)
        counts = count_states(self.study, trials)
        finished = counts["COMPLETE"] + counts["PRUNED"] + counts["FAIL"]
        self.bar.n = min(finished, self.bar.total)
        best = best_value(self.study, trials)
        interrupted = f"interrupted {counts['INTERRUPTED']} " if counts["INTERRUPTED"] else ""
        self.bar.set_postfix_str(
            f"complete {counts['COMPLETE']} pruned {counts['PRUNED']} failed {counts['FAIL']} {interrupted}"
            f"running {counts['RUNNING']} best {'-' if best is None else f'{best:.4g}'}",
            refresh=False,
        )
        self.bar.refresh()

    def close(self, final_read: bool = True) -> None:
        """End the bar's line, after a last read of the study unless not `final_read` (the
        storage was lost: the read would wait for it again)."""
        if not self.bar.disable:
            try:
                if final_read:
                    self.tick(force=True)
            finally:
                self.bar.close()


def _fresh_seeds(count: int, recorded: list[int]) -> str:
    """`count` fresh seeds, said as more where the trials have `recorded` (their counts, sorted) already."""
    if recorded == [0]:
        return f"{count} fresh seed(s)"
    if len(recorded) == 1:
        return f"{count} more fresh seed(s) ({recorded[0]} recorded already)"
    return f"up to {count} more fresh seed(s) each ({recorded[0]} to {recorded[-1]} recorded already)"


class RunProgress:
    """A run's bars: the trials finished (unless `searching` is False), then the
    confirmation's trainings."""

    def __init__(self, study, n_trials: int, searching: bool = True) -> None:
        self.study = study
        self.search = LiveProgress(study, n_trials) if searching else None
        self.confirm: tqdm | None = None

    def tick(self) -> None:
        if self.search is not None and self.confirm is None:
            self.search.tick()

    def confirming(self, tasks: list, epochs: int, workers: int) -> None:
        """The search is done and the confirmation's `tasks` start."""
        if self.search is not None:
            self.search.close()
        if tasks:
            from lrsearch import results

            trials, seeds = sorted({t.number for t in tasks}), {t.seed for t in tasks}
            recorded = results.read_confirmations(self.study)
            print(f"Confirming trial(s) {', '.join(map(str, trials))} on "
                  f"{_fresh_seeds(len(seeds), sorted({len(recorded.get(number, {})) for number in trials}))}: "
                  f"{len(tasks)} training(s) of {counted(epochs, 'epoch')} on {workers} worker(s).", flush=True)
            self.confirm = tqdm(total=len(tasks), desc="confirm", unit="training", file=sys.stderr,
                                dynamic_ncols=True)
            self._confirm_started = time.monotonic()

    def confirmed(self) -> None:
        if self.confirm is not None:
            self.confirm.update(1)

    def close(self, final_read: bool = True) -> None:
        if self.search is not None:
            self.search.close(final_read)
        if self.confirm is not None and not self.confirm.disable:
            self.confirm.close()
            print(f"Confirmed {self.confirm.n} of {self.confirm.total} training(s) in "
                  f"{time.monotonic() - self._confirm_started:.1f} s.", flush=True)


def say(line: str) -> None:
    """One line to stderr that leaves a progress bar intact."""
    tqdm.write(f"lrsearch: {line}", file=sys.stderr)


def count_states(study, trials: list | None = None) -> collections.Counter:
    """Trials by state (of `trials`, read from `study` if not given), the interrupted ones
    (`results.interruption`) as INTERRUPTED, apart from FAIL: COMPLETE, PRUNED and FAIL count
    toward n_trials."""
    from lrsearch import results

    counts = collections.Counter({"COMPLETE": 0, "PRUNED": 0, "FAIL": 0, "INTERRUPTED": 0, "RUNNING": 0})
    counts.update("INTERRUPTED" if results.interruption(t) else t.state.name
                  for t in (study.get_trials(deepcopy=False) if trials is None else trials))
    return counts


def best_value(study, trials: list | None = None) -> float | None:
    """The best finite value of the COMPLETE trials (among `trials`, read from `study` if not given)."""
    values = [t.value for t in (study.get_trials(deepcopy=False) if trials is None else trials)
              if t.state.name == "COMPLETE" and t.value is not None and math.isfinite(t.value)]
    if not values:
        return None
    return max(values) if study.direction.name == "MAXIMIZE" else min(values)


def summary(study, top: int = 5) -> str:
    """The top trials with their configuration (ranked by their mean over fresh seeds where
    confirmed), then pruning and failure reasons counted."""
    from lrsearch import results

    shared = results.read_study(study)
    trials = results.read_trials(study)
    counts = collections.Counter("INTERRUPTED" if t.interrupted else t.state for t in trials)
    besides = "".join(f", {name.lower()} {counts[name]}" for name in ("INTERRUPTED", "WAITING") if counts[name])
    lines = [f"Study {study.study_name!r}: {len(trials)} trials - complete {counts['COMPLETE']}, "
             f"pruned {counts['PRUNED']}, failed {counts['FAIL']}{besides}, running {counts['RUNNING']}."]
    direction = study.direction.name.lower()
    confirmed = results.confirmations(study)
    objective = shared.objective or "value"
    done = results.rank(trials, direction, confirmed, shared.objective)
    if done:
        shown = done[:top]
        seeds = any(t.number in confirmed for t in shown)
        by = f"mean {objective} on fresh seeds" if seeds else f"{objective} at the last epoch"
        lines.append(f"\nTop {len(shown)} trial{'s' if len(shown) > 1 else ''} by {by}:")
        fresh = f"  {'on fresh seeds':<28}" if seeds else ""
        lines.append(f"  {'#':>4}  {'value':>9}{fresh}  {'best (epoch)':>14}  {'time':>6}  configuration")
        tied = results.ties(shown, confirmed)
        for t in shown:
            best = t.best(objective, direction)
            best_text = f"{best[0]:.4g} ({best[1] + 1})" if best is not None else "-"
            tie = "=" if t.number in tied else " "  # beside what ranks the trial
            own, fresh_tie = (" ", f"{tie} ") if t.number in confirmed else (tie, "")
            fresh = f"  {fresh_tie + confirmed[t.number].describe() if t.number in confirmed else '-':<28}" \
                if seeds else ""
            model = results.describe_model(t.params)
            lines.append(f"  {t.number:>4}  {own}{t.value:>8.4g}{fresh}  {best_text:>14}  {t.duration_s or 0:>5.1f}s  "
                         f"{describe(t.config or {})}" + (f"; model {model}" if model else ""))
        if tied:
            lines.append(results.TIES_LEGEND)
        for note in (results.verdict(trials, direction, confirmed, shared.objective),
                     shared.objective and results.tie_note(trials, direction, confirmed, shared.objective)):
            if note:
                lines.append(note)
    else:
        lines.append("\nNo trial completed yet.")
    pruned = collections.Counter(t.pruned_reason for t in trials if t.state == "PRUNED")
    if pruned:
        lines.append("\nPruned: " + ", ".join(f"{reason} {n}" for reason, n in pruned.most_common()))
    failed = collections.Counter(t.fail_reason for t in trials if t.state == "FAIL" and not t.interrupted)
    if failed:
        lines.append("Failed: " + "; ".join(f"{n} x {reason}" for reason, n in failed.most_common(3)))
    interrupted = collections.Counter(t.interrupted for t in trials if t.interrupted)
    if interrupted:
        retries = [str(t.number) for t in trials if t.retry_of is not None]
        retried = f"; retried as trial(s) {', '.join(retries)}" if retries else ""
        lines.append(f"Interrupted (not counted{retried}): "
                     + "; ".join(f"{n} x {cause}" for cause, n in interrupted.most_common(3)))
    return "\n".join(lines)
