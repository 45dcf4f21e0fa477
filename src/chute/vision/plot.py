"""Looking at samples: a grid of a batch (``make_grid``/``save_image``) and the tutorial's figure.

``make_grid`` and ``save_image`` follow torchvision's semantics on NumPy arrays (torch tensors
are accepted and converted). ``plot_samples`` is the PyTorch tutorial's 3 x 3 figure of random
samples titled with their class names, in one call; it uses matplotlib's object API with the
Agg canvas, so it needs no display and does not touch pyplot's global state.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._lazy import loaded, require
from ..errors import ChuteKeyError, ChuteTypeError, ChuteValueError
from .io import check_writable, write_file
from .transforms._image import spatial_axes

__all__ = ["make_grid", "save_image", "plot_samples", "figure_format"]


def _numpy(x: Any) -> np.ndarray:
    torch = loaded("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()  # type: ignore[no-any-return]
    return np.asarray(x)
    return np.asarray(x)


def _normalize_range(img: np.ndarray, low: float, high: float) -> np.ndarray:
    img = np.clip(img, low, high)
    return (img - low) / max(high - low, 1e-5)


def make_grid(
    tensor: Any,
    nrow: int = 8,
    padding: int = 2,
    normalize: bool = False,
    value_range: tuple[float, float] | None = None,
    scale_each: bool = False,
    pad_value: float = 0.0,
) -> np.ndarray:
    """Tile a batch of C x H x W images into one C x H' x W' image (torchvision's rules).

    A 2-D input is one grey image; a 3-D input is one image (1 channel becomes 3); a 4-D
    input is a batch (1 channel becomes 3). With ``normalize`` the values are shifted and
    scaled to [0, 1] using ``value_range`` (or the batch's min and max; per image with
    ``scale_each``).

    Args:
        tensor: a N x C x H x W array/tensor, or a list of C x H x W images.
        nrow: images per row.
        padding: pixels between images and around the grid.
        normalize: rescale to [0, 1].
        value_range: the (min, max) used by ``normalize``.
        scale_each: normalise every image by its own range.
        pad_value: the value of the padding.

    Returns:
        A C x H' x W' NumPy array with the input's dtype (float32 when normalised).

    Example:
        >>> make_grid(np.zeros((5, 3, 4, 4), np.float32), nrow=4).shape
        (3, 14, 26)
    """
    if isinstance(tensor, (list, tuple)):
        arr = np.stack([_numpy(t) for t in tensor])
    else:
        arr = _numpy(tensor)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 3:
        if arr.shape[0] == 1:
            arr = np.concatenate([arr] * 3, axis=0)
        arr = arr[None]
    if arr.ndim != 4:
        raise ChuteValueError(
            f"make_grid expects a N x C x H x W batch or a C x H x W image, got shape {arr.shape}"
        )
    if arr.shape[1] == 1:
        arr = np.concatenate([arr] * 3, axis=1)
    if normalize:
        arr = arr.astype(np.float32)
        if value_range is not None and not (
            isinstance(value_range, tuple) and len(value_range) == 2
        ):
            raise ChuteTypeError(
                f"value_range has to be a tuple (min, max) if specified, got {value_range!r}"
            )
        if scale_each:
            arr = np.stack(
                [
                    _normalize_range(a, *(value_range or (float(a.min()), float(a.max()))))
                    for a in arr
                ]
            )
        else:
            arr = _normalize_range(arr, *(value_range or (float(arr.min()), float(arr.max()))))
    if arr.shape[0] == 1:
        return np.ascontiguousarray(arr[0])
    n, c, h, w = arr.shape
    xmaps = min(nrow, n)
    ymaps = math.ceil(n / xmaps)
    height, width = h + padding, w + padding
    grid = np.full((c, height * ymaps + padding, width * xmaps + padding), pad_value, arr.dtype)
    for k in range(n):
        y, x = divmod(k, xmaps)
        top, left = y * height + padding, x * width + padding
        grid[:, top : top + h, left : left + w] = arr[k]
    return grid


def _to_uint8_hwc(grid: np.ndarray) -> np.ndarray:
    if grid.dtype == np.uint8:
        out = grid
    else:
        out = np.clip(grid.astype(np.float32) * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out.transpose(1, 2, 0))


def save_image(
    tensor: Any, fp: str | os.PathLike[str], format: str | None = None, **kwargs: Any
) -> None:
    """Save an image or a batch (as :func:`make_grid`) to a file, atomically.

    Float values are taken as [0, 1] (scaled by 255 and rounded, as torchvision); uint8 values
    are written as they are. ``kwargs`` go to :func:`make_grid`.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "grid.png")
        >>> save_image(np.ones((4, 1, 8, 8), np.float32), path, nrow=2)
        >>> os.path.getsize(path) > 0
        True
    """
    Image = require("PIL.Image", "saving images")
    grid = make_grid(tensor, **kwargs)
    if grid.ndim == 2:
        grid = grid[None]
    hwc = _to_uint8_hwc(grid)
    img = Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc)
    check_writable(fp)
    buf = io.BytesIO()
    fmt = (format or os.path.splitext(os.fspath(fp))[1].lstrip(".") or "PNG").upper()
    fmt = {"JPG": "JPEG", "TIF": "TIFF"}.get(fmt, fmt)
    Image.init()
    if fmt not in Image.SAVE:
        raise ChuteValueError(
            f"cannot write {os.fspath(fp)}: Pillow writes no {fmt} files; use one of "
            f"{', '.join(sorted(Image.SAVE))}"
        )
    img.save(buf, format=fmt)
    write_file(fp, buf.getvalue())


def _displayable(img: Any) -> tuple[np.ndarray, bool]:
    """An H x W (grey) or H x W x C array for imshow, and whether it is grey."""
    torch = loaded("torch")
    tensor = torch is not None and isinstance(img, torch.Tensor)  # always C x H x W
    arr = _numpy(img)
    if arr.ndim == 3 and (tensor or spatial_axes(arr) == (-2, -1)):
        arr = arr.transpose(1, 2, 0)  # C x H x W -> H x W x C
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3):
        raise ChuteValueError(f"cannot show a sample of shape {arr.shape} as an image")
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.clip(arr, 0.0, 1.0)
    return arr, arr.ndim == 2


def figure_format(path: str | os.PathLike[str]) -> str:
    """The file format ``plot_samples`` writes to ``path``: the one its suffix names.

    No suffix means PNG. A suffix matplotlib cannot write, a missing folder or a folder in
    the way raise before anything is plotted.

    Example:
        >>> figure_format("grid.jpg")
        'jpg'
    """
    check_writable(path)
    suffix = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    if not suffix:
        return "png"
    backend = require("matplotlib.backends.backend_agg", "plotting samples")
    supported = sorted(backend.FigureCanvasAgg.get_supported_filetypes())
    if suffix not in supported:
        raise ChuteValueError(
            f"cannot write {os.fspath(path)}: matplotlib writes no '.{suffix}' files; use "
            f"one of {', '.join('.' + s for s in supported)}"
        )
    return suffix


def _title(labels_map: Any, key: Any, index: int) -> str:
    """The class name of label ``key`` (of sample ``index``) in ``labels_map``."""
    if isinstance(labels_map, Mapping):
        if key in labels_map:
            return str(labels_map[key])
        shown = ", ".join(map(repr, list(labels_map)[:10]))
        raise ChuteKeyError(
            f"label {key!r} of sample {index} is not in labels_map, whose keys are {shown}"
            f"{', ...' if len(labels_map) > 10 else ''}; pass a labels_map that names every label"
        )
    if isinstance(key, int) and 0 <= key < len(labels_map):
        return str(labels_map[key])
    raise ChuteKeyError(
        f"label {key!r} of sample {index} has no name: labels_map is a sequence of "
        f"{len(labels_map)} names (labels 0 to {len(labels_map) - 1}); pass a labels_map "
        f"that names every label"
    )


def plot_samples(
    dataset: Any,
    labels_map: Mapping[int, str] | Sequence[str] | None = None,
    cols: int = 3,
    rows: int = 3,
    seed: int | None = None,
    path: str | os.PathLike[str] | None = None,
    figsize: tuple[float, float] = (8.0, 8.0),
) -> Any:
    """The tutorial's figure: ``rows`` x ``cols`` random samples titled with their class names.

    Args:
        dataset: a map-style dataset of ``(image, label)`` samples.
        labels_map: label -> name (a dict or a list); default ``dataset.classes`` if present,
            else the label itself.
        cols: columns of the grid.
        rows: rows of the grid.
        seed: seed of the random choice of samples (None: a different choice each call).
        path: also save the figure here (atomically), in the format its suffix names
            (:func:`figure_format`; no suffix: PNG).
        figsize: the figure size in inches (at 100 dpi).

    Returns:
        The matplotlib ``Figure``.
    """
    figure_mod = require("matplotlib.figure", "plotting samples")
    require("matplotlib.backends.backend_agg", "plotting samples")
    for name, value in (("rows", rows), ("cols", cols)):
        if not isinstance(value, int) or value < 1:
            raise ChuteValueError(f"{name} must be a positive integer, got {value!r}")
    fmt = figure_format(path) if path is not None else None
    n = len(dataset)
    if n == 0:
        raise ChuteValueError(f"cannot plot samples of an empty dataset ({type(dataset).__name__})")
    if labels_map is None:
        labels_map = getattr(dataset, "classes", None)
    gen = np.random.default_rng(seed)
    fig = figure_mod.Figure(figsize=figsize, dpi=100)
    for k in range(cols * rows):
        index = int(gen.integers(n))
        img, label = dataset[index][:2]
        key = int(_numpy(label).item()) if not isinstance(label, str) else label
        title = str(key) if labels_map is None else _title(labels_map, key, index)
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.set_title(title)
        ax.axis("off")
        arr, grey = _displayable(img)
        ax.imshow(arr, cmap="gray" if grey else None)
    if path is not None:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt)
        write_file(path, buf.getvalue())
    return fig
