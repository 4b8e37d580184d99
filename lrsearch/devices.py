"""Which devices the workers of one machine run on, and the one way lrsearch imports
TensorFlow. No TensorFlow import at module level: the parent process plans, each worker
applies its slot before it imports TensorFlow."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys

from lrsearch.errors import UsageError

#: One folder per GPU that the NVIDIA driver sees.
DRIVER_GPUS = "/proc/driver/nvidia/gpus"
#: How CUDA_VISIBLE_DEVICES names a GPU besides its index: by UUID, or a MIG instance.
UUID_PREFIXES = ("GPU-", "MIG-")
#: The environment that keeps native logging quiet: TensorFlow's (C++ INFO, WARNING and
#: ERROR lines: oneDNN, CPU features, cuInit, TF-TRT) and gRPC's (the storage proxy's: a
#: port taken, a peer gone, which lrsearch says in its own words); it must be set before
#: TensorFlow or gRPC is imported, in each process.
QUIET_NATIVE_LOGS = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "NONE"}


@dataclasses.dataclass(frozen=True)
class Slot:
    """One worker's place: a GPU as CUDA_VISIBLE_DEVICES names it (an index like "0" or a
    UUID; None for CPU) and its CPU thread budget."""

    gpu: str | None
    threads: int

    def describe(self) -> str:
        if self.gpu is None:
            return f"CPU ({self.threads} thread{'s' * (self.threads > 1)})"
        return f"GPU:{self.gpu if len(self.gpu) <= 12 else self.gpu[:12] + '...'}"

    def environment(self) -> dict[str, str]:
        """Variables to set before TensorFlow is imported."""
        return {
            "CUDA_VISIBLE_DEVICES": "" if self.gpu is None else self.gpu,
            **{name: os.environ.get(name, value) for name, value in QUIET_NATIVE_LOGS.items()},
            "OMP_NUM_THREADS": str(self.threads),
        }


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """GPUs this process may use, as CUDA_VISIBLE_DEVICES names them: its entries if it is
    set (indices or UUIDs, up to the first entry CUDA would not accept, as CUDA reads it),
    else nvidia-smi's indices, else the NVIDIA driver's count of GPUs."""
    declared = os.environ.get("CUDA_VISIBLE_DEVICES")
    if declared is not None:
        gpus = []
        for entry in (part.strip() for part in declared.split(",")):
            if not _names_a_gpu(entry):
                break
            gpus.append(entry)
        return gpus
    if shutil.which("nvidia-smi") is None:
        return [str(i) for i in range(len(os.listdir(DRIVER_GPUS)))] if os.path.isdir(DRIVER_GPUS) else []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.split() if line.strip().isdigit()]


def parse_gpus(spec: str | None) -> list[str]:
    """--gpus: None or "all" (every visible GPU), "none", or visible GPUs like "0,1" (or
    their UUIDs, as CUDA_VISIBLE_DEVICES names them)."""
    if spec is None or spec == "all":
        return visible_gpus()
    if spec == "none":
        return []
    gpus = [part.strip() for part in spec.split(",") if part.strip()]
    if not gpus or not all(map(_names_a_gpu, gpus)) or len(set(gpus)) != len(gpus):
        raise UsageError(f"--gpus takes 'all', 'none' or distinct indices like '0,1' (or GPU UUIDs), "
                         f"but got {spec!r}.")
    visible = visible_gpus()
    missing = [gpu for gpu in gpus if gpu not in visible]
    if missing:
        raise UsageError(f"--gpus {spec}: GPU {','.join(missing)} is not visible here "
                         f"(visible: {','.join(visible) or 'none'}).")
    return gpus


def _names_a_gpu(entry: str) -> bool:
    return entry.isdigit() or (entry.startswith(UUID_PREFIXES) and len(entry) > 4)


def plan(workers: int | None, gpus: list[str], per_gpu: int = 1) -> list[Slot]:
    """One Slot per worker. With GPUs: `per_gpu` workers on each (or `workers` spread
    round-robin). Without: one single-threaded worker per core by default, which measured
    fastest for small models (benchmarks/workers.py)."""
    if per_gpu < 1:
        raise UsageError(f"--per-gpu must be >= 1, but got {per_gpu}.")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be >= 1, but got {workers}.")
    cores = cpu_count()
    if gpus:
        count = workers or len(gpus) * per_gpu
        threads = max(1, cores // count)
        return [Slot(gpus[i % len(gpus)], threads) for i in range(count)]
    count = workers or cores
    return [Slot(None, max(1, cores // count)) for _ in range(count)]


def configure_tensorflow(slot: Slot) -> str:
    """Apply `slot` inside a fresh worker (TensorFlow not yet used); returns the device
    description recorded with each trial."""
    tf = import_tensorflow()
    tf.config.threading.set_intra_op_parallelism_threads(slot.threads)
    tf.config.threading.set_inter_op_parallelism_threads(slot.threads)
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    if slot.gpu is not None:
        details = tf.config.list_physical_devices("GPU")
        if not details:
            return f"CPU (GPU {slot.gpu} not usable by TensorFlow)"
        name = tf.config.experimental.get_device_details(details[0]).get("device_name", "")
        return f"GPU:{slot.gpu} {name}".strip()
    return slot.describe()


def quiet_native_logs() -> None:
    """Set `QUIET_NATIVE_LOGS` where the environment does not set it already, for this
    process and the ones it starts after; unless LRSEARCH_VERBOSE is set."""
    if not os.environ.get("LRSEARCH_VERBOSE"):
        for name, value in QUIET_NATIVE_LOGS.items():
            os.environ.setdefault(name, value)


def import_tensorflow():
    """`import tensorflow`, quietly: with `quiet_native_logs`, with the lines TensorFlow's
    native libraries write straight to stderr while they load (cudart_stub, "All log
    messages before absl::InitializeLog()", which ignore TF_CPP_MIN_LOG_LEVEL) hidden,
    and TensorFlow's Python logger at ERROR (no retracing warnings), unless
    LRSEARCH_VERBOSE is set. Every lrsearch module that needs TensorFlow, or Keras on it,
    calls this first. Import errors still raise as Python exceptions."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    quiet_native_logs()
    if os.environ.get("LRSEARCH_VERBOSE"):
        import tensorflow

        return tensorflow
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    tensorflow.get_logger().setLevel("ERROR")
    return tensorflow
