"""What a study's model is, as the study records it, so that a resumed run can tell
that `build_model` now makes another model than the study's trials trained."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import keras


def describe(model: keras.Model) -> dict[str, Any]:
    """The built `model`'s layers in short (``Dense(8)``...), its parameter count and a
    digest of its config and variable shapes (layer names left out: they count up)."""
    try:
        config = _without_names(model.get_config())
    except NotImplementedError:  # a subclassed model without get_config
        config = None
    shapes = [list(v.shape) for v in model.variables]
    text = json.dumps([type(model).__qualname__, config, shapes], sort_keys=True, default=str)
    return {"layers": [_layer(layer) for layer in model.layers], "params": int(model.count_params()),
            "digest": hashlib.sha256(text.encode()).hexdigest()[:16]}


def difference(before: dict[str, Any], now: dict[str, Any]) -> str | None:
    """How the model `now` differs from `before`, in words; None if it does not."""
    if before.get("digest") == now.get("digest"):
        return None
    if before.get("layers") != now.get("layers"):
        return f"layers {' '.join(before.get('layers', []))} -> {' '.join(now.get('layers', []))}"
    if before.get("params") != now.get("params"):
        return f"parameters {before.get('params')} -> {now.get('params')}"
    return "the same layers, configured otherwise"


def _layer(layer: keras.layers.Layer) -> str:
    size = next((getattr(layer, name) for name in ("units", "filters", "rate") if hasattr(layer, name)), None)
    return f"{type(layer).__name__}({size})" if isinstance(size, (int, float)) else type(layer).__name__


def _without_names(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_names(v) for k, v in value.items() if k != "name"}
    if isinstance(value, (list, tuple)):
        return [_without_names(v) for v in value]
    return value
