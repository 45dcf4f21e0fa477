"""Exceptions carried from a worker: same type where possible, else WorkerError."""

from __future__ import annotations

import pickle

import pytest

from chute.errors import ChuteKeyError, WorkerError
from chute.workers.remote import RemoteError, describe_indices


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("no pickling")


def capture(exc: BaseException) -> RemoteError:
    try:
        raise exc
    except BaseException as caught:
        err = RemoteError.capture(caught, worker_id=3, pid=4242, where="fetching indices [1, 2]")
    return pickle.loads(pickle.dumps(err))  # it crosses a pipe


def test_same_type_with_worker_indices_and_traceback():
    exc = capture(IndexError("index 9 is out of range")).to_exception()
    assert type(exc) is IndexError
    assert str(exc).startswith(
        "IndexError in DataLoader worker 3 (pid 4242) while fetching indices [1, 2]: "
        "index 9 is out of range\n\nOriginal traceback in the worker:\nTraceback"
    )
    assert isinstance(exc.worker_exception, IndexError)


def test_key_error_keeps_a_readable_message():
    exc = capture(KeyError("label")).to_exception()
    assert isinstance(exc, KeyError) and isinstance(exc, ChuteKeyError)
    assert "\n\nOriginal traceback" in str(exc)  # not a repr with escaped newlines


def test_unpicklable_or_odd_exceptions_fall_back_to_worker_error():
    err = capture(Unpicklable("odd"))
    exc = err.to_exception()
    assert type(exc) is Unpicklable or isinstance(exc, WorkerError)
    assert exc.worker_exception is None  # could not be sent
    sysexit = capture(SystemExit(3)).to_exception()
    assert isinstance(sysexit, WorkerError) and "SystemExit in DataLoader worker 3" in str(sysexit)


def test_describe_indices_is_short():
    assert describe_indices([1, 2]) == "indices [1, 2]"
    assert describe_indices(7) == "index 7"
    assert describe_indices(list(range(100))).endswith("... (100 in all)")


@pytest.mark.parametrize("exc", [ValueError("v"), TypeError("t"), RuntimeError("r")])
def test_builtin_types_round_trip(exc):
    assert type(capture(exc).to_exception()) is type(exc)
