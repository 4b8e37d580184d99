"""The trials a fresh study starts from: the learning rates people start from with each
optimizer, before the sampler's own draws.

Drawn log-uniformly from 1e-7..1, a third of a search's first trials learn nothing (lr
below 1e-5) or diverge, and the sampler needs finished trials before it draws better. So a
new study first tries what a Keras user would try by hand - Adam at Keras' default rate,
SGD with momentum 0.9, RMSprop at its default - clipped into the study's space; the
sampler keeps the whole space and learns from these trials as from its own.
"""

from __future__ import annotations

from typing import Any

from lrsearch.lr._catalogue import SCHEDULES
from lrsearch.lr._space import Space

#: (optimizer, its parameters) a study starts from, in order: Keras' default learning rates
#: of Adam and RMSprop, and SGD at 0.01 with momentum 0.9 (the seed's best SGD).
STARTS: tuple[tuple[str, dict[str, float]], ...] = (
    ("adam", {"lr": 1e-3}),
    ("sgd", {"lr": 1e-2, "momentum": 0.9}),
    ("rmsprop", {"lr": 1e-3}),
)
#: What a 1cycle schedule's peak is to a constant learning rate that trains alike.
ONE_CYCLE_PEAK = 10.0


def start_params(space: Space, starts: tuple[tuple[str, dict[str, float]], ...] = STARTS) -> list[dict[str, Any]]:
    """The parameters, by Optuna name, of the trials a new study of `space` starts from
    (`starts` whose optimizer the space holds, with its constant schedule if it has one):
    only what the space samples, clipped into its ranges; what they leave out (another
    schedule's parameters, the model's own) the sampler draws."""
    schedule = "constant" if "constant" in space.schedules else space.schedules[0]
    rate = SCHEDULES[schedule].lr
    chosen = []
    for optimizer, values in starts:
        if optimizer not in space.optimizers:
            continue
        params: dict[str, Any] = {}
        if len(space.optimizers) > 1:
            params["optimizer"] = optimizer
        if len(space.schedules) > 1:
            params["schedule"] = schedule
        scale = ONE_CYCLE_PEAK if schedule == "one_cycle" else 1.0
        for name, value in ((rate.name, values["lr"] * scale), *((n, v) for n, v in values.items() if n != "lr")):
            low, high = getattr(space, name)
            if low < high:
                params[name] = min(max(value, low), high)
        chosen.append(params)
    return chosen
