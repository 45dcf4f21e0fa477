"""Collate: stack a list of samples into one batch.

``default_collate`` follows ``torch.utils.data.default_collate`` in structure (tuples become
lists, namedtuples and mappings keep their type, strings stay lists) but keeps NumPy samples
as NumPy arrays; torch tensors are stacked as torch tensors. The loader's ``format`` argument,
not collate, decides whether a batch becomes torch or JAX.
"""

from __future__ import annotations

import collections.abc as cabc
import copy
from typing import Any

import numpy as np

from ._lazy import loaded
from .errors import CollateError
from .stacked import StackedSamples

__all__ = ["default_collate", "default_convert"]

_BAD_TYPE = "batch must contain arrays, tensors, numbers, dicts or lists"


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _where(path: str) -> str:
    return f" at {path}" if path else ""


def _shape_report(shapes: list[tuple[int, ...]]) -> str:
    seen: dict[tuple[int, ...], int] = {}
    for k, s in enumerate(shapes):
        seen.setdefault(s, k)
    return ", ".join(f"{s} (sample {k})" for s, k in seen.items())


def _stack_arrays(batch: list[Any], path: str) -> np.ndarray:
    first = batch[0]
    if first.dtype.kind in "OUS":
        raise CollateError(
            f"default_collate: {_BAD_TYPE}; found an array of dtype {first.dtype}{_where(path)}"
        )
    try:
        return np.stack(batch)
    except ValueError:
        shapes = [tuple(np.shape(b)) for b in batch]
        raise CollateError(
            f"default_collate: samples have different shapes{_where(path)}: "
            f"{_shape_report(shapes)}; resize them to one shape or pass a collate_fn"
        ) from None


def _stack_numbers(batch: list[Any], path: str) -> np.ndarray:
    """Python bools, ints and floats: a dtype that holds them all (2.5 is never cut to 2)."""
    if all(isinstance(x, (bool, np.bool_)) for x in batch):
        return np.array(batch, dtype=np.bool_)
    if all(isinstance(x, (bool, int, np.bool_, np.integer)) for x in batch):
        dtype: type = np.int64
    elif all(isinstance(x, (bool, int, float, np.bool_, np.integer, np.floating)) for x in batch):
        dtype = np.float64
    else:
        kinds = sorted({type(x).__name__ for x in batch})
        raise CollateError(
            f"default_collate: samples mix types{_where(path)}: {kinds}; give every sample "
            f"a number here, or pass a collate_fn"
        )
    try:
        return np.array(batch, dtype=dtype)
    except OverflowError:
        big = max(batch, key=abs)
        raise CollateError(
            f"default_collate: {big} does not fit in int64{_where(path)}; pass a collate_fn"
        ) from None


def _stack_tensors(torch: Any, batch: list[Any], path: str) -> Any:
    elem = batch[0]
    kind = "nested" if elem.is_nested else None
    if elem.layout in {torch.sparse_coo, torch.sparse_csr, torch.sparse_bsr}:
        kind = "sparse"
    if elem.layout in {torch.sparse_csc, torch.sparse_bsc}:
        kind = "sparse"
    if kind is not None:  # torch.stack would fail (or densify): say what torch says
        raise CollateError(
            f"Batches of {kind} tensors are not currently supported by the default "
            f"collate_fn; please provide a custom collate_fn to handle them appropriately "
            f"(default_collate{_where(path)})"
        )
    shapes = [tuple(t.shape) for t in batch]
    if any(s != shapes[0] for s in shapes):
        raise CollateError(
            f"default_collate: samples have different shapes{_where(path)}: "
            f"{_shape_report(shapes)}; resize them to one shape or pass a collate_fn"
        )
    return torch.stack(batch, 0)


def _from_stacked(data: Any) -> Any:
    """What default_collate makes of samples that are already stacked."""
    if type(data) is np.ndarray:
        return data
    if _is_namedtuple(data):
        return type(data)(*(_from_stacked(x) for x in data))
    if isinstance(data, (tuple, list)):
        return [_from_stacked(x) for x in data]
    if isinstance(data, cabc.Mapping):
        return {k: _from_stacked(v) for k, v in data.items()}
    return data


