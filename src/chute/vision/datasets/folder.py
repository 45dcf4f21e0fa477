"""Image files on disk: class-per-folder trees (``ImageFolder``) and CSV-annotated folders.

``DatasetFolder``/``ImageFolder`` follow torchvision: ``root/<class>/**/<file>``, classes sorted
by name, files sorted within each class, torchvision's extension list, ``classes``,
``class_to_idx``, ``samples``, ``targets``, ``imgs`` and ``repr``. ``ImageCSVDataset`` is the
PyTorch tutorial's ``CustomImageDataset``: file names and labels from a CSV file, images read
with :func:`~chute.vision.io.read_image` (C x H x W uint8).

Differences from torchvision, on purpose:

* File names and labels live in NumPy arrays (:class:`PackedStrings`, int64), not lists of
  tuples, so forked workers do not copy them; ``samples``/``targets``/``imgs`` build the
  lists on access.
* ``ImageFolder``'s default loader returns an H x W x 3 uint8 NumPy array (RGB), not a PIL
  image; pass ``loader=pil_loader`` for PIL images.
"""

from __future__ import annotations

import array
import csv
import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ... import rng
from ...errors import ChuteKeyError, ChuteValueError, DatasetFormatError
from ...stacked import StackedSamples
from ..io import ImageReadMode, decode_image, read_image, to_uint8
from ..transforms import Compose, apply_batch, is_batchable
from ..transforms._image import known_layout, layout_hwc, layout_scope, remember_layout
from . import _reduced
from ._strings import PackedStrings
from .vision import VisionDataset

__all__ = [
    "IMG_EXTENSIONS",
    "DatasetFolder",
    "ImageFolder",
    "ImageCSVDataset",
    "default_loader",
    "pil_loader",
    "find_classes",
    "has_file_allowed_extension",
    "is_image_file",
    "make_dataset",
]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def has_file_allowed_extension(filename: str, extensions: str | tuple[str, ...]) -> bool:
    """Whether ``filename`` ends with one of ``extensions`` (case-insensitive)."""
    exts = extensions if isinstance(extensions, str) else tuple(extensions)
    return filename.lower().endswith(exts)


def is_image_file(filename: str) -> bool:
    """Whether ``filename`` has one of the image extensions of :data:`IMG_EXTENSIONS`."""
    return has_file_allowed_extension(filename, IMG_EXTENSIONS)


def find_classes(directory: str | os.PathLike[str]) -> tuple[list[str], dict[str, int]]:
    """The class folders of ``directory``, sorted, and their indices."""
    classes = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
    if not classes:
        raise FileNotFoundError(f"Couldn't find any class folder in {os.fspath(directory)}.")
    return classes, {name: i for i, name in enumerate(classes)}


def _ext_text(extensions: str | tuple[str, ...] | None) -> str:
    if extensions is None:
        return "(any accepted by is_valid_file)"
    return extensions if isinstance(extensions, str) else ", ".join(extensions)


def _scan(
    directory: str,
    class_to_idx: dict[str, int],
    extensions: str | tuple[str, ...] | None,
    is_valid_file: Callable[[str], bool] | None,
    allow_empty: bool,
) -> tuple[list[str], list[int]]:
    if (extensions is None) == (is_valid_file is None):
        raise ChuteValueError(
            "Both extensions and is_valid_file cannot be None or not None at the same time"
        )
    if is_valid_file is None:
        exts = extensions

        def is_valid_file(path: str) -> bool:
            return has_file_allowed_extension(path, exts)  # type: ignore[arg-type]

    paths: list[str] = []
    targets: list[int] = []
    empty: list[str] = []
    for name in sorted(class_to_idx, key=lambda c: class_to_idx[c]):
        target_dir = os.path.join(directory, name)
        if not os.path.isdir(target_dir):
            continue
        found = 0
        for folder, _, files in sorted(os.walk(target_dir, followlinks=True)):
            for fname in sorted(files):
                path = os.path.join(folder, fname)
                if is_valid_file(path):
                    paths.append(os.path.relpath(path, directory))
                    targets.append(class_to_idx[name])
                    found += 1
        if not found:
            empty.append(name)
    if empty and not allow_empty:
        raise FileNotFoundError(
            f"Found no valid file for the classes {', '.join(sorted(empty))} in {directory}. "
            f"Supported extensions are: {_ext_text(extensions)}"
        )
    return paths, targets


