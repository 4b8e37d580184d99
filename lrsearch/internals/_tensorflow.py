"""TensorFlow's private API: its vectorizer."""

from __future__ import annotations

import importlib
import threading

from lrsearch.internals._guard import unsupported

_PFOR = "tensorflow.python.ops.parallel_for.pfor"
_bitcast_lock = threading.Lock()
_bitcast_vectorized = False


def vectorize_bitcast() -> None:
    """Give TensorFlow's vectorizer (`tf.vectorized_map`) the Bitcast op it lacks (Keras'
    `signbit`, which its losses use, bitcasts): a bitcast keeps the leading axis, so it
    maps lane-wise. Registered once, in TensorFlow's private converter registry (no public
    one exists); later calls do nothing."""
    global _bitcast_vectorized
    with _bitcast_lock:
        if _bitcast_vectorized:
            return
        try:
            pfor = importlib.import_module(_PFOR)
        except ImportError:
            raise unsupported("tensorflow", _PFOR) from None
        for name in ("RegisterPFor", "wrap"):
            if not hasattr(pfor, name):
                raise unsupported("tensorflow", f"{_PFOR}.{name}")
        import tensorflow as tf

        @pfor.RegisterPFor("Bitcast")
        def convert(pfor_input):
            return pfor.wrap(tf.bitcast(pfor_input.stacked_input(0), pfor_input.get_attr("type")), True)

        _bitcast_vectorized = True
