"""The shared base of chute's vision datasets: root, transforms, torchvision's ``repr``.

NOTE [ Batch-first vision datasets ]
Array-backed datasets (the MNIST family, CIFAR, FakeData) answer ``__getitems__(indices)``
with one NumPy gather. When ``transform`` and ``target_transform`` are each None or
batchable (they have a ``batch(x, rngs)`` method, see the transform protocol in
``chute.vision.transforms``), the gathered batch is transformed at once and returned as
:class:`~chute.StackedSamples` ``((images, labels), n)``; otherwise every sample is
transformed alone inside ``rng.sample_scope(i)``. Both paths give the same samples, because a
random transform draws sample ``i``'s parameters from sample ``i``'s own stream either way.
The streams are made lazily (:class:`LazyStreams`): deterministic transforms such as
``ToTensor`` never pay for them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

import numpy as np

from ... import rng
from ...dataset import Dataset, _as_index_array
from ...errors import ChuteIndexError, ChuteValueError
from ...stacked import StackedSamples
from ..transforms._image import known_layout

__all__ = ["VisionDataset", "StandardTransform", "LazyStreams", "is_batchable"]


class StandardTransform:
    """``transform`` applied to the input and ``target_transform`` to the target.

    Its ``repr`` is torchvision's, which :class:`VisionDataset` prints.
    """

    def __init__(
        self,
        transform: Callable[..., Any] | None = None,
        target_transform: Callable[..., Any] | None = None,
    ) -> None:
        self.transform = transform
        self.target_transform = target_transform

    def __call__(self, input: Any, target: Any) -> tuple[Any, Any]:
        if self.transform is not None:
            input = self.transform(input)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return input, target

    def __repr__(self) -> str:
        lines = [type(self).__name__]
        if self.transform is not None:
            lines += _indent_repr(self.transform, "Transform: ")
        if self.target_transform is not None:
            lines += _indent_repr(self.target_transform, "Target transform: ")
        return "\n".join(lines)


def _indent_repr(obj: Any, head: str) -> list[str]:
    first, *rest = repr(obj).splitlines() or [""]
    return [head + first] + [" " * len(head) + line for line in rest]


def is_batchable(transform: Any) -> bool:
    """True if ``transform`` is None or has a ``batch(x, rngs)`` method."""
    return transform is None or callable(getattr(transform, "batch", None))


class LazyStreams(Sequence[np.random.Generator]):
    """The per-sample random streams of a batch, each made on first use.

    Equal to ``rng.streams(indices)`` element by element, but costs nothing for transforms
    that draw no random numbers. Must be used inside the fetch that made it (it reads the
    epoch scope when an element is first asked for).
    """

    def __init__(self, indices: Sequence[int]) -> None:
        self._indices = indices
        self._made: dict[int, np.random.Generator] = {}

    def __len__(self) -> int:
        return len(self._indices)

    @overload
    def __getitem__(self, k: int) -> np.random.Generator: ...

    @overload
    def __getitem__(self, k: slice) -> list[np.random.Generator]: ...

    def __getitem__(self, k: int | slice) -> Any:
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(len(self)))]
        if k < 0:
            k += len(self)
        gen = self._made.get(k)
        if gen is None:
            gen = rng.streams([self._indices[k]])[0]
            self._made[k] = gen
        return gen

    def __iter__(self) -> Iterator[np.random.Generator]:
        return (self[k] for k in range(len(self)))


class VisionDataset(Dataset[tuple[Any, Any]]):
    """Base of the vision datasets: ``root``, ``transform``/``target_transform``, ``repr``.

    Subclasses that hold their samples in arrays implement :meth:`_gather` (images and
    targets of an index array, untransformed) and get ``__getitem__`` and the batch-first
    ``__getitems__`` of NOTE [ Batch-first vision datasets ] for free.

    Args:
        root: the dataset folder (``~`` is expanded for strings), or None.
        transforms: a callable on ``(input, target)``; exclusive with the two below.
        transform: a callable on the image.
        target_transform: a callable on the target.
    """

    _repr_indent = 4
    #: The layout of a 3-D image of this dataset (True: H x W x C), told to the transforms
    #: so that a tiny image (4 x 4 x 3) is not ambiguous (NOTE [ Image layouts ]).
    images_hwc: bool | None = None

    def __init__(
        self,
        root: str | os.PathLike[str] | None,
        transforms: Callable[..., Any] | None = None,
        transform: Callable[..., Any] | None = None,
        target_transform: Callable[..., Any] | None = None,
    ) -> None:
        if isinstance(root, str):
            root = os.path.expanduser(root)
        self.root = root
        has_separate = transform is not None or target_transform is not None
        if transforms is not None and has_separate:
            raise ChuteValueError(
                "Only transforms or transform/target_transform can be passed as argument"
            )
        self.transform = transform
        self.target_transform = target_transform
        if has_separate:
            transforms = StandardTransform(transform, target_transform)
        self.transforms = transforms

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def extra_repr(self) -> str:
        """Extra lines of the ``repr`` (e.g. ``Split: Train``)."""
        return ""

    def __repr__(self) -> str:
        body = [f"Number of datapoints: {len(self)}"]
        if self.root is not None:
            body.append(f"Root location: {self.root}")
        body += self.extra_repr().splitlines()
        if getattr(self, "transforms", None) is not None:
            body += [repr(self.transforms)]
        pad = " " * self._repr_indent
        return "\n".join([f"Dataset {type(self).__name__}"] + [pad + line for line in body])

    # -- array-backed datasets --------------------------------------------------------------

    def _gather(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Untransformed images and targets of the index array ``idx``.

        Must raise IndexError for an index out of range (NumPy's ``take`` does).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement _gather")

    def _layout(self, images: Any) -> contextlib.AbstractContextManager[None]:
        """The known layout of the gathered ``images`` (and their samples), if any."""
        if self.images_hwc is None or not isinstance(images, np.ndarray):
            return contextlib.nullcontext()
        return known_layout(images, self.images_hwc)

    def _check_index(self, index: Any) -> int:
        n = len(self)
        i = int(index)
        if not -n <= i < n:
            raise ChuteIndexError(
                f"index {i} is out of range for {type(self).__name__} of length {n}"
            )
        return i + n if i < 0 else i

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        """Return ``(image, target)``: a uint8 NumPy image (or transformed) and an int label."""
        i = self._check_index(index)
        images, targets = self._gather(np.array([i], dtype=np.int64))
        img: Any = images[0]
        target: Any = targets[0].item()
        if self.transform is not None:
            with self._layout(images):
                img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __getitems__(self, indices: Sequence[int]) -> Any:
        """Return a batch: one gather, transformed at once when the transforms allow it.

        See NOTE [ Batch-first vision datasets ].
        """
        if not (is_batchable(self.transform) and is_batchable(self.target_transform)):
            samples = []
            for i in indices:
                with rng.sample_scope(i):
                    samples.append(self[i])
            return samples
        idx = np.asarray(indices, dtype=np.intp)
        try:
            if idx.ndim != 1:
                raise IndexError
            images, targets = self._gather(idx)
        except IndexError:
            _as_index_array(indices, len(self))  # raises the error that names the index
            raise
        if self.transform is not None or self.target_transform is not None:
            streams = LazyStreams(indices)
            if self.transform is not None:
                with self._layout(images):
                    images = self.transform.batch(images, streams)  # type: ignore[attr-defined]
            if self.target_transform is not None:
                targets = self.target_transform.batch(targets, streams)  # type: ignore[attr-defined]
        return StackedSamples((images, targets), len(idx))