def _collate(batch: list[Any], path: str) -> Any:
    elem = batch[0]
    elem_type = type(elem)
    torch = loaded("torch")
    if torch is not None and isinstance(elem, torch.Tensor):
        return _stack_tensors(torch, batch, path)
    if isinstance(elem, np.ndarray):
        return _stack_arrays(batch, path)
    if isinstance(elem, np.generic):
        if elem.dtype.kind in "OUS":
            return list(batch)
        return np.array(batch)
    if isinstance(elem, (bool, int, float)):
        return _stack_numbers(batch, path)
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, cabc.Mapping):
        keys = list(elem)
        for k, sample in enumerate(batch):
            if not isinstance(sample, cabc.Mapping) or set(sample) != set(keys):
                found = list(sample) if isinstance(sample, cabc.Mapping) else type(sample).__name__
                raise CollateError(
                    f"default_collate: sample {k}{_where(path)} has keys {found}, "
                    f"but sample 0 has keys {keys}"
                )
        out = {key: _collate([s[key] for s in batch], f"{path}[{key!r}]") for key in keys}
        if isinstance(elem, cabc.MutableMapping):  # keeps defaultdict's factory, etc.
            clone = copy.copy(elem)
            clone.update(out)
            return clone
        try:
            return elem_type(out)
        except TypeError:
            return out
    if _is_namedtuple(elem):
        return elem_type(
            *(_collate(list(s), f"{path}.{f}") for f, s in zip(elem._fields, zip(*batch)))
        )
    if isinstance(elem, cabc.Sequence):
        n = len(elem)
        for k, sample in enumerate(batch):
            if len(sample) != n:
                raise CollateError(
                    f"default_collate: each element in list of batch should be of equal size; "
                    f"sample {k}{_where(path)} has {len(sample)} elements, sample 0 has {n}"
                )
        columns = [_collate(list(col), f"{path}[{i}]") for i, col in enumerate(zip(*batch))]
        if isinstance(elem, tuple):
            return columns
        try:
            return elem_type(columns)  # type: ignore[call-arg]
        except TypeError:
            return columns
    raise CollateError(f"default_collate: {_BAD_TYPE}; found {elem_type.__name__}{_where(path)}")


def default_collate(batch: Any) -> Any:
    """Stack a list of samples into a batch, recursing through containers.

    A NumPy array is taken as a batch of its rows (a copy of it comes back; a 1-D array of
    strings comes back unchanged), as in PyTorch. Arrays and NumPy scalars are stacked with a
    new first axis; Python ints, floats and bools
    become int64, float64 and bool arrays; strings and bytes stay lists; dicts, namedtuples
    and lists are collated field by field (tuples become lists, as in PyTorch). Samples that
    do not match raise :class:`~chute.errors.CollateError` naming the field, e.g. ``[0]['image']``.

    Example:
        >>> import numpy as np
        >>> out = default_collate([(np.zeros(2), 1), (np.ones(2), 0)])
        >>> out[0].shape, out[1].tolist()
        ((2, 2), [1, 0])
    """
    if isinstance(batch, StackedSamples):
        return _from_stacked(batch.data)
    if isinstance(batch, np.ndarray) and batch.ndim > 0:  # as torch: a batch of its rows
        if batch.ndim == 1 and batch.dtype.kind in "US":
            return batch  # strings stay as they are (torch returns them unchanged too)
        return _collate(list(batch), "")
    if not isinstance(batch, cabc.Sequence) or isinstance(batch, (str, bytes)):
        raise CollateError(f"default_collate takes a list of samples, got {type(batch).__name__}")
    if len(batch) == 0:
        raise CollateError("default_collate got an empty list of samples")
    return _collate(list(batch), "")


def default_convert(data: Any) -> Any:
    """The ``collate_fn`` when auto-batching is off: the sample with PyTorch's structure.

    As ``torch.utils.data.default_convert`` does, plain tuples become lists (namedtuples,
    lists and mappings keep their type), recursively. Leaves are returned as they are:
    PyTorch's version also turns NumPy arrays into tensors; in chute the loader's ``format``
    argument does that (``format="torch"``).

    Example:
        >>> import numpy as np
        >>> default_convert((np.zeros(2), {"y": (1, "a")}))
        [array([0., 0.]), {'y': [1, 'a']}]
    """
    if _is_namedtuple(data):
        return type(data)(*(default_convert(x) for x in data))
    if isinstance(data, tuple):
        return [default_convert(x) for x in data]
    if isinstance(data, cabc.Mapping):
        out = {k: default_convert(v) for k, v in data.items()}
        if isinstance(data, cabc.MutableMapping):
            clone = copy.copy(data)
            clone.update(out)
            return clone
        try:
            return type(data)(out)  # type: ignore[call-arg]
        except TypeError:
            return out
    if isinstance(data, list):
        return [default_convert(x) for x in data]
    return data
