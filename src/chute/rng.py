"""Per-sample random streams keyed by ``(seed, epoch, index)``.

NOTE [ Per-sample randomness ]
A random transform must give a sample the same augmentation whether the sample was fetched
alone or in a batch, in the main process or in any worker, with any ``num_workers``. So random
transforms never read global RNG state: they ask :func:`current` for the generator of the
sample being fetched. The loader opens an :func:`epoch_scope` (the loader's seed and the
epoch) around each fetch and a :func:`sample_scope` around each ``dataset[i]`` call; a dataset
that fetches a whole batch at once asks :func:`stream` for each index itself. Outside any
scope (``dataset[i]`` called by hand) :func:`current` returns a fresh, OS-seeded generator,
like torchvision's use of the global RNG.

Which index keys a sample: the index the loader hands the dataset, except that a ``Subset``
passes its base index through (it is a view: ``Subset(ds, idx)[k]`` is keyed as ``ds[idx[k]]``
is, whether the Subset, the base's ``__getitems__`` or ``__getitem__`` fetches it). With
``batch_size=None`` and a sampler that yields keys which are not integers (lists for bulk
loading, strings), the key reaches ``__getitem__`` unchanged and the stream is keyed by the
key's position in the epoch.

The scopes are :mod:`contextvars`, so thread workers each see their own.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["current", "epoch_scope", "sample_key", "sample_scope", "stream", "streams"]

_MASK64 = (1 << 64) - 1

_epoch: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "chute_epoch", default=None
)
# the sample's generator, or its key (seed, epoch, index) until current() first builds it
_sample: contextvars.ContextVar[np.random.Generator | tuple[int, int, int] | None] = (
    contextvars.ContextVar("chute_sample", default=None)
)


def stream(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Return the random stream of sample ``index`` in ``epoch`` for a loader seeded ``seed``.

    The same three numbers always give the same stream; different numbers give independent
    streams (Philox with the seed as key and ``(epoch, index)`` in the counter).

    Example:
        >>> a = stream(7, 0, 3).random()
        >>> a == stream(7, 0, 3).random()
        True
    """
    key = np.array([seed & _MASK64, (seed >> 64) & _MASK64], dtype=np.uint64)
    counter = np.array([0, 0, index & _MASK64, epoch & _MASK64], dtype=np.uint64)
    return np.random.Generator(np.random.Philox(key=key, counter=counter))


def streams(indices: Sequence[int]) -> list[np.random.Generator]:
    """Return the stream of each index under the current epoch scope (fresh ones outside)."""
    scope = _epoch.get()
    if scope is None:
        return [np.random.default_rng() for _ in indices]
    seed, epoch = scope
    return [stream(seed, epoch, int(i)) for i in indices]


def current() -> np.random.Generator:
    """Return the random stream of the sample being fetched now.

    Inside a loader this is ``stream(seed, epoch, index)``; outside, a fresh generator.
    """
    rng = _sample.get()
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, tuple):  # a sample_key scope: build the stream on first use
        rng = stream(*rng)
        _sample.set(rng)  # undone by the scope's reset
    return rng


@contextlib.contextmanager
def epoch_scope(seed: int, epoch: int) -> Iterator[None]:
    """Make ``(seed, epoch)`` the key of the per-sample streams opened inside."""
    token = _epoch.set((int(seed), int(epoch)))
    try:
        yield
    finally:
        _epoch.reset(token)


@contextlib.contextmanager
def sample_scope(index: int) -> Iterator[np.random.Generator | None]:
    """Make :func:`current` return the stream of sample ``index`` inside the block.

    Does nothing outside an :func:`epoch_scope` (then :func:`current` stays unseeded).
    """
    scope = _epoch.get()
    if scope is None:
        yield None
        return
    rng = stream(scope[0], scope[1], int(index))
    token = _sample.set(rng)
    try:
        yield rng
    finally:
        _sample.reset(token)


class sample_key:  # a context manager used like a function
    """Like :func:`sample_scope`, but the generator is built only if :func:`current` is
    called inside (a dataset that draws nothing pays nothing); yields nothing.
    """

    __slots__ = ("_index", "_token")

    def __init__(self, index: int) -> None:
        self._index = index
        self._token: contextvars.Token[Any] | None = None

    def __enter__(self) -> None:
        scope = _epoch.get()
        if scope is not None:
            self._token = _sample.set((scope[0], scope[1], int(self._index)))

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _sample.reset(self._token)
