"""A batch of samples that is already stacked.

Batch-first datasets (``TensorDataset``, the MNIST family, CIFAR) gather a whole batch with one
fancy index. They return :class:`StackedSamples` from ``__getitems__``: to a custom
``collate_fn`` it is an ordinary sequence of samples, and :func:`chute.default_collate`
recognises it and returns the stacked arrays without unstacking and restacking them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = ["StackedSamples", "map_leaves"]


def map_leaves(fn: Any, tree: Any) -> Any:
    """Apply ``fn`` to every leaf of a structure of tuples, lists, dicts and namedtuples."""
    if isinstance(tree, tuple):
        items = [map_leaves(fn, x) for x in tree]
        return type(tree)(*items) if hasattr(tree, "_fields") else tuple(items)
    if isinstance(tree, list):
        return [map_leaves(fn, x) for x in tree]
    if isinstance(tree, Mapping):
        return {k: map_leaves(fn, v) for k, v in tree.items()}
    return fn(tree)


class StackedSamples(Sequence[Any]):
    """``n`` samples held as one sample-shaped structure whose leaves have a leading axis ``n``.

    Args:
        data: a sample-shaped structure (an array, or tuples/lists/dicts/namedtuples of
            arrays or tensors) whose every leaf has length ``n`` along its first axis.
        n: the number of samples.

    Example:
        >>> import numpy as np
        >>> s = StackedSamples((np.zeros((3, 2)), np.arange(3)), 3)
        >>> len(s), s[1][1]
        (3, np.int64(1))
    """

    __slots__ = ("data", "n")

    def __init__(self, data: Any, n: int) -> None:
        self.data = data
        self.n = int(n)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        if not -self.n <= i < self.n:
            raise IndexError(f"sample {i} is out of range for a batch of {self.n}")
        return map_leaves(lambda leaf: leaf[i], self.data)

    def __iter__(self) -> Iterator[Any]:
        for i in range(self.n):
            yield self[i]

    def __repr__(self) -> str:
        return f"StackedSamples(n={self.n})"
