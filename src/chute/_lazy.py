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
    """Return ``module`` if it is imported (by the user), else None; never starts an import.

    A module that another thread is still importing (``torch`` takes seconds) is already in
    ``sys.modules``, half made; then this waits for that import to finish (Python's
    per-module import lock) instead of handing out a module without its attributes. In the
    importing thread itself (a circular import) the module is returned as it is.
    """
    mod = sys.modules.get(module)
    if mod is None:
        return None
    if getattr(getattr(mod, "__spec__", None), "_initializing", False):
        return importlib.import_module(module)
    return mod
