"""What a study holds, typed: every attribute lrsearch stores, written and read in one
place (`_record`), and the ranking of trials by their mean over fresh seeds, with the
plan of the confirmation trainings that give those means (`_ranking`). Report, export and
search read results here rather than from each other."""

from lrsearch.results._ranking import (DEFAULT_SEEDS, DEFAULT_TOP, PRICED_CHOICES, PRICED_SHARE, SEED_OFFSET,
                                      TIES_LEGEND, Claim, Confirmation, Pricing, Task, confirmations, describe_model,
                                      fresh_seeds, model_params, plan, price, rank, read_claims, tie_note, tiebreaker,
                                      ties, training_seconds, verdict, write_claim)
from lrsearch.results._record import (BY_PRUNER, BY_STUDY_FILE, DIVERGED, STALLED, UNKNOWN_FAILURE, StudyRecord,
                                      TrialRecord, changes, fail_running_trials, fail_stale_trials, fail_trial,
                                      fixed_beforehand, interruption, name_objective, not_complete, range_test_key,
                                      read_bounds, read_confirmations, read_range_test, read_range_tests, read_study,
                                      read_trial, read_trials, split_worker_tag, trial_seed, worker_tag, write_bounds,
                                      write_confirmation, write_failure, write_pruned, write_range_test, write_study,
                                      write_trial_config, write_trial_end, write_worker)

__all__ = ["BY_PRUNER", "BY_STUDY_FILE", "Claim", "Confirmation", "DEFAULT_SEEDS", "DEFAULT_TOP", "DIVERGED",
           "PRICED_CHOICES", "PRICED_SHARE", "Pricing", "SEED_OFFSET", "STALLED", "StudyRecord", "TIES_LEGEND", "Task",
           "TrialRecord", "UNKNOWN_FAILURE", "changes", "confirmations", "describe_model", "fail_running_trials",
           "fail_stale_trials", "fail_trial", "fixed_beforehand", "fresh_seeds", "interruption", "model_params",
           "name_objective", "not_complete", "plan", "price", "range_test_key", "rank", "read_bounds", "read_claims",
           "read_confirmations", "read_range_test", "read_range_tests", "read_study", "read_trial", "read_trials",
           "split_worker_tag", "tie_note", "tiebreaker", "ties", "training_seconds", "trial_seed", "verdict",
           "worker_tag", "write_bounds", "write_claim", "write_confirmation", "write_failure", "write_pruned",
           "write_range_test", "write_study", "write_trial_config", "write_trial_end", "write_worker"]
