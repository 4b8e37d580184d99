"""What every module here shares: the error for a private name that is gone, and the read of one."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from lrsearch.errors import InternalError

MISSING = object()


def unsupported(package: str, what: str) -> InternalError:
    """The error for a private `what` of `package` that this version of it lacks."""
    from lrsearch._version import __version__

    try:
        installed = metadata.version(package)
    except metadata.PackageNotFoundError:
        installed = "(not installed)"
    return InternalError(f"lrsearch {__version__} does not support {package} {installed}: {what} is gone. "
                         f"Install the {package} version lrsearch was tested with, or report this as a bug.")


def private_attribute(owner: Any, name: str, package: str) -> Any:
    """`owner`'s private attribute `name`, of `package`; `unsupported` where it is gone."""
    value = getattr(owner, name, MISSING)
    if value is MISSING:
        raise unsupported(package, f"{type(owner).__name__}.{name}")
    return value
