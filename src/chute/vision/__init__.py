"""Vision: image datasets, transforms, image I/O and sample plots (the torchvision pieces).

Subpackages are imported on first use, so ``import chute.vision`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["datasets", "io", "plot", "transforms"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
