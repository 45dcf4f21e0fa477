"""FakeData: random images that are the same every time for the same index."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...errors import ChuteValueError
from .vision import VisionDataset

__all__ = ["FakeData"]


class FakeData(VisionDataset):
    """Random uint8 images and labels, a function of ``index + random_offset`` only.

    As torchvision's ``FakeData``, image ``i`` and its label are the same in every call and
    every process; they are drawn from NumPy's generator seeded ``i + random_offset`` (image
    first, then label), so the values differ from torchvision's torch-seeded ones. Images are
    HxW uint8 arrays for one channel and HxWxC for more (``image_size`` is CxHxW).

    Args:
        size: number of samples.
        image_size: ``(C, H, W)``.
        num_classes: labels are in ``range(num_classes)``.
        transform: a callable on the image.
        target_transform: a callable on the label.
        random_offset: added to the index to seed each sample.

    Example:
        >>> ds = FakeData(size=4, image_size=(3, 8, 8))
        >>> img, label = ds[2]
        >>> img.shape, bool((img == ds[2][0]).all())
        ((8, 8, 3), True)
    """

    accepts_index_arrays = True  # __getitems__ takes an int64 array (see chute.Dataset)
    images_hwc = True  # H x W x C images (NOTE [ Image layouts ])
    safe_to_fetch_before_fork = True  # no handle kept between fetches (see chute.Dataset)

    def __init__(
        self,
        size: int = 1000,
        image_size: Sequence[int] = (3, 224, 224),
        num_classes: int = 10,
        transform: Callable[..., Any] | None = None,
        target_transform: Callable[..., Any] | None = None,
        random_offset: int = 0,
    ) -> None:
        super().__init__(None, transform=transform, target_transform=target_transform)
        if size < 0 or num_classes < 1 or len(image_size) != 3:
            raise ChuteValueError(
                f"FakeData needs size >= 0, num_classes >= 1 and image_size (C, H, W); got "
                f"size={size}, num_classes={num_classes}, image_size={tuple(image_size)}"
            )
        self.size = size
        self.num_classes = num_classes
        self.image_size = tuple(image_size)
        self.random_offset = random_offset

    def __len__(self) -> int:
        return self.size

    def _sample(self, index: int) -> tuple[np.ndarray, int]:
        gen = np.random.default_rng(index + self.random_offset)
        c, h, w = self.image_size
        img = gen.integers(0, 256, size=(h, w, c), dtype=np.uint8)
        target = int(gen.integers(0, self.num_classes))
        return (img[:, :, 0] if c == 1 else img), target

    def _gather(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        samples = [self._sample(self._check_index(i)) for i in idx]
        images = np.stack([s[0] for s in samples])
        targets = np.array([s[1] for s in samples], dtype=np.int64)
        return images, targets
