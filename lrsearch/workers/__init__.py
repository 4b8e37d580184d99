"""Worker processes over GPUs or CPU cores that share one Optuna storage: a study's trials run in `spawn`ed
workers (several at once in lanes where the model allows) under a parent that never imports TensorFlow.

Both sides of the process boundary:
  `_job`            the `Job` the parent hands each worker, `open_study`, the sampler's seed, the exit codes;
  `_start_sampler`  the workers' sampler: a new study's first trials take the usual starting rates, then TPE;
  `_messages`       the typed messages between them: events from a worker, orders from the parent;
  `_claims`         the claim locks (this machine's, made by the parent, and PostgreSQL's across machines) under
                    which a worker creates its next trial, so that a study ends with exactly `n_trials`; through
                    a gRPC proxy, the tickets (waiting trials made ahead) that workers take instead;
  `_proxy_lock`     a study's lock made of Optuna storage calls alone, across the machines behind a gRPC proxy;
  `_study_lock`     the lock every run's processes take to claim from one study (trials, confirmation trainings).
Worker side (the spawned process):
  `_worker`         its entry point and start-up (device first, then TensorFlow, then each job), its link to the
                    parent, and the confirmation trainings it serves once the study is full;
  `_warm`           what it keeps from one job to the next: its device, database storages, the last trial runner;
  `_trials`         its trial loop, one thread a lane.
Parent side:
  `_supervisor`     `Supervisor`: starts, replaces and stops the workers, handles Ctrl-C and SIGTERM, and acts on
                    their events;
  `_processes`      the parent's end of a run's workers: each one's process, two pipes and stop flag;
  `_pool`           the workers a Python session keeps warm between runs, and `shutdown`, which ends them;
  `_confirmations`  `Confirming` and the queue that hands confirmation trainings to idle lanes and records
                    their values;
  `_recovery`       fails the trials of dead workers and of runs killed outright, and tells which RUNNING trials a
                    live worker elsewhere may still finish.
A worker writes its trial's reports behind (`lrsearch.storage._writeback`), heartbeats fail the trials of a
machine that vanished, and storage outages are waited out (`lrsearch.storage._resilient`).
"""

from lrsearch.workers._claims import claimed_trials
from lrsearch.workers._confirmations import Confirming
from lrsearch.workers._job import Job, open_study
from lrsearch.workers._pool import shutdown
from lrsearch.workers._recovery import fail_dead_local_trials
from lrsearch.workers._supervisor import Supervisor

__all__ = ["Confirming", "Job", "Supervisor", "claimed_trials", "fail_dead_local_trials", "open_study", "shutdown"]
