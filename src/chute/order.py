"""One global order per epoch: a keyed bijection on ``[0, n)`` that never materialises.

NOTE [ Global order as a keyed bijection ]
A distributed epoch is one permutation of ``[0, n)``, a function of ``(seed, epoch)`` only.
Every rank must find its share of it, and an elastic resume must find "the rest of the epoch"
at any cursor, for ``n`` up to billions: so ``order[i]`` is computed, not looked up.

:class:`EpochOrder` is a Feistel network on ``k``-bit words (the smallest ``k >= 2`` with
``2**k >= n``), split into a high part of ``k - k // 2`` bits and a low part of ``k // 2``
bits. Each of the :data:`ROUNDS` rounds XORs one part with a keyed hash of the other, which
is invertible whatever the hash, so the network is a bijection on ``[0, 2**k)``. Positions
that land at or past ``n`` are walked again through the network (cycle-walking) until they
land inside; since ``2**k < 2 * n`` (for n > 2) a walk takes fewer than two passes on average,
and the walk of a point in ``[0, n)`` always ends inside ``[0, n)``, so the result is a
bijection on ``[0, n)``. The round keys come from ``numpy.random.SeedSequence`` of
``(seed, epoch)``; the round hash is the SplitMix64 finaliser. Arrays of positions are mapped
with vectorised NumPy, one pass per walk step over the points still outside.
"""

from __future__ import annotations

from typing import Any, overload

import numpy as np

from .errors import ChuteIndexError, ChuteTypeError, ChuteValueError

__all__ = ["EpochOrder", "ROUNDS"]

ROUNDS = 8
_MASK64 = (1 << 64) - 1
_TAG = 0x0D15_7A11  # separates these keys from every other use of the same seed


def _mix(x: np.ndarray, key: np.uint64) -> np.ndarray:
    """The SplitMix64 finaliser of ``x + key``: a keyed hash of uint64 words (wraps mod 2**64)."""
    z = x + key
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class EpochOrder:
    """The order of one epoch: a keyed permutation of ``[0, n)`` for ``(seed, epoch)``.

    ``order[i]`` is the sample at position ``i`` of the epoch, computed in O(1); an int64
    array or a slice of positions is mapped at once, without building the permutation.
    With ``shuffle=False`` the order is ``0, 1, ..., n - 1``. See
    NOTE [ Global order as a keyed bijection ].

    Args:
        n: the number of samples (or shards).
        seed: the seed, the same on every rank.
        epoch: the epoch; each epoch has its own order.
        shuffle: False gives the identity order.

    Example:
        >>> order = EpochOrder(10, seed=0, epoch=0)
        >>> sorted(order[:]) == list(range(10))
        True
        >>> int(order[3]) == int(order[np.array([3])][0])
        True
        >>> EpochOrder(4, seed=0, epoch=0, shuffle=False)[:].tolist()
        [0, 1, 2, 3]
    """

    __slots__ = ("_hi_bits", "_keys", "_lo_bits", "epoch", "n", "seed", "shuffle")

    def __init__(self, n: int, seed: int, epoch: int, shuffle: bool = True) -> None:
        for name, value in (("n", n), ("seed", seed), ("epoch", epoch)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ChuteTypeError(f"{name} must be an int, got {value!r}")
        if n < 0 or n >= 2**62:
            raise ChuteValueError(f"n must be in [0, 2**62), got n={n}")
        self.n = int(n)
        self.seed = int(seed)
        self.epoch = int(epoch)
        self.shuffle = bool(shuffle)
        bits = max(2, (self.n - 1).bit_length())
        self._lo_bits = bits // 2
        self._hi_bits = bits - self._lo_bits
        words = [self.seed & _MASK64, (self.seed >> 64) & _MASK64, self.epoch & _MASK64, _TAG]
        state = np.random.SeedSequence(words).generate_state(ROUNDS, np.uint64)
        self._keys = tuple(np.uint64(k) for k in state)

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return (
            f"EpochOrder(n={self.n}, seed={self.seed}, epoch={self.epoch}, shuffle={self.shuffle})"
        )

    @overload
    def __getitem__(self, pos: int) -> int: ...
    @overload
    def __getitem__(self, pos: slice | np.ndarray) -> np.ndarray: ...

    def __getitem__(self, pos: Any) -> Any:
        if isinstance(pos, slice):
            return self.at(np.arange(*pos.indices(self.n), dtype=np.int64))
        if isinstance(pos, (int, np.integer)) and not isinstance(pos, bool):
            p = int(pos)
            if not -self.n <= p < self.n:
                raise ChuteIndexError(f"position {p} is out of range for an order of {self.n}")
            return int(self.at(np.array([p % self.n], dtype=np.int64))[0])
        arr = np.asarray(pos)
        if arr.dtype.kind not in "iu":
            raise ChuteTypeError(
                f"positions must be an int, a slice or an integer array, got {type(pos).__name__}"
            )
        flat = arr.astype(np.int64).reshape(-1)
        if flat.size and (flat.min() < -self.n or flat.max() >= self.n):
            bad = int(flat[(flat < -self.n) | (flat >= self.n)][0])
            raise ChuteIndexError(f"position {bad} is out of range for an order of {self.n}")
        return self.at(flat % max(self.n, 1)).reshape(arr.shape)

    def at(self, positions: np.ndarray) -> np.ndarray:
        """Map an int64 array of positions, all in ``[0, n)``, to samples (no checks)."""
        if not self.shuffle:
            return positions.astype(np.int64, copy=True)
        with np.errstate(over="ignore"):
            out = self._network(positions.astype(np.uint64))
            outside = np.flatnonzero(out >= np.uint64(self.n))
            while outside.size:  # cycle-walking: a few points, fewer each pass
                walked = self._network(out[outside])
                out[outside] = walked
                outside = outside[walked >= np.uint64(self.n)]
        return out.astype(np.int64)

    def _network(self, x: np.ndarray) -> np.ndarray:
        lo_bits = np.uint64(self._lo_bits)
        lo_mask = np.uint64((1 << self._lo_bits) - 1)
        hi_mask = np.uint64((1 << self._hi_bits) - 1)
        hi = x >> lo_bits
        lo = x & lo_mask
        for r, key in enumerate(self._keys):
            if r % 2 == 0:
                hi = hi ^ (_mix(lo, key) & hi_mask)
            else:
                lo = lo ^ (_mix(hi, key) & lo_mask)
        return (hi << lo_bits) | lo
