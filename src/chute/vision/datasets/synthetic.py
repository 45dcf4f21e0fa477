"""Generated stand-ins for the MNIST family: real IDX files, made-up pictures.

Used by ``chute demo`` (no network), the tests and the benchmarks. The images are crude
silhouettes of Fashion-MNIST's ten classes (a T-shirt, trousers, a dress, a bag, ...), shifted
and shaded at random, so a grid of them looks like something.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..idx import write_idx

__all__ = ["fashion_like_images", "write_mnist_raw"]

_SIDE = 28
_SHIFT = 2


def _templates() -> np.ndarray:
    """Ten 28x28 float masks in [0, 1], one per Fashion-MNIST class."""
    y, x = np.mgrid[0:_SIDE, 0:_SIDE].astype(np.float32)
    cx = (_SIDE - 1) / 2

    def box(y0: float, y1: float, x0: float, x1: float) -> np.ndarray:
        return (y >= y0) & (y <= y1) & (x >= x0) & (x <= x1)

    body = box(6, 25, 8, 19)
    long_sleeves = (
        (y >= 6) & (y <= 22) & (np.abs(x - cx) <= 10 + (y - 6) * 0.15) & ~box(9, 25, 6, 21)
    )
    masks = [
        body | box(6, 11, 3, 24),  # T-shirt/top: body and short sleeves
        box(3, 8, 8, 19) | box(8, 26, 8, 12) | box(8, 26, 15, 19),  # Trouser: two legs
        body | long_sleeves,  # Pullover
        (y >= 3) & (y <= 26) & (np.abs(x - cx) <= 3 + (y - 3) * 0.4),  # Dress: widening
        (body | long_sleeves) & ~box(10, 25, 13, 14),  # Coat: open front
        box(21, 23, 2, 25) | (box(12, 21, 4, 23) & ((x.astype(int) // 3) % 2 == 0)),  # Sandal
        (body | long_sleeves) & ~((y <= 12) & (np.abs(x - cx) <= 12 - y)),  # Shirt: V collar
        (y >= 14 + np.clip(12 - x, 0, 12) * 0.5) & (y <= 23) & (x >= 2) & (x <= 25),  # Sneaker
        box(10, 24, 5, 22)
        | ((np.hypot(y - 10, x - cx) <= 6) & (np.hypot(y - 10, x - cx) >= 4) & (y <= 10)),  # Bag
        box(4, 23, 12, 19) | box(17, 23, 4, 19),  # Ankle boot: an L
    ]
    return np.stack([m.astype(np.float32) for m in masks])


def fashion_like_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` generated 28x28 uint8 images and their int labels (Fashion-MNIST's classes).

    Example:
        >>> images, labels = fashion_like_images(4, seed=1)
        >>> images.shape, images.dtype.name, labels.dtype.name
        ((4, 28, 28), 'uint8', 'uint8')
    """
    gen = np.random.default_rng(seed)
    base = _templates()
    shifts = 2 * _SHIFT + 1
    padded = np.pad(base, ((0, 0), (_SHIFT, _SHIFT), (_SHIFT, _SHIFT)))
    shifted = np.empty((10, shifts, shifts, _SIDE, _SIDE), np.float32)
    for dy in range(shifts):
        for dx in range(shifts):
            shifted[:, dy, dx] = padded[:, dy : dy + _SIDE, dx : dx + _SIDE]
    labels = gen.integers(0, 10, n).astype(np.uint8)
    sy = gen.integers(0, shifts, n)
    sx = gen.integers(0, shifts, n)
    images = np.empty((n, _SIDE, _SIDE), np.uint8)
    for start in range(0, n, 8192):
        stop = min(n, start + 8192)
        masks = shifted[labels[start:stop], sy[start:stop], sx[start:stop]]
        shade = gen.uniform(120, 255, (stop - start, 1, 1)).astype(np.float32)
        noise = gen.normal(0, 12, masks.shape).astype(np.float32)
        images[start:stop] = np.clip(masks * shade + noise * masks, 0, 255).astype(np.uint8)
    return images, labels


def write_mnist_raw(
    root: str | os.PathLike[str],
    name: str = "FashionMNIST",
    *,
    train_size: int = 60000,
    test_size: int = 10000,
    seed: int = 0,
    gz: bool = True,
) -> Path:
    """Write a generated dataset in the MNIST family's layout: ``root/name/raw/*-ubyte[.gz]``.

    Returns:
        the raw folder.

    Example:
        >>> import tempfile
        >>> raw = write_mnist_raw(tempfile.mkdtemp(), train_size=10, test_size=5)
        >>> sorted(p.name for p in raw.iterdir())[0]
        't10k-images-idx3-ubyte.gz'
    """
    raw = Path(root) / name / "raw"
    suffix = ".gz" if gz else ""
    for split, size, offset in (("train", train_size, 0), ("t10k", test_size, 1)):
        images, labels = fashion_like_images(size, seed=seed * 2 + offset)
        write_idx(raw / f"{split}-images-idx3-ubyte{suffix}", images, compresslevel=1)
        write_idx(raw / f"{split}-labels-idx1-ubyte{suffix}", labels, compresslevel=1)
    return raw