def make_dataset(
    directory: str | os.PathLike[str],
    class_to_idx: dict[str, int] | None = None,
    extensions: str | tuple[str, ...] | None = None,
    is_valid_file: Callable[[str], bool] | None = None,
    allow_empty: bool = False,
) -> list[tuple[str, int]]:
    """The ``(path, class_index)`` pairs of a class-per-folder tree (torchvision's function)."""
    directory = os.path.expanduser(os.fspath(directory))
    if class_to_idx is None:
        _, class_to_idx = find_classes(directory)
    paths, targets = _scan(directory, class_to_idx, extensions, is_valid_file, allow_empty)
    return [(os.path.join(directory, p), t) for p, t in zip(paths, targets, strict=True)]


def pil_loader(path: str) -> Any:
    """Open an image file as an RGB PIL image (torchvision's default loader)."""
    from ..._lazy import require

    Image = require("PIL.Image", "loading images")
    with open(path, "rb") as f:
        img = Image.open(f)
        return img.convert("RGB")


def default_loader(path: str) -> np.ndarray:
    """Read an image file as an H x W x 3 uint8 RGB array (chute's default loader).

    16-bit images are scaled to 8 bits (:func:`~chute.vision.io.to_uint8`); torchvision's
    PIL loader gives 8 bits too, but clips (``convert("RGB")`` makes 1000 and 65535 both 255).
    """
    rgb = to_uint8(decode_image(path, ImageReadMode.RGB))
    return np.ascontiguousarray(rgb.transpose(1, 2, 0))


def _split_batchable(transform: Any) -> tuple[Any, list[Any]]:
    """Split a transform into a per-sample head and the longest batchable tail.

    ``Compose([RandomResizedCrop(224), RandomHorizontalFlip(), ToTensor()])`` splits into
    ``Compose([RandomResizedCrop(224)])`` and ``[RandomHorizontalFlip(), ToTensor()]``.
    """
    if transform is None:
        return None, []
    members = list(transform.transforms) if isinstance(transform, Compose) else [transform]
    k = len(members)
    while k > 0 and is_batchable(members[k - 1]):
        k -= 1
    # Leading transforms whose batch form is only a loop (RandomResizedCrop, Resize, ...) stay
    # per sample: they shrink differently sized images to one size, so they must come first.
    lead = 0
    while lead < len(members) and getattr(members[lead], "per_sample_batch", False):
        lead += 1
    k = max(k, lead)
    head = members[:k]
    if not head:
        return None, members
    return (head[0] if len(head) == 1 else Compose(head)), members[k:]


