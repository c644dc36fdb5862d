"""The error family every layer raises; the CLI turns them into one red line and exit code 1."""
from __future__ import annotations


class CompressError(Exception):
    """Base class: the message says what was wrong, what is valid and how to fix it."""


class UserInputError(CompressError, ValueError):
    """A flag, config value, file or name given by the user is not valid."""


class DataError(UserInputError):
    """A data set on disk cannot be used as it is (empty class, mixed bands, bad split...)."""


class CheckpointError(UserInputError):
    """A checkpoint is missing, corrupt, not ours, or does not match the model/classes."""


class MissingDependencyError(CompressError, ImportError):
    """An optional dependency (tensorrt, matplotlib, ...) is needed for this feature."""


class DeviceError(CompressError, RuntimeError):
    """The requested device/backend is not available on this machine."""


class StorageError(CompressError, OSError):
    """The disk is full (or not writable): what was already written is intact."""


class ExportError(CompressError, RuntimeError):
    """Export, simplification, quantisation or parity failed."""


def require(module: str, feature: str, install: str | None = None):
    """Import an optional module lazily or raise MissingDependencyError with an install hint."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # noqa: F841 - the cause is chained below
        hint = install or f"pip install {module.split('.')[0]}"
        raise MissingDependencyError(
            f"{feature} needs the Python package '{module}', which is not importable here; "
            f"install it with `{hint}`."
        ) from exc
