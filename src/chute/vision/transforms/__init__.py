"""Image transforms with torchvision's names, arguments and ``repr``s.

Transforms take PIL images, NumPy arrays (HxW(xC) images, CxHxW tensors) and torch tensors.
Those that can transform a stacked batch at once have a ``batch(x, rngs)`` method (see NOTE
[ Batch transforms ] in ``_base.py``); random ones draw from the sample's own stream
(:func:`chute.rng.current`), never from global random state.

Example:
    >>> from chute.vision import transforms as T
    >>> print(T.Compose([T.ToTensor(), T.Normalize(mean=[0.5], std=[0.5])]))
    Compose(
        ToTensor()
        Normalize(mean=[0.5], std=[0.5])
    )
"""

from __future__ import annotations

from ._base import Compose, Lambda, apply_batch, is_batchable
from .color import ColorJitter
from .geometry import (
    CenterCrop,
    InterpolationMode,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomVerticalFlip,
    Resize,
)
from .tensor import Normalize, ToDtype, ToTensor

__all__ = [
    "Compose",
    "Lambda",
    "is_batchable",
    "apply_batch",
    "ToTensor",
    "Normalize",
    "ToDtype",
    "InterpolationMode",
    "Resize",
    "CenterCrop",
    "RandomCrop",
    "RandomResizedCrop",
    "RandomHorizontalFlip",
    "RandomVerticalFlip",
    "ColorJitter",
]
