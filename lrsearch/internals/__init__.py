"""The one place lrsearch touches Keras', TensorFlow's, Optuna's and optuna-dashboard's private API
(and relies on an undocumented behaviour of Python's own `multiprocessing`).

Each function tries a public route first where one exists; where only the private one
does what lrsearch needs, a missing attribute raises `InternalError` naming it and the
installed versions, so that a renamed internal stops the run as lrsearch's bug instead
of failing every trial. Hot paths resolve an attribute once (`loss_tracker` returns the
metric itself, for use inside `tf.function`). Nothing here imports Keras, TensorFlow or
Optuna before it is called.
"""

from lrsearch.internals._dashboard import note_key, save_note
from lrsearch.internals._guard import unsupported
from lrsearch.internals._keras import (clone_layers, functional_class, loss_tracker, numpy_monitor_op,
                                       optimizer_stand_in, reset_layer_names, schedule_of, seed_keras, symbolic_build)
from lrsearch.internals._optuna import (TrialsReadOnceATrial, cached, enqueued_with_params, grpc_proxy_server,
                                        grpc_storage_proxy, heartbeat_base, instantiable, rdb_batch_writer,
                                        stale_trial_ids, storage_behind, storage_of, study_id, trial_id,
                                        without_optuna_stale_failing)
from lrsearch.internals._python import without_main_module
from lrsearch.internals._tensorflow import vectorize_bitcast

__all__ = ["TrialsReadOnceATrial", "cached", "clone_layers", "enqueued_with_params", "functional_class",
           "grpc_proxy_server", "grpc_storage_proxy", "heartbeat_base", "instantiable", "loss_tracker", "note_key",
           "numpy_monitor_op", "optimizer_stand_in", "rdb_batch_writer", "reset_layer_names", "save_note",
           "schedule_of", "seed_keras", "stale_trial_ids", "storage_behind", "storage_of", "study_id",
           "symbolic_build", "trial_id", "unsupported", "vectorize_bitcast", "without_main_module",
           "without_optuna_stale_failing"]
