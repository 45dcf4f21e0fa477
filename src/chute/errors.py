"""Errors raised by chute.

Every class derives from :class:`ChuteError` *and* from the builtin exception a user of
``torch.utils.data`` would catch for the same mistake, so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "ChuteError",
    "ChuteValueError",
    "ChuteTypeError",
    "ChuteIndexError",
    "ChuteKeyError",
    "ChuteRuntimeError",
    "ChuteTimeoutError",
    "CollateError",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "ChecksumError",
    "DownloadError",
    "OutputPathError",
    "UnsafeArchiveError",
    "ImageDecodeError",
    "MissingDependencyError",
    "WorkerError",
    "WorkerDiedError",
]


class ChuteError(Exception):
    """Base class of every error chute raises on purpose."""


class ChuteValueError(ChuteError, ValueError):
    """An argument or a value has the right type but an unusable value."""


class ChuteTypeError(ChuteError, TypeError):
    """An argument or a sample has the wrong type."""


class ChuteIndexError(ChuteError, IndexError):
    """An index is out of range for a dataset or a sampler."""


class ChuteKeyError(ChuteError, KeyError):
    """A key (a column, a class name, a state field) is missing."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ChuteRuntimeError(ChuteError, RuntimeError):
    """Something went wrong while loading that is not the caller's argument."""


class ChuteTimeoutError(ChuteRuntimeError, TimeoutError):
    """A batch did not arrive within the loader's ``timeout``."""


class CollateError(ChuteError, TypeError, RuntimeError):
    """Samples that cannot be stacked into one batch (different shapes, types or keys).

    A TypeError for wrong types and a RuntimeError for wrong shapes in PyTorch; both here.
    """


class DatasetFormatError(ChuteError, ValueError):
    """A data file does not have the expected format (wrong magic, truncated, malformed)."""


class DatasetNotFoundError(ChuteRuntimeError):
    """A dataset's files are not in its folder (torchvision raises RuntimeError: so does this)."""


class ChecksumError(DatasetFormatError):
    """A file's size or checksum does not match the expected value."""


class DownloadError(ChuteError, OSError):
    """No mirror could deliver a file."""


class OutputPathError(ChuteError, OSError):
    """A file cannot be written where asked: its folder is missing, or a folder is in the way."""


class UnsafeArchiveError(ChuteError, ValueError):
    """An archive member would land outside the extraction folder."""


class ImageDecodeError(ChuteError, ValueError):
    """An image file is truncated, corrupt or of an unsupported kind."""


class MissingDependencyError(ChuteError, ImportError):
    """An optional dependency (an extra of chute) is not installed."""


class WorkerError(ChuteRuntimeError):
    """An exception raised inside a loader worker, re-raised in the main process."""


class WorkerDiedError(ChuteRuntimeError):
    """A loader worker exited unexpectedly (killed by a signal, segfault, ``os._exit``)."""