class _FileFetch:
    """Batch-first fetch for file datasets.

    NOTE [ File datasets fetch a batch in two halves ]
    Files must be decoded one by one, but the end of a typical transform chain (flips,
    ``ToTensor``, ``Normalize``) is batchable. ``__getitems__`` runs the head of the chain on
    each sample inside its own ``rng.sample_scope(i)``, stacks the results (when their shapes
    agree) and runs the batchable tail once on the whole batch with the *same* generators,
    already advanced by the head, so every sample gets exactly the draws it gets alone. This
    skips one float array per sample and the float stacking copy of the collate step.
    """

    transform: Any
    target_transform: Any

    def _load(self, i: int, transform: Any) -> Any:
        raise NotImplementedError

    def _label(self, i: int) -> int:
        raise NotImplementedError

    def _hwc(self) -> bool | None:
        """The layout of a loaded image: H x W x C (True), C x H x W (False), unknown (None)."""
        raise NotImplementedError

    def _transform(self, image: Any, transform: Any) -> Any:
        """``transform(image)``, telling the first transform the layout the loader gave."""
        if transform is None:
            return image
        hwc = self._hwc()
        if hwc is None or not isinstance(image, np.ndarray):
            return transform(image)
        with known_layout(image, hwc):  # NOTE [ Image layouts ] in transforms/_image.py
            return transform(image)

    def __getitems__(self, indices: Sequence[int]) -> Any:
        with layout_scope():  # NOTE [ Image layouts ]: head results keep theirs for the tail
            return self._getitems(indices)

    def _getitems(self, indices: Sequence[int]) -> Any:
        head, tail = _split_batchable(self.transform)
        if not tail or self.target_transform is not None or len(indices) == 0:
            out = []
            for i in indices:
                with rng.sample_scope(i):
                    out.append(self[i])  # type: ignore[index]
            return out
        images, gens, labels = [], [], []
        for index in indices:
            i = self._check_index(index)  # type: ignore[attr-defined]
            with rng.sample_scope(index) as gen:
                images.append(self._load(i, head))
                gens.append(gen if gen is not None else np.random.default_rng())
            labels.append(self._label(i))
        kinds = {(getattr(im, "shape", None), getattr(im, "dtype", None)) for im in images}
        if len(kinds) == 1 and isinstance(images[0], np.ndarray):
            stacked = np.stack(images)
            layouts = {self._hwc() if head is None else layout_hwc(x) for x in images}
            if len(layouts) == 1 and None not in layouts:  # NOTE [ Image layouts ]
                remember_layout(stacked, bool(layouts.pop()), batched=True)
            batch = apply_batch(Compose(tail), stacked, gens)
            return StackedSamples((batch, np.asarray(labels, dtype=np.int64)), len(images))
        out = []
        for index, im, gen, label in zip(indices, images, gens, labels, strict=True):
            if not hasattr(im, "shape"):  # e.g. a PIL image from a custom loader
                with rng.sample_scope(index):
                    out.append(self[index])  # type: ignore[index]
                continue
            hwc = self._hwc() if head is None else layout_hwc(im)
            x = im[None]
            if hwc is not None:
                remember_layout(x, hwc, batched=True)
            out.append((apply_batch(Compose(tail), x, [gen])[0], label))
        return out


