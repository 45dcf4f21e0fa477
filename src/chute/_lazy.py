"""Lazy imports of the optional dependencies, each with an error naming the extra to install."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from .errors import MissingDependencyError

__all__ = ["require", "loaded"]

_EXTRA = {
    "torch": "torch",
    "jax": "jax",
    "jax.numpy": "jax",
    "PIL": "vision",
    "PIL.Image": "vision",
    "matplotlib": "viz",
    "matplotlib.pyplot": "viz",
    "tqdm": "progress",
    "fsspec": "remote",
    "s3fs": "remote",
    "aiohttp": "remote",
}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise an error that says which extra of chute provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRA.get(module, module)
        raise MissingDependencyError(
            f"{purpose} needs the optional package {module!r}, which is not installed; "
            f"install it with: pip install 'chute[{extra}]'"
        ) from exc


def loaded(module: str) -> ModuleType | None:
    """Return ``module`` if it is already imported (by the user), else None; never imports."""
    return sys.modules.get(module)
