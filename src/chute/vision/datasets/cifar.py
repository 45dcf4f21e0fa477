"""CIFAR-10 and CIFAR-100 from the "python version" archives, read without trusting pickle.

The archive, md5 tables, folder layout and ``repr`` are torchvision's. The batch files are
Python pickles of plain dicts (``data``: an Nx3072 uint8 array, ``labels`` or
``fine_labels``: a list of ints, ``filenames``, ``batch_label``). They are read with
:class:`RestrictedUnpickler`, which builds only plain containers, strings, numbers and NumPy
arrays of plain dtypes; any other global a pickle asks for is refused, so a tampered file
cannot run code. Every file's md5 is checked before it is read, as in torchvision.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ...download import check_integrity, download_url, extract_archive
from ...errors import ChuteRuntimeError, DatasetFormatError, DatasetNotFoundError
from .vision import VisionDataset

__all__ = ["CIFAR10", "CIFAR100", "RestrictedUnpickler", "load_pickle"]


def _numpy_attr(modules: tuple[str, ...], name: str) -> Any:
    for module in modules:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {name} in {modules}")  # pragma: no cover


def _plain_dtype(obj: Any, align: Any = False, copy: Any = True) -> np.dtype[Any]:
    """``numpy.dtype`` as a pickle calls it, always a new copy (BUILD then sets its state).

    A pickle asking for ``copy=False`` would get NumPy's shared descriptor of that type, and
    its BUILD would then change every array of that dtype in the process.
    """
    if not isinstance(obj, str) or not isinstance(align, bool):
        raise pickle.UnpicklingError(f"refused global 'numpy.dtype' with arguments {obj!r}")
    dtype = np.dtype(obj, align=align, copy=True)
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"refused global 'numpy.dtype' with object dtype {obj!r}")
    if dtype.names is not None or dtype.subdtype is not None:
        raise pickle.UnpicklingError(f"refused global 'numpy.dtype' with a structured {obj!r}")
    return dtype


def _build_dtype(dtype: np.dtype[Any], state: Any) -> None:
    """BUILD of a dtype: only the state NumPy writes for a plain dtype, never other flags.

    NumPy's dtype state is ``(version, byteorder, subarray, names, fields, elsize,
    alignment, flags[, metadata])``. A forged ``flags`` (say "holds Python objects") or
    ``elsize`` would make NumPy read array bytes as pointers; so the state must be exactly
    the one a plain dtype of this kind has, apart from the byte order.
    """
    plain = (None, None, None, -1, -1, dtype.flags)
    if (
        not isinstance(state, tuple)
        or len(state) not in (8, 9)
        or state[0] not in (3, 4)
        or state[1] not in ("<", ">", "|", "=")
        or state[2:8] != plain
        or (len(state) == 9 and state[8] is not None)
    ):
        raise pickle.UnpicklingError(
            f"refused a numpy.dtype state {state!r} for {dtype}: only a plain dtype's state "
            f"(version, byte order, None, None, None, -1, -1, {dtype.flags}) is accepted"
        )
    dtype.__setstate__(state)  # type: ignore[attr-defined]


def _build_array(array: np.ndarray, state: Any) -> None:
    """BUILD of an array: a plain dtype (already checked) and raw bytes, not Python objects."""
    if (
        not isinstance(state, tuple)
        or len(state) != 5
        or not isinstance(state[2], np.dtype)
        or state[2].hasobject
        or not isinstance(state[4], (bytes, bytearray, str))
    ):
        kinds = tuple(type(x).__name__ for x in state) if isinstance(state, tuple) else state
        raise pickle.UnpicklingError(
            f"refused a numpy.ndarray state of {kinds!r}: expected (version, shape, plain "
            f"dtype, fortran order, raw bytes)"
        )
    array.__setstate__(state)


def _load_build(self: Any) -> None:
    """BUILD only for the two kinds of object the allowed globals make: dtypes and arrays."""
    state = self.stack.pop()
    inst = self.stack[-1]
    if isinstance(inst, np.dtype):
        _build_dtype(inst, state)
    elif type(inst) is np.ndarray:
        _build_array(inst, state)
    else:
        raise pickle.UnpicklingError(f"refused BUILD of a {type(inst).__name__}")


def _latin1_encode(text: Any, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes under protocol 2, and nothing else."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(
            f"refused global '_codecs.encode' with encoding {encoding!r} on {type(text).__name__}"
        )
    return text.encode("latin1", errors="strict")


_MULTIARRAY = ("numpy._core.multiarray", "numpy.core.multiarray")
_NUMERIC = ("numpy._core.numeric", "numpy.core.numeric")

# (module, name) → the object the pickle gets. Real CIFAR pickles (Python 2, NumPy 1.x) use
# numpy.core.multiarray._reconstruct, numpy.ndarray and numpy.dtype; Python 3 pickles may add
# numpy._core.*, multiarray.scalar, numeric._frombuffer (protocol 5) and _codecs.encode
# (bytes under protocol 2).
_ALLOWED: dict[tuple[str, str], Callable[[], Any]] = {
    **{
        (m, "_reconstruct"): (lambda: _numpy_attr(_MULTIARRAY, "_reconstruct")) for m in _MULTIARRAY
    },
    **{(m, "scalar"): (lambda: _numpy_attr(_MULTIARRAY, "scalar")) for m in _MULTIARRAY},
    **{(m, "_frombuffer"): (lambda: _numpy_attr(_NUMERIC, "_frombuffer")) for m in _NUMERIC},
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: _plain_dtype,
    ("_codecs", "encode"): lambda: _latin1_encode,
}


# The pure-Python unpickler: its memo is a dict, so a forged memo index cannot make it
# allocate a huge table as the C one does; its reads are bounded by the data.
_PyUnpickler: Any = getattr(pickle, "_Unpickler")  # noqa: B009 - private, not in typeshed


def _load_bytearray8(self: Any) -> None:
    """BYTEARRAY8 without preallocating the declared length (which may be forged)."""
    (n,) = struct.unpack("<Q", self.read(8))
    data = self.read(n)
    if len(data) != n:
        raise pickle.UnpicklingError(f"BYTEARRAY8 declares {n} bytes, the data has {len(data)}")
    self.append(bytearray(data))


class RestrictedUnpickler(_PyUnpickler):  # type: ignore[misc]
    """An unpickler that builds only plain containers and NumPy arrays of plain dtypes.

    Any other global (``os.system``, ``builtins.eval``, a class) raises
    :class:`pickle.UnpicklingError` naming it; :func:`load_pickle` turns that into a
    :class:`~chute.errors.DatasetFormatError` naming the file. Based on the pure-Python
    unpickler so that forged lengths and memo indices cannot exhaust memory.
    """

    dispatch: ClassVar[dict[int, Any]] = {
        **_PyUnpickler.dispatch,
        pickle.BYTEARRAY8[0]: _load_bytearray8,
        pickle.BUILD[0]: _load_build,
    }

    def find_class(self, module: str, name: str) -> Any:
        make = _ALLOWED.get((module, name))
        if make is None:
            raise pickle.UnpicklingError(f"refused global '{module}.{name}'")
        return make()


def _plain(obj: Any, path: Path) -> Any:
    """Decode bytes keys/strings (Python 2 and 3 pickles differ) and reject object arrays."""
    if isinstance(obj, dict):
        return {_plain(k, path): _plain(v, path) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v, path) for v in obj]
    if isinstance(obj, bytes):
        return obj.decode("latin1")
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        raise DatasetFormatError(f"{path}: refused a NumPy array of Python objects in the pickle")
    return obj


def load_pickle(path: str | os.PathLike[str]) -> Any:
    """Load a CIFAR-style pickle with :class:`RestrictedUnpickler` (bytes keys become str).

    Raises:
        DatasetFormatError: the file is not a pickle, is truncated, or asks for a global
            other than the few that plain dicts of NumPy arrays need; the message names the
            file and the refused global.
    """
    p = Path(path)
    data = p.read_bytes()
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise DatasetFormatError(f"{p}: unsafe or corrupt pickle: {exc}") from exc
    except (
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        LookupError,
        struct.error,
    ) as exc:
        raise DatasetFormatError(f"{p}: corrupt pickle: {type(exc).__name__}: {exc}") from exc
    except (MemoryError, OverflowError, RecursionError, SystemError) as exc:
        raise DatasetFormatError(
            f"{p}: corrupt pickle: it declares an object too large or too deep to build "
            f"({type(exc).__name__})"
        ) from exc
    return _plain(obj, p)


class CIFAR10(VisionDataset):
    """`CIFAR-10 <https://www.cs.toronto.edu/~kriz/cifar.html>`_: 60,000 32x32 color images.

    Args:
        root: folder that holds ``cifar-10-batches-py`` (or where to download it).
        train: the 50,000 training images if True, else the 10,000 test images.
        transform: a callable on the uint8 HxWx3 image.
        target_transform: a callable on the int label.
        download: fetch and unpack the archive (md5-checked) if it is not there yet.

    ``data`` is an Nx32x32x3 uint8 array, ``targets`` an int64 array, ``classes`` come from
    the archive's meta file.
    """

    accepts_index_arrays = True  # __getitems__ takes an int64 array (see chute.Dataset)
    images_hwc = True  # H x W x C images (NOTE [ Image layouts ])
    safe_to_fetch_before_fork = True  # no handle kept between fetches (see chute.Dataset)

    base_folder = "cifar-10-batches-py"
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    filename = "cifar-10-python.tar.gz"
    tgz_md5 = "c58f30108f718f92721af3b95e74349a"
    train_list: ClassVar[list[list[str]]] = [
        ["data_batch_1", "c99cafc152244af753f735de768cd75f"],
        ["data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"],
        ["data_batch_3", "54ebc095f3ab1f0389bbae665268c751"],
        ["data_batch_4", "634d18415352ddfa80567beed471001a"],
        ["data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"],
    ]
    test_list: ClassVar[list[list[str]]] = [
        ["test_batch", "40351d587109b95175f43aff81a1287e"],
    ]
    meta: ClassVar[dict[str, str]] = {
        "filename": "batches.meta",
        "key": "label_names",
        "md5": "5ff9c542aee3614f3951f8cda6e48888",
    }

    def __init__(
        self,
        root: str | os.PathLike[str],
        train: bool = True,
        transform: Callable[..., Any] | None = None,
        target_transform: Callable[..., Any] | None = None,
        download: bool = False,
    ) -> None:
        super().__init__(root, transform=transform, target_transform=target_transform)
        self.train = train
        if download:
            self.download()
        bad = self._bad_files()
        if bad:
            present = [name for name in bad if (self._folder() / name).exists()]
            error = ChuteRuntimeError if present else DatasetNotFoundError
            raise error(
                f"Dataset not found or corrupted. You can use download=True to download it "
                f"(missing or failing their md5 in {self._folder()}: {', '.join(bad)})"
            )
        parts, labels = [], []
        for name, _ in self.train_list if self.train else self.test_list:
            images, targets = self._load_batch(self._folder() / name)
            parts.append(images)
            labels.append(targets)
        flat = np.concatenate(parts)
        self.data = np.ascontiguousarray(flat.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        self.targets = np.concatenate(labels).astype(np.int64)
        self._load_meta()

    def _folder(self) -> Path:
        return Path(str(self.root), self.base_folder)

    def _bad_files(self) -> list[str]:
        entries = [*self.train_list, *self.test_list, [self.meta["filename"], self.meta["md5"]]]
        return [name for name, md5 in entries if not check_integrity(self._folder() / name, md5)]

    def _load_batch(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        entry = load_pickle(path)
        if not isinstance(entry, dict) or "data" not in entry:
            raise DatasetFormatError(f"{path}: expected a dict with a 'data' entry")
        data = entry["data"]
        labels = entry.get("labels", entry.get("fine_labels"))
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2):
            found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data)
            raise DatasetFormatError(f"{path}: 'data' must be a uint8 Nx3072 array, found {found}")
        if data.shape[1] != 3 * 32 * 32:
            raise DatasetFormatError(
                f"{path}: 'data' rows must have 3072 values (3x32x32), found {data.shape[1]}"
            )
        if labels is None or len(labels) != len(data):
            found = "none" if labels is None else f"{len(labels)}"
            raise DatasetFormatError(
                f"{path}: expected {len(data)} labels in 'labels' or 'fine_labels', found {found}"
            )
        return data, np.asarray(labels, dtype=np.int64)

    def _load_meta(self) -> None:
        path = self._folder() / self.meta["filename"]
        meta = load_pickle(path)
        names = meta.get(self.meta["key"]) if isinstance(meta, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DatasetFormatError(f"{path}: expected a list of names under {self.meta['key']!r}")
        self.classes: list[str] = names
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

    def download(self) -> None:
        """Download the archive (md5-checked), unpack it safely, unless the files verify."""
        if not self._bad_files():
            print("Files already downloaded and verified")
            return
        archive = download_url(self.url, Path(str(self.root), self.filename), md5=self.tgz_md5)
        extract_archive(archive, str(self.root))

    def __len__(self) -> int:
        return len(self.data)

    def _gather(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.data.take(idx, axis=0), self.targets.take(idx)

    def extra_repr(self) -> str:
        return f"Split: {'Train' if self.train is True else 'Test'}"


class CIFAR100(CIFAR10):
    """`CIFAR-100 <https://www.cs.toronto.edu/~kriz/cifar.html>`_: as :class:`CIFAR10`
    with 100 fine classes (labels from ``fine_labels``)."""

    base_folder = "cifar-100-python"
    url = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    filename = "cifar-100-python.tar.gz"
    tgz_md5 = "eb9058c3a382ffc7106e4002c42a8d85"
    train_list: ClassVar[list[list[str]]] = [
        ["train", "16019d7e3df5f24257cddd939b257f8d"],
    ]
    test_list: ClassVar[list[list[str]]] = [
        ["test", "f0ef6b0ae62326f3e7ffdfab6717acfc"],
    ]
    meta: ClassVar[dict[str, str]] = {
        "filename": "meta",
        "key": "fine_label_names",
        "md5": "7973b15100ade9c7d40fb424638fde48",
    }