class DatasetFolder(_FileFetch, VisionDataset):
    """Samples in a class-per-folder tree: ``root/<class>/.../<file>``.

    Args:
        root: the folder whose subfolders are the classes.
        loader: reads one sample from its path.
        extensions: accepted file extensions (exclusive with ``is_valid_file``).
        transform: a callable on the sample.
        target_transform: a callable on the class index.
        is_valid_file: decides which paths are samples (exclusive with ``extensions``).
        allow_empty: accept class folders without any valid file.

    Raises:
        FileNotFoundError: no class folder, or a class folder without a valid file (names the
            classes, the folder and the extensions).
    """

    safe_to_fetch_before_fork = True  # no handle kept between fetches (see chute.Dataset)

    def __init__(
        self,
        root: str | os.PathLike[str],
        loader: Callable[[str], Any],
        extensions: str | tuple[str, ...] | None = None,
        transform: Callable[..., Any] | None = None,
        target_transform: Callable[..., Any] | None = None,
        is_valid_file: Callable[[str], bool] | None = None,
        allow_empty: bool = False,
    ) -> None:
        super().__init__(root, transform=transform, target_transform=target_transform)
        directory = os.fspath(self.root)  # type: ignore[arg-type]
        classes, class_to_idx = self.find_classes(directory)
        paths, targets = _scan(directory, class_to_idx, extensions, is_valid_file, allow_empty)
        self.loader = loader
        self.extensions = extensions
        self.classes = classes
        self.class_to_idx = class_to_idx
        self._paths = PackedStrings(paths)
        self._targets = np.asarray(targets, dtype=np.int64)

    @staticmethod
    def find_classes(directory: str) -> tuple[list[str], dict[str, int]]:
        """The class folders (sorted) and their indices; override for another layout."""
        return find_classes(directory)

    def __len__(self) -> int:
        return len(self._paths)

    def _path(self, i: int) -> str:
        return os.path.join(os.fspath(self.root), self._paths[i])  # type: ignore[arg-type]

    @property
    def samples(self) -> list[tuple[str, int]]:
        """``(path, class_index)`` of every sample (built on access)."""
        return [(self._path(i), int(t)) for i, t in enumerate(self._targets)]

    @property
    def imgs(self) -> list[tuple[str, int]]:
        """Same as :attr:`samples` (torchvision's alias)."""
        return self.samples

    @property
    def targets(self) -> list[int]:
        """The class index of every sample (built on access)."""
        return self._targets.tolist()  # type: ignore[no-any-return]

    def _load(self, i: int, transform: Any) -> Any:
        path = self._path(i)
        if self.loader is default_loader:  # reduced-size JPEG decoding, as ImageCSVDataset
            plan = _reduced.plan(transform, ImageReadMode.RGB)
            if plan is not None:
                with open(path, "rb") as f:
                    return _reduced.run(plan, f.read(), path, ImageReadMode.RGB, hwc=True)
        return self._transform(self.loader(path), transform)

    def _hwc(self) -> bool | None:
        return True if self.loader is default_loader else None

    def _label(self, i: int) -> int:
        return int(self._targets[i])

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        i = self._check_index(index)
        sample = self._load(i, self.transform)
        target: Any = self._label(i)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return sample, target


class ImageFolder(DatasetFolder):
    """Images in a class-per-folder tree, e.g. ``root/dog/xxx.png``, ``root/cat/123.jpg``.

    Samples are H x W x 3 uint8 RGB arrays (see the module notes), or what ``loader`` returns.

    Example:
        >>> import os, tempfile, numpy as np
        >>> from chute.vision.io import write_png
        >>> root = tempfile.mkdtemp()
        >>> for c in ("cat", "dog"):
        ...     os.mkdir(os.path.join(root, c))
        ...     write_png(np.zeros((3, 4, 4), np.uint8), os.path.join(root, c, "a.png"))
        >>> ds = ImageFolder(root)
        >>> ds.classes, len(ds), ds[1][0].shape, ds[1][1]
        (['cat', 'dog'], 2, (4, 4, 3), 1)
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        transform: Callable[..., Any] | None = None,
        target_transform: Callable[..., Any] | None = None,
        loader: Callable[[str], Any] | None = None,
        is_valid_file: Callable[[str], bool] | None = None,
        allow_empty: bool = False,
    ) -> None:
        super().__init__(
            root,
            loader if loader is not None else default_loader,
            IMG_EXTENSIONS if is_valid_file is None else None,
            transform=transform,
            target_transform=target_transform,
            is_valid_file=is_valid_file,
            allow_empty=allow_empty,
        )


def _iter_rows(path: str) -> Iterator[tuple[int, list[str]]]:
    """``(line_number, stripped fields)`` of every non-blank CSV row."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, skipinitialspace=True)
        try:
            for fields in reader:
                stripped = [x.strip() for x in fields]
                if any(stripped):
                    yield reader.line_num, stripped
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DatasetFormatError(
                f"annotations file {path!r}, line {reader.line_num}: not valid CSV ({exc})"
            ) from exc


def _has_header(header: Any, first: list[str], image_column: Any, label_column: Any) -> bool:
    if header is True or header is False:
        return header
    if header != "infer":
        raise ChuteValueError(f"header should be 'infer', True or False, got {header!r}")
    if isinstance(image_column, str) or isinstance(label_column, str):
        return True
    lab = int(label_column)
    return not (-len(first) <= lab < len(first) and _is_int(first[lab]))


