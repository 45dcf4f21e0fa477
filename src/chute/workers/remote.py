"""Exceptions raised in a worker, carried to the main process and raised there again."""

from __future__ import annotations

import pickle
import traceback
from dataclasses import dataclass
from typing import Any

from ..errors import ChuteKeyError, WorkerError

__all__ = ["RemoteError", "describe_indices", "rebuild"]


def describe_indices(index: Any) -> str:
    """Short text for the sample indices of one batch (all of them up to 32)."""
    if isinstance(index, (list, tuple)):
        items = list(index)
        if len(items) > 32:
            return f"indices {items[:32]} ... ({len(items)} in all)"
        return f"indices {items}"
    return f"index {index!r}"


def rebuild(exc_type: type[BaseException], msg: str) -> BaseException | None:
    """An exception of ``exc_type`` whose message is ``msg``, or None if it cannot be made.

    Only ``Exception`` subclasses are rebuilt; ``KeyError`` becomes :class:`ChuteKeyError`
    (a ``KeyError`` would show the message as a repr).
    """
    if not issubclass(exc_type, Exception):
        return None
    if issubclass(exc_type, KeyError) and exc_type in (KeyError, ChuteKeyError):
        return ChuteKeyError(msg)
    try:
        candidate = exc_type(msg)
    except Exception:
        return None
    return candidate if str(candidate) == msg else None


@dataclass
class RemoteError:
    """A picklable record of an exception raised in a worker.

    Attributes:
        exc_type: the exception's class (None when it cannot be pickled by reference).
        type_name: the class's qualified name.
        text: ``str(exception)``.
        tb: the worker's formatted traceback.
        worker_id: the worker that raised it.
        pid: the worker's process id.
        where: what the worker was doing, e.g. ``"fetching indices [4, 5]"``.
        original: the pickled exception, or None if it cannot be pickled.
    """

    exc_type: type[BaseException] | None
    type_name: str
    text: str
    tb: str
    worker_id: int
    pid: int
    where: str
    original: bytes | None

    @classmethod
    def capture(cls, exc: BaseException, worker_id: int, pid: int, where: str) -> RemoteError:
        """Record ``exc`` (the exception being handled) for sending to the main process."""
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        exc_type: type[BaseException] | None = type(exc)
        try:
            pickle.dumps(exc_type)
        except Exception:
            exc_type = None
        original: bytes | None
        try:
            original = pickle.dumps(exc)
            pickle.loads(original)
        except Exception:
            original = None
        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        if type(exc).__module__ == "builtins":
            name = type(exc).__qualname__
        return cls(exc_type, name, str(exc), tb, worker_id, pid, where, original)

    def message(self) -> str:
        """The text of the error raised in the main process."""
        return (
            f"{self.type_name} in DataLoader worker {self.worker_id} (pid {self.pid}) while "
            f"{self.where}: {self.text}\n\nOriginal traceback in the worker:\n{self.tb}"
        )

    def to_exception(self) -> BaseException:
        """An exception of the original type where possible (else :class:`WorkerError`).

        Its message names the worker and the samples and carries the worker's traceback; the
        unpickled original exception, when it could be sent, is its ``worker_exception``.
        """
        msg = self.message()
        new = rebuild(self.exc_type, msg) if self.exc_type is not None else None
        if new is None:
            new = WorkerError(msg)
        original = None
        if self.original is not None:
            try:
                original = pickle.loads(self.original)
            except Exception:
                original = None
        new.worker_exception = original  # type: ignore[attr-defined]
        return new
