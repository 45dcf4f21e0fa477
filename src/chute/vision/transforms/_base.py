"""Composition, user functions, and the batch protocol of transforms.

NOTE [ Batch transforms ]
A transform is a callable on one sample. A transform that can also work on a stacked batch
has a method ``batch(x, rngs)``: ``x`` has a leading sample axis N in the per-sample layout that
``__call__`` takes, and ``rngs`` holds one generator per sample (from
:func:`chute.rng.streams`). A random transform draws sample k's parameters from ``rngs[k]`` in
exactly the order ``__call__`` draws them from :func:`chute.rng.current`, so a sample gets the
same result alone or in a batch. :class:`Compose` has ``batch`` only when all its members do;
:func:`is_batchable` is the test a dataset uses to choose the batch path.

Some batch forms only loop over the samples (``Resize``, ``RandomResizedCrop``,
``ColorJitter``: each sample has its own output computation); they say so with the class
attribute ``per_sample_batch = True``. A dataset that decodes files one by one runs such
transforms at the start of a chain per sample, on the decoded image, and the rest batched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...errors import ChuteTypeError

__all__ = ["Compose", "Lambda", "is_batchable", "apply_batch"]


def is_batchable(transform: Any) -> bool:
    """Whether ``transform`` (None counts) can transform a stacked batch with ``batch``.

    Example:
        >>> from chute.vision.transforms import Compose, ToTensor, Lambda
        >>> is_batchable(Compose([ToTensor()])), is_batchable(Lambda(lambda x: x))
        (True, False)
    """
    return transform is None or callable(getattr(transform, "batch", None))


def apply_batch(transform: Any, x: Any, rngs: Sequence[np.random.Generator]) -> Any:
    """Apply a batchable transform (or None) to a stacked batch."""
    if transform is None:
        return x
    return transform.batch(x, list(rngs))


class Compose:
    """Apply several transforms one after the other.

    Args:
        transforms: the transforms, applied in order.

    Example:
        >>> from chute.vision.transforms import Compose, ToTensor
        >>> print(Compose([ToTensor()]))
        Compose(
            ToTensor()
        )
    """

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, img: Any) -> Any:
        for t in self.transforms:
            img = t(img)
        return img

    @property
    def batch(self) -> Callable[[Any, Sequence[np.random.Generator]], Any]:
        """The batch form; present only when every member has one (else AttributeError)."""
        for t in self.transforms:
            if not is_batchable(t):
                raise AttributeError(f"Compose has no batch form because its member {t!r} has none")
        return self._batch

    def _batch(self, x: Any, rngs: Sequence[np.random.Generator]) -> Any:
        for t in self.transforms:
            x = t.batch(x, rngs)  # type: ignore[attr-defined]
        return x

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        lines += [f"    {t}" for t in self.transforms]
        return "\n".join(lines) + "\n)"


class Lambda:
    """Apply a user function as a transform (it has no batch form).

    Args:
        lambd: the function, called with the sample.

    Example:
        >>> Lambda(lambda x: x + 1)(1)
        2
    """

    def __init__(self, lambd: Callable[[Any], Any]) -> None:
        if not callable(lambd):
            raise ChuteTypeError(f"Argument lambd should be callable, got {type(lambd).__name__!r}")
        self.lambd = lambd

    def __call__(self, img: Any) -> Any:
        return self.lambd(img)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
