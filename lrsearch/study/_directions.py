"""Which way a Keras loss or metric improves, by the name it has in the training logs.

Keras logs a metric under its name (`mae`, `auc`, `mean_squared_error`), with `val_` for
the validation data, an output's name before it for multi-output models (`price_mae`)
and `_N` after it when a name repeats (`auc_1`). `direction_of` knows Keras' built-in
losses and metrics in all those forms and answers None for any other name: an objective
lrsearch does not know must come with its direction, never a guess.
"""

from __future__ import annotations

import re

_MINIMIZE = {
    "loss", "mse", "mae", "mape", "msle", "rmse", "mean_squared_error", "mean_absolute_error",
    "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "root_mean_squared_error",
    "hinge", "squared_hinge", "categorical_hinge", "logcosh", "log_cosh", "log_cosh_error", "huber", "poisson",
    "kld", "kl_divergence", "kullback_leibler_divergence", "crossentropy", "binary_crossentropy",
    "categorical_crossentropy", "sparse_categorical_crossentropy", "binary_focal_crossentropy",
    "categorical_focal_crossentropy", "ctc", "dice", "tversky", "false_positives", "false_negatives",
}
_MAXIMIZE = {
    "accuracy", "acc", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "auc", "prc", "precision", "recall",
    "f1_score", "fbeta_score", "r2_score", "iou", "mean_iou", "binary_iou", "one_hot_iou", "one_hot_mean_iou",
    "cosine_similarity", "true_positives", "true_negatives", "precision_at_recall", "recall_at_precision",
    "sensitivity_at_specificity", "specificity_at_sensitivity",
}
_REPEAT = re.compile(r"_\d+$")


def close_names(objective: str) -> list[str]:
    """Known log names that `objective` may be a typo of (with its `val_`)."""
    import difflib

    prefix = "val_" if objective.lower().startswith("val_") else ""
    name = objective.lower()[len(prefix):]
    return [prefix + n for n in difflib.get_close_matches(name, sorted(_MINIMIZE | _MAXIMIZE), n=2, cutoff=0.85)]


def direction_of(objective: str) -> str | None:
    """'minimize' or 'maximize' for a Keras loss or metric log name, else None."""
    name = objective.lower()
    name = name[4:] if name.startswith("val_") else name
    name = _REPEAT.sub("", name)
    for known, direction in ((_MINIMIZE, "minimize"), (_MAXIMIZE, "maximize")):
        if name in known or any(name.endswith(f"_{k}") for k in known):
            return direction
    return None