def _smallest_int(values: np.ndarray) -> np.ndarray:
    """``values`` in the smallest signed integer dtype that holds them (int8 ... int64)."""
    if not len(values):
        return values
    lo, hi = int(values.min()), int(values.max())
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return values.astype(dtype)
    return values.copy()


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _column(spec: int | str, header: list[str] | None, what: str, path: str) -> int:
    if isinstance(spec, str):
        if header is None:
            raise ChuteValueError(
                f"{what}={spec!r} names a column, but the annotations file {path!r} has no "
                f"header row; give a column position instead"
            )
        if spec not in header:
            raise ChuteKeyError(
                f"{what}={spec!r} is not a column of the annotations file {path!r}; its "
                f"columns are {header}"
            )
        return header.index(spec)
    return int(spec)


class ImageCSVDataset(_FileFetch, VisionDataset):
    """Images named in a CSV annotations file, with integer labels (the tutorial's dataset).

    Each data row names an image file (relative to ``img_dir``) and its label; the sample is
    ``(read_image(path), label)`` with the image as a C x H x W uint8 array (16-bit images
    scaled to 8 bits), then the transforms.

    Header: ``"infer"`` (default) takes the first row as a header when its label field is not
    an integer (so the tutorial's header-less ``labels.csv`` keeps its first row, where
    ``pandas.read_csv`` would have eaten it); ``True``/``False`` force it.

    Missing images: with ``check_files=True`` (default) every file is checked to exist when the
    dataset is made (one ``stat`` per row); pass ``check_files=False`` for huge tables on slow
    file systems. A missing file is reported either way, at construction or at fetch, with the
    CSV file, its line number and the image path.

    Reduced-size JPEG decoding: when ``transform`` is (or a ``Compose`` starting with)
    ``RandomResizedCrop`` or ``Resize`` and the file is a JPEG, the image is decoded at the
    smallest DCT scale (1/2, 1/4 or 1/8) that still has at least the output's resolution
    inside the crop (1.5 times it for 1/4 and 1/8), then cropped and resized in one step.
    The random crop is drawn from the full-size dimensions with the sample's own stream,
    exactly as the transform would, so the same crop is taken; the pixels match
    decode-then-transform within chute's JPEG tolerance (mean absolute difference at most 3
    levels of 255 per sample, 1.5 on average). When no scale qualifies the result is
    identical to decode-then-transform. Pass ``reduced_decode=False`` to always get the
    exact decode-then-transform result.

    Args:
        annotations_file: the CSV file.
        img_dir: the folder the file names are relative to.
        transform: a callable on the image.
        target_transform: a callable on the label.
        header: ``"infer"``, ``True`` or ``False``.
        image_column: the position or header name of the file-name column.
        label_column: the position or header name of the label column.
        read_mode: the :class:`~chute.vision.io.ImageReadMode` for decoding.
        check_files: check at construction that every image exists.
        reduced_decode: allow reduced-size JPEG decoding (see above).

    Raises:
        DatasetFormatError: a row with a different number of columns than the first, a label
            that is not an integer, or invalid CSV (names the file and line).
        FileNotFoundError: a row names a missing image (names the CSV, line and image).
    """

    safe_to_fetch_before_fork = True  # no handle kept between fetches (see chute.Dataset)

    def __init__(
        self,
        annotations_file: str | os.PathLike[str],
        img_dir: str | os.PathLike[str],
        transform: Callable[..., Any] | None = None,
        target_transform: Callable[..., Any] | None = None,
        *,
        header: bool | str = "infer",
        image_column: int | str = 0,
        label_column: int | str = 1,
        read_mode: ImageReadMode = ImageReadMode.UNCHANGED,
        check_files: bool = True,
        reduced_decode: bool = True,
    ) -> None:
        super().__init__(os.fspath(img_dir), transform=transform, target_transform=target_transform)
        self.annotations_file = os.fspath(annotations_file)
        self.img_dir = os.fspath(self.root)  # type: ignore[arg-type]
        self.read_mode = read_mode
        self.reduced_decode = reduced_decode
        path = self.annotations_file
        rows = _iter_rows(path)
        first = next(rows, None)
        if first is None:
            raise DatasetFormatError(f"annotations file {path!r} has no rows")
        head = first[1] if _has_header(header, first[1], image_column, label_column) else None
        if head is None:
            rows = itertools.chain([first], rows)
        self.columns = head
        img_col = _column(image_column, head, "image_column", path)
        lab_col = _column(label_column, head, "label_column", path)
        width = len(first[1])
        if max(img_col, lab_col) >= width:
            raise DatasetFormatError(
                f"annotations file {path!r} has {width} columns, but image_column={image_column!r} "
                f"and label_column={label_column!r} need {max(img_col, lab_col) + 1}"
            )
        names: list[str] = []
        labels = array.array("q")
        lines = array.array("q")
        for line, fields in rows:
            if len(fields) != width:
                raise DatasetFormatError(
                    f"annotations file {path!r}, line {line}: expected {width} columns, got "
                    f"{len(fields)}: {fields!r}"
                )
            try:
                labels.append(int(fields[lab_col]))
            except (ValueError, OverflowError):
                raise DatasetFormatError(
                    f"annotations file {path!r}, line {line}: label {fields[lab_col]!r} is not "
                    f"an integer (of at most 64 bits)"
                ) from None
            names.append(fields[img_col])
            lines.append(line)
            if check_files and not os.path.isfile(os.path.join(self.img_dir, fields[img_col])):
                raise FileNotFoundError(self._missing(line, fields[img_col]))
        if not names:
            raise DatasetFormatError(f"annotations file {path!r} has a header but no data rows")
        self._names = PackedStrings(names)
        self._labels = _smallest_int(np.frombuffer(labels, dtype=np.int64))
        # line numbers are kept only when they are not simply "row + first data line"
        line_arr = np.frombuffer(lines, dtype=np.int64)
        start = int(line_arr[0])
        regular = bool(np.array_equal(line_arr, np.arange(start, start + len(line_arr))))
        self._first_line = start
        self._lines: np.ndarray | None = None if regular else line_arr.copy()

    def _line(self, i: int) -> int:
        return self._first_line + i if self._lines is None else int(self._lines[i])

    def _missing(self, line: int, name: str) -> str:
        return (
            f"annotations file {self.annotations_file!r}, line {line}: image "
            f"{os.path.join(self.img_dir, name)!r} does not exist"
        )

    def __len__(self) -> int:
        return len(self._names)

    @property
    def targets(self) -> list[int]:
        """The label of every row (built on access)."""
        return self._labels.tolist()  # type: ignore[no-any-return]

    @property
    def samples(self) -> list[tuple[str, int]]:
        """``(image_path, label)`` of every row (built on access)."""
        return [
            (os.path.join(self.img_dir, n), int(t))
            for n, t in zip(self._names, self._labels, strict=True)
        ]

    def _load(self, i: int, transform: Any) -> Any:
        path = os.path.join(self.img_dir, self._names[i])
        plan = _reduced.plan(transform, self.read_mode) if self.reduced_decode else None
        try:
            if plan is not None:
                with open(path, "rb") as f:
                    return _reduced.run(plan, f.read(), path, self.read_mode)
            img = to_uint8(read_image(path, self.read_mode))  # 8-bit, as documented
        except FileNotFoundError:
            raise FileNotFoundError(self._missing(self._line(i), self._names[i])) from None
        return self._transform(img, transform)

    def _hwc(self) -> bool | None:
        return False  # read_image: C x H x W

    def _label(self, i: int) -> int:
        return int(self._labels[i])

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        i = self._check_index(index)
        image = self._load(i, self.transform)
        label: Any = self._label(i)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def extra_repr(self) -> str:
        return f"Annotations file: {self.annotations_file}"
