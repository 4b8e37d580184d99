"""Repair a damaged journal file: keep a backup beside it, then cut it after its last
complete record before the damage (a line cut short, or one that is not a record).
Records after the damage are dropped with it: a journal is replayed in order, and later
records may refer to what the dropped ones did. Trials that were running then are failed
by the next `lrsearch run`. A journal whose records do not add up (one in the middle was
lost) is only reported: a lost record cannot be brought back, and cutting before the
first record that shows it (--cut-inconsistent) drops what follows. Stop the runs and
workers using the journal first."""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("journal", metavar="PATH", help="the journal file, e.g. lrsearch.journal")
    parser.add_argument("--cut-inconsistent", action="store_true",
                        help="also cut a journal whose records do not add up, before the first record that shows "
                             "it; the records from there on are dropped (the backup keeps them)")


def main(args: argparse.Namespace) -> int:
    from lrsearch.storage import repair_journal

    result = repair_journal(os.path.expanduser(args.journal), cut_inconsistent=args.cut_inconsistent)
    damage = result.damage
    if damage is None:
        print(f"{args.journal}: no damage found ({result.records_kept} records); left as it is.")
        return 0
    print(f"{args.journal}: line {damage.line} of {damage.lines} {damage.problem}.")
    print(f"Backup: {result.backup}")
    dropped = f"; they created {result.trials_dropped} trial(s) and finished {result.endings_dropped}" if (
        result.trials_dropped or result.endings_dropped) else ""
    print(f"Kept {result.records_kept} records; dropped {result.lines_dropped} line(s), {result.bytes_dropped} "
          f"bytes{dropped}.")
    return 0
